"""Hostile or broken model files: refused with one clear line (exit 1), never executed, never a
traceback; and a seeded mutation fuzzer over the loader (50 cases here, 1000 in the slow tier).
The commands run through main() in this process (clihelp.run_cli); the slow tier runs the real
`rnn-cli` in subprocesses."""

from __future__ import annotations

import io
import json
import math
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

from clihelp import NAMES, TINY, assert_clean_error, ok, rnn, rnn_many, run_cli, run_cli_many
from rnn_cli import checkpoint
from rnn_cli.errors import ModelFileError, RnnCliError


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "char.npz"
    ok(run_cli("train", NAMES, "-o", out, *TINY, "--steps", "6", "--eval-every", "3", "-q"))
    return out


def arrays_of(path) -> dict:
    with np.load(path, allow_pickle=False) as z:  # our own, trusted file
        return {k: z[k] for k in z.files}


def rewrite(src, dst, meta=None, **changes):
    """Copy the model at src to dst with arrays replaced (None deletes) and meta fields updated."""
    arrays = arrays_of(src)
    if meta:
        m = json.loads(str(arrays["meta"][()]))
        for key, value in meta.items():
            section, _, field = key.partition(".")
            if field:
                m[section][field] = value
            else:
                m[section] = value
        arrays["meta"] = np.array(json.dumps(m))
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    np.savez(dst, **arrays)
    return dst


def refused(path, *needles, level=None):
    args = ["sample", "-m", path, "-n", "5"] + (["--level", level] if level else [])
    return assert_clean_error(run_cli(*args), 1, *needles)


def all_refused(cases: dict):
    """{path: needles}: `rnn-cli sample -m PATH` on each, side by side; each refused cleanly."""
    runs = run_cli_many({path: ("sample", "-m", path, "-n", "5") for path in cases})
    for path, needles in cases.items():
        assert_clean_error(runs[path], 1, *((needles,) if isinstance(needles, str) else needles))


# ----------------------------------------------------------------- not a model file at all
def test_missing_directory_empty_and_random_bytes(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    np.save(tmp_path / "single.npy", np.zeros(3))
    all_refused({tmp_path / "nope.npz": "no model file at", tmp_path: "is a directory",
                 tmp_path / "empty.npz": "empty file",
                 tmp_path / "random.npz": "not an .npz archive",
                 tmp_path / "single.npy": "single .npy array"})


def test_truncated_npz(char_model, tmp_path):
    data = char_model.read_bytes()
    cases = {}
    for n in (4, 100, len(data) // 2, len(data) - 1):
        (tmp_path / f"t{n}.npz").write_bytes(data[:n])
        cases[tmp_path / f"t{n}.npz"] = "not a readable model file"
    all_refused(cases)


class _Marker:
    """Unpickling this would create a file: proof that nothing is executed."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_array_is_refused_and_never_executed(char_model, tmp_path):
    marker = tmp_path / "pwned"
    _Marker.path = str(marker)
    evil = np.empty(1, dtype=object)
    evil[0] = _Marker()
    bad = rewrite(char_model, tmp_path / "evil.npz", param__W_ya=evil)
    err = refused(bad, "never pickled objects")
    assert "param.W_ya" in err and not marker.exists()
    # a member whose bytes are a raw pickle, not .npy
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as zf:
        zf.writestr("magic.npy", pickle.dumps(_Marker()))
    refused(tmp_path / "raw.npz", "not a readable model file")
    assert not marker.exists()


def test_wrong_magic_and_newer_format(char_model, tmp_path):
    refused(rewrite(char_model, tmp_path / "m.npz", magic=np.array("not-a-model")), "wrong magic")
    newer = rewrite(char_model, tmp_path / "v.npz", format_version=np.array(7, np.int32),
                    meta={"rnn_cli_version": "3.1.0"})
    err = refused(newer, "format version 7", "rnn-cli 3.1.0 or newer")
    assert "pip install -U" in err


def test_shapes_disagree_with_config(char_model, tmp_path):
    a = arrays_of(char_model)
    all_refused({
        rewrite(char_model, tmp_path / "t.npz", param__W_ya=a["param.W_ya"].T.copy()):
            ("param.W_ya", "expected float32"),
        rewrite(char_model, tmp_path / "h.npz", meta={"model.hidden": 12}): "param.",
        rewrite(char_model, tmp_path / "d.npz", param__b_y=a["param.b_y"].astype(np.float64)):
            "float64",
        rewrite(char_model, tmp_path / "x.npz", param__W_aa=None): "'param.W_aa' is missing",
        # a huge hidden size is refused by shape before anything that size is allocated
        rewrite(char_model, tmp_path / "big.npz", meta={"model.hidden": 10 ** 12}): "param.",
        rewrite(char_model, tmp_path / "s.npz", meta={"model.hidden": "16"}): "hidden"})


def test_non_finite_weights(char_model, tmp_path):
    cases = {}
    for i, value in enumerate((np.nan, np.inf, -np.inf)):
        w = arrays_of(char_model)["param.W_aa"].copy()
        w.flat[3] = value
        cases[rewrite(char_model, tmp_path / f"n{i}.npz", param__W_aa=w)] = "NaN or infinite"
    all_refused(cases)


def test_vocabulary_with_duplicates_and_wrong_level(char_model, tmp_path):
    cps = arrays_of(char_model)["vocab_codepoints"].copy()
    cps[1] = cps[0]
    refused(rewrite(char_model, tmp_path / "dup.npz", vocab_codepoints=cps), "duplicate symbols")
    err = refused(char_model, "char-level model", "--level word", level="word")
    assert "--level char" in err


def test_declared_giant_array_cannot_exhaust_memory(char_model, tmp_path):
    """A header declaring 10^12 floats (4 TB) and a deflate bomb are refused before reading."""
    giant = tmp_path / "giant.npz"
    with zipfile.ZipFile(char_model) as src, zipfile.ZipFile(giant, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "param.W_ya.npy":
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 6, 10 ** 6)})
                data = buf.getvalue() + data[128:]
            dst.writestr(info.filename, data)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(char_model) as src, \
            zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "param.W_ya.npy":
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.zeros(40 << 20, np.float32))  # 160 MB of zeros
                data = buf.getvalue()
            dst.writestr(info.filename, data)
    tracemalloc.start()
    try:
        for path, needle in ((giant, "declares"), (bomb, "expand")):
            with pytest.raises(ModelFileError, match=needle):
                checkpoint.load(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak
    refused(giant, "declares")
    refused(bomb, "expand")


def test_broken_resume_state_refused_and_model_kept(char_model, tmp_path):
    bad = rewrite(char_model, tmp_path / "state.npz", meta={"state.step": "seven"})
    before = bad.read_bytes()
    err = assert_clean_error(run_cli("train", NAMES, "--resume", "-o", bad, "--steps", "9"), 1,
                             "training state")
    assert "step" in err and bad.read_bytes() == before
    carry = rewrite(char_model, tmp_path / "carry.npz", meta={"state.carry": [0.0] * 3})
    refused(carry, "carry")
    budget = rewrite(char_model, tmp_path / "budget.npz", meta={"state.eval_budget": 7.5})
    refused(budget, "eval_budget")


# ----------------------------------------------------------------- the fuzzer
MUTATIONS = ("flip", "truncate", "duplicate", "splice", "fill", "delete")


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip / truncate / duplicate / splice / fill / delete bytes of a valid file."""
    b, n = bytearray(data), len(data)
    op = MUTATIONS[rng.integers(len(MUTATIONS))]
    i, j = sorted(rng.integers(0, n, 2))
    k = int(rng.integers(0, n))
    if op == "flip":
        for pos in rng.integers(0, n, rng.integers(1, 9)):
            b[pos] ^= 1 << int(rng.integers(8))
    elif op == "truncate":
        del b[k:]
    elif op == "duplicate":
        b[k:k] = data[i:min(j, i + 4096)]
    elif op == "splice":
        m = int(min(j - i, n - k, 512))
        b[k:k + m] = data[i:i + m]
    elif op == "fill":
        b[i:min(j, i + 256)] = bytes([int(rng.choice([0, 0xFF]))]) * (min(j, i + 256) - i)
    else:
        del b[i:min(j, i + 256)]
    return bytes(b)


_ODD = [-1, 0, 1, 2, 10 ** 12, -10 ** 12, 0.5, 1e308, float("nan"), float("inf"), "x", "",
        None, True, [], {}, [1, 2], "char", "word", "rnn", "relu"]


def _odd(rng):
    return _ODD[int(rng.integers(len(_ODD)))]


def mutate_arrays(arrays: dict, rng: np.random.Generator) -> dict:
    """Structure-aware mutation that keeps the zip valid, so the checks behind the CRC run."""
    arrays = {k: v.copy() for k, v in arrays.items()}
    name = sorted(arrays)[int(rng.integers(len(arrays)))]
    a = arrays[name]
    op = int(rng.integers(8))
    if name in ("meta", "rng_state") and op < 5:
        m = json.loads(str(a[()]))
        sections = [m] + [v for v in m.values() if isinstance(v, dict)]
        sec = sections[int(rng.integers(len(sections)))]
        if sec:
            key = sorted(sec)[int(rng.integers(len(sec)))]
            sec[key] = _odd(rng) if op < 4 else {"nested": _odd(rng)}
        arrays[name] = np.array(json.dumps(m, allow_nan=True))
    elif op == 0 and a.size:
        a.flat[int(rng.integers(a.size))] = (np.nan if a.dtype.kind == "f" else
                                            -1 if a.dtype.kind in "iu" else a.flat[0])
    elif op == 1:
        arrays[name] = a.astype([np.float64, np.int64, np.float16, ">f4", np.int32][
            int(rng.integers(5))]) if a.dtype.kind != "U" else np.array(5)
    elif op == 2 and a.size:
        arrays[name] = a.ravel()[:int(rng.integers(a.size))]
    elif op == 3:
        arrays[name] = a.reshape(-1)
    elif op == 4 and a.dtype.kind in "iuf" and a.size:
        with np.errstate(all="ignore"):
            arrays[name] = (a * 10.0 ** int(rng.integers(1, 40))).astype(a.dtype) \
                if a.dtype.kind == "f" else a + a.dtype.type(int(rng.integers(1, 100)))
    elif op == 5:
        del arrays[name]
    elif op == 6 and a.size > 1:
        arrays[name] = np.roll(a, 1)
    else:
        obj = np.empty(1, object)
        obj[0] = {"x": 1}
        arrays[name] = obj
    return arrays


def _exercise(model):
    """A model that loaded must be usable: sample a few tokens, and take a resumed train step."""
    from rnn_cli.tasks.lm.sample import SampleConfig, Sampler
    from rnn_cli.tasks.lm.train import Trainer
    from rnn_cli.tasks.lm.windows import Batches

    s = Sampler(model)
    x0, _ = s.prime("a")
    text = "".join(s.generate(SampleConfig(length=5), np.random.default_rng(0), x0))
    assert isinstance(text, str)
    b = model.state.get("batches")
    if not b or b["n_tokens"] > 100_000:
        return
    ids = np.random.default_rng(1).integers(0, len(model.vocab), b["n_tokens"]).astype(np.int32)
    rng = np.random.default_rng(model.train_cfg.seed)
    if model.rng_state:
        rng.bit_generator.state = model.rng_state
    try:
        Batches(ids, model.train_cfg.batch_size, model.train_cfg.seq_len)
    except RnnCliError:
        return
    tcfg = model.train_cfg
    with np.errstate(all="ignore"):
        trainer = Trainer(model, tcfg, ids, ids[:50], rng)
        trainer.train_step()


def run_fuzz(base: bytes, n_cases: int, seed: int, tmp_path) -> dict:
    """n_cases mutations of `base`; each must load cleanly or raise RnnCliError. Returns counts."""
    rng = np.random.default_rng(seed)
    with np.load(io.BytesIO(base), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    counts = {"loaded": 0, "refused": 0}
    path = tmp_path / "fuzz.npz"
    for case in range(n_cases):
        if case % 2:
            data = mutate_bytes(base, rng)
            if rng.random() < 0.3:
                data = mutate_bytes(data, rng)
        else:
            buf = io.BytesIO()
            np.savez(buf, **mutate_arrays(arrays, rng))
            data = buf.getvalue()
        path.write_bytes(data)
        try:
            model = checkpoint.load(str(path))
        except RnnCliError as e:
            assert e.message and e.hint, (case, e.message)
            counts["refused"] += 1
            continue
        except Exception as e:  # pragma: no cover - a fuzz finding
            raise AssertionError(f"case {case} (seed {seed}): {type(e).__name__}: {e}") from e
        try:
            _exercise(model)
        except RnnCliError:
            pass
        except Exception as e:  # pragma: no cover - a fuzz finding
            raise AssertionError(f"case {case} (seed {seed}) loaded but is unusable: "
                                 f"{type(e).__name__}: {e}") from e
        counts["loaded"] += 1
    assert counts["loaded"] + counts["refused"] == n_cases
    return counts


def test_fuzz_loader_default_tier(char_model, tmp_path):
    counts = run_fuzz(char_model.read_bytes(), 50, seed=6, tmp_path=tmp_path)
    assert counts["refused"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_loader_slow_tier(char_model, tmp_path, seed):
    counts = run_fuzz(char_model.read_bytes(), 500, seed=seed, tmp_path=tmp_path)
    assert counts["refused"] > 0 and counts["loaded"] > 0


@pytest.mark.slow
def test_fuzz_word_model_slow_tier(tmp_path):
    out = tmp_path / "word.npz"
    ok(rnn("train", NAMES, "--level", "word", "-o", out, *TINY, "--steps", "6",
           "--eval-every", "3", "-q"))
    counts = run_fuzz(out.read_bytes(), 500, seed=3, tmp_path=tmp_path)
    assert counts["refused"] > 0


def test_fuzzed_files_from_the_cli(char_model, tmp_path):
    """A few mutated files through `rnn-cli sample`: exit 0 with text, or one clean error."""
    rng = np.random.default_rng(11)
    base = char_model.read_bytes()
    for i in range(4):
        path = tmp_path / f"f{i}.npz"
        path.write_bytes(mutate_bytes(base, rng))
        proc = run_cli("sample", "-m", path, "-n", "5", "--seed", "1")
        if proc.returncode != 0:
            assert_clean_error(proc, 1)
        assert b"Traceback" not in proc.stderr


@pytest.mark.slow
def test_fuzzed_files_that_load_resume_and_sample_from_the_cli(char_model, tmp_path):
    """Mutants that pass the loader, through `train --resume` and `sample`: no traceback ever."""
    rng = np.random.default_rng(21)
    base = char_model.read_bytes()
    with np.load(io.BytesIO(base), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    jobs = {}
    for case in range(400):
        buf = io.BytesIO()
        np.savez(buf, **mutate_arrays(arrays, rng))
        path = tmp_path / f"c{case}.npz"
        path.write_bytes(buf.getvalue())
        try:
            checkpoint.load(str(path))
        except RnnCliError:
            continue
        jobs[path, "train"] = ("train", NAMES, "--resume", "-o", path, "--steps", "9",
                               "--threads", "1", "-q")
        jobs[path, "sample"] = ("sample", "-m", path, "-n", "20")
        if len(jobs) >= 40:
            break
    assert len(jobs) >= 20
    for key, proc in rnn_many(jobs).items():
        if proc.returncode != 0:
            assert_clean_error(proc, proc.returncode)
        assert proc.returncode in (0, 1, 2) and b"Traceback" not in proc.stderr, key


def test_valid_model_round_trips(char_model):
    m = checkpoint.load(str(char_model), "char")
    assert m.cfg.level == "char" and math.isfinite(m.state["best_val"])
    _exercise(m)


def test_these_tests_import_the_code_under_test():
    """The shared venv also has an editable install of another checkout: make sure the in-process
    fuzzing above ran against this tree's loader."""
    from clihelp import ROOT

    assert checkpoint.__file__.startswith(str(ROOT))
