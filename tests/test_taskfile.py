"""Model kinds (kinds.py, checkpoint.py) and task model files (taskfile.py): round trips, the
wrong-kind errors every command can raise, and validation of everything on load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from rnn_cli import checkpoint
from rnn_cli.config import ModelConfig
from rnn_cli.errors import ModelFileError
from rnn_cli.params import ParamSet, Params
from rnn_cli.taskfile import TaskModel, load_task, peek_kind, save_task
from rnn_cli.vocab import Vocab, build_vocab

LABELS = ["pos", "neg", "very good", "ünï★", "a\x00"]  # spaces, non-ASCII, a trailing NUL


class Fmt:
    """A TaskFormat of a made-up task: two vocabularies, one label set, one hidden size."""

    kind, vocab_roles, label_roles = "classify", ("text", "char"), ("label",)

    def check_config(self, config):
        if not isinstance(config.get("hidden"), int) or config["hidden"] < 1:
            raise ValueError("hidden must be a positive integer")
        return config

    def param_shapes(self, config, vocabs, labels):
        H = config["hidden"]
        return {"emb": (len(vocabs["text"]), H), "out.W": (len(labels["label"]), H),
                "out.b": (len(labels["label"]),)}


def task_model(hidden=3) -> TaskModel:
    vocabs = {"text": build_vocab("the cat sat\non the mat\n", "word"),
              "char": build_vocab("abc", "char")}
    labels = {"label": list(LABELS)}
    p = ParamSet(Fmt().param_shapes({"hidden": hidden}, vocabs, labels))
    p.flat[:] = np.arange(len(p)) / 7.0
    return TaskModel("classify", {"hidden": hidden}, vocabs, labels, p,
                     train={"lr": 0.01}, state={"step": 3, "batches": {"epoch": 1, "position": 2},
                                                "best": 0.5},
                     history=np.array([[1.0, 0.5, 0.6]]), history_columns=["step", "loss", "acc"],
                     rng_state=np.random.default_rng(1).bit_generator.state,
                     opt={"m": np.ones(len(p), np.float32), "v": np.ones(len(p), np.float32)})


def lm_file(tmp_path) -> str:
    cfg = ModelConfig(hidden=4, vocab_size=3)
    path = str(tmp_path / "lm.npz")
    checkpoint.save(checkpoint.Model(cfg, Vocab("char", ["a", "b", "<UNK>"]),
                                     Params(cfg).init(np.random.default_rng(0))), path)
    return path


def test_round_trip(tmp_path):
    path = str(tmp_path / "c.npz")
    m = task_model()
    save_task(m, path)
    back = load_task(path, Fmt())
    assert back.kind == "classify" and back.config == {"hidden": 3}
    assert back.labels == {"label": LABELS}
    assert back.vocabs["text"] == m.vocabs["text"] and back.vocabs["char"] == m.vocabs["char"]
    assert np.array_equal(back.params.flat, m.params.flat) and back.params.shapes == m.params.shapes
    assert back.state == m.state and back.train == m.train
    assert np.array_equal(back.history, m.history) and back.history_columns == ["step", "loss",
                                                                                 "acc"]
    assert back.rng_state == m.rng_state and set(back.opt) == {"m", "v"}
    assert peek_kind(path) == "classify"
    with np.load(path, allow_pickle=False) as z:  # plain arrays any tool can read
        assert "vocab.text.offsets" in z.files and "labels.label.codepoints" in z.files


def test_commands_refuse_the_wrong_kind_in_one_line(tmp_path):
    path = str(tmp_path / "c.npz")
    save_task(task_model(), path)
    with pytest.raises(ModelFileError) as e:
        checkpoint.load(path)
    assert e.value.message == f"{path} is a classification model; use `rnn-cli predict`"
    assert "rnn-cli info" in e.value.hint
    lm = lm_file(tmp_path)
    assert peek_kind(lm) == "lm"
    with pytest.raises(ModelFileError, match="is a language model; use `rnn-cli sample`"):
        load_task(lm, Fmt())
    other = Fmt()
    other.kind = "tag"
    with pytest.raises(ModelFileError, match="is a classification model"):
        load_task(path, other)


def test_lm_files_record_no_kind(tmp_path):
    with zipfile.ZipFile(lm_file(tmp_path)) as z:
        meta = json.loads(str(np.lib.format.read_array(z.open("meta.npy"))[()]))
    assert set(meta) == {"rnn_cli_version", "model", "train", "state"}


def _rewrite(path, **changes):
    """The file at `path` with some arrays replaced (None: removed)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)


def _meta_with(path, **fields):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
    meta.update(fields)
    return np.array(json.dumps(meta))


@pytest.mark.parametrize("damage,match", [
    (lambda p: {"param__out__b": np.zeros(4, np.float32)}, "param.out.b"),
    (lambda p: {"param__emb": np.full((7, 3), np.nan, np.float32)}, "NaN"),
    (lambda p: {"labels__label__offsets": np.array([0, 3, 2], np.int32)}, "not a list of labels"),
    (lambda p: {"labels__label__codepoints": None}, "label set 'label' is missing"),
    (lambda p: {"vocab__char__offsets": None}, "vocabulary 'char'"),
    (lambda p: {"meta": _meta_with(p, model={"hidden": -1})}, "stored config is invalid"),
    (lambda p: {"meta": _meta_with(p, kind="poem")}, "kind 'poem'"),
    (lambda p: {"meta": _meta_with(p, state={"step": -2})}, "malformed training state"),
    (lambda p: {"meta": _meta_with(p, history_columns=["step"])}, "malformed training history"),
    (lambda p: {"opt__v": -np.ones(41, np.float32)}, "negative"),
])
def test_damaged_files_are_refused(tmp_path, damage, match):
    path = str(tmp_path / "c.npz")
    save_task(task_model(), path)
    _rewrite(path, **damage(path))
    with pytest.raises(ModelFileError, match=match):
        load_task(path, Fmt())


def test_peek_kind_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no model file"):
        peek_kind(str(tmp_path / "missing.npz"))
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"hello")
    with pytest.raises(ModelFileError, match="not an rnn-cli model file"):
        peek_kind(str(bad))
