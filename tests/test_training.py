"""The one way in to training (`rnn_cli.training.train`): its events, its summary, the saves,
a clean stop and resume, the options a task refuses, and the guess of the task from a file."""

from __future__ import annotations

import numba
import pytest

from clihelp import NAMES, rnn, run_cli
from rnn_cli import checkpoint
from rnn_cli.errors import CorpusError, UsageError
from rnn_cli.tasks import _MODULES, KINDS, get
from rnn_cli.tasks.guess import SAMPLE_BYTES, guess_kind, sample_lines
from rnn_cli.training import train

TINY = {"hidden": 8, "batch_size": 4, "seq_len": 8, "cell": "rnn"}


@pytest.fixture
def one_thread():
    """`threads=1` sets numba's thread count for the process: put it back afterwards."""
    before = numba.get_num_threads()
    yield 1
    numba.set_num_threads(before)


def _guess(text: str) -> str:
    return guess_kind(text.split("\n"))[0]


def test_guess_kind_by_format():
    assert _guess("__label__pos a fine film\n\n__label__neg dull\n") == "classify"
    conllu = ("# sent_id = 1\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
              "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n\n1\tOk\tok\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    assert _guess(conllu) == "tag"
    assert _guess("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n") == "tag"
    assert _guess("the cat\tle chat\nthe dog\tle chien\n") == "translate"
    assert _guess("a\tb\n\nc\td\n") == "tag"  # blank lines between: sentences of tokens
    assert _guess("First Citizen:\nBefore we proceed any further, hear me speak.\n") == "lm"
    assert _guess("__label__pos fine\nno label here\n") == "lm"  # every line, or none
    assert _guess("the cat\tle chat\tx\n") == "lm"  # two TABs: not a pair
    assert _guess("the cat\t \n") == "lm"  # nothing on one side
    assert _guess("  \n\t\n") == "lm" and guess_kind(None)[0] == "lm"
    kind, why = guess_kind(["__label__a x", "__label__b y"])
    assert kind == "classify" and "2 non-blank lines" in why and "__label__" in why


def test_sample_lines_reads_whole_lines_of_the_start(tmp_path):
    f = tmp_path / "big.txt"
    f.write_bytes(b"\xef\xbb\xbf" + b"__label__a x\r\n" * (SAMPLE_BYTES // 14 + 10))
    lines = sample_lines(str(f))
    assert lines[0] == "__label__a x" and set(lines) == {"__label__a x"}  # no cut last line
    assert sample_lines(str(tmp_path / "missing.txt")) is None
    assert sample_lines(str(tmp_path)) is None  # a directory: the reader reports it


def test_registry_refuses_unknown_and_unimplemented_kinds():
    import rnn_cli

    assert rnn_cli.train is train  # the package's name for the one way in
    assert get("lm").kind == "lm" and set(KINDS) == {"lm", "classify", "tag", "translate"}
    assert get("classify").kind == "classify"
    for kind in set(KINDS) - set(_MODULES):  # the tasks still to come
        with pytest.raises(UsageError, match=f"--task {kind}: training a .* is not implemented"):
            get(kind)
    with pytest.raises(UsageError, match="--task must be one of"):
        get("poetry")


def test_train_emits_events_saves_and_returns_the_summary(tmp_path, one_thread):
    out, events = tmp_path / "m.npz", []
    summary = train(str(NAMES), out=str(out), on_event=lambda k, i: events.append((k, i)),
                    steps=4, eval_every=2, sample_every=3, threads=one_thread, **TINY)
    kinds = [k for k, _ in events]
    assert kinds[:1] == ["detail"] and "--task lm (guessed" in events[0][1]["message"]
    assert kinds.index("compiling") < kinds.index("compiled") < kinds.index("start") \
        < kinds.index("step")
    start = dict(events)["start"]
    assert start["task"] == "lm" and start["out"] == str(out) and start["step"] == 0
    assert start["model"]["hidden"] == 8 and start["sizes"]["B"] == 4
    assert start["defaults"] == {"dropout": 0.0, "softmax": "full", "classes": 0}  # not given
    evals = [i for k, i in events if k == "eval"]
    saves = [i for k, i in events if k == "saved"]
    assert [e["step"] for e in evals] == [2, 4]
    assert [(s["step"], s["reason"]) for s in saves] == [(2, "eval"), (4, "eval"), (4, "end")]
    assert all(kinds[kinds.index("eval", j) - 1] == "saved" for j in range(len(kinds))
               if kinds[j] == "eval")  # the file is written before the eval is reported
    assert [i["step"] for k, i in events if k == "sample"] == [3]
    assert any(k == "notice" and "char tokens" in i["message"] for k, i in events)
    assert summary["reason"] == "steps" and summary["steps"] == 4 and summary["model"] == str(out)
    assert summary["val_loss"] == evals[-1]["val_loss"] and summary["wall_seconds"] > 0
    assert checkpoint.load(str(out)).state["step"] == 4


def test_should_stop_saves_and_resume_continues(tmp_path, one_thread):
    out, steps = str(tmp_path / "m.npz"), []

    def on_event(kind, info):
        if kind == "step":
            steps.append(info["step"])

    summary = train(str(NAMES), out=out, on_event=on_event, should_stop=lambda: len(steps) >= 2,
                    steps=50, threads=one_thread, **TINY)
    assert summary["reason"] == "interrupted" and summary["steps"] == 2
    assert checkpoint.load(out).state["step"] == 2
    summary = train(str(NAMES), out=out, resume=True, steps=3, threads=one_thread)
    assert summary["reason"] == "steps" and summary["steps"] == 3
    with pytest.raises(UsageError, match="--hidden 16 conflicts with the resumed model"):
        train(str(NAMES), out=out, resume=True, steps=4, hidden=16)


def test_options_a_task_does_not_read_are_refused(tmp_path):
    with pytest.raises(UsageError, match="--labels, --pool do not apply to --task lm"):
        train(str(NAMES), out=str(tmp_path / "m.npz"), pool="max", labels=3, hidden=None)
    with pytest.raises(CorpusError, match="is neither a CoNLL column file nor CoNLL-U"):
        train(str(NAMES), task="tag", out=str(tmp_path / "m.npz"))  # a list of names
    assert not (tmp_path / "m.npz").exists()


def test_cli_says_what_it_guessed(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("__label__pos a fine film\n__label__neg dull\n")
    r = run_cli("train", labels, "-o", tmp_path / "m.npz", "--steps", 1, "--hidden", 8,
                "--embed", 8, "--threads", 1, home=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0 and r.stdout == b"", err
    assert "--task classify (guessed:" in err and "all start with __label__" in err
    # standard input is peeked at, not consumed: the guess sees it
    r = rnn("train", "-", "-o", tmp_path / "t.npz", "--steps", 1, "--hidden", 8, "--embed", 8,
            "--threads", 1, input=b"the cat\tle chat\nhi\tsalut\n", home=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0 and "--task translate (guessed: standard input:" in err, err
    assert (tmp_path / "t.npz").exists()
