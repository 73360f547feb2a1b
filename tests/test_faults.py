"""Faults during training and output, through the real `rnn-cli` in subprocesses: Ctrl-C and
SIGTERM, kill -9 during a save, a full disk, a diverging loss, exact --resume, two writers of one
path, stdout closed early, a terminal on stdin. Nothing may be lost and nothing may traceback.
Set-up and follow-up runs that are not the fault itself go through main() in this process
(clihelp.run_cli)."""

from __future__ import annotations

import errno
import os
import pty
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from clihelp import (NAMES, ROOT, TINY, assert_clean_error, cmd, env, ok, rnn, run_cli,
                     run_cli_many, start, stray_temps)
from rnn_cli import checkpoint


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """~1000 characters: 28 windows of 4 x 8 per epoch, so a few dozen steps cross epochs."""
    path = tmp_path_factory.mktemp("corpus") / "names-1k.txt"
    path.write_text(NAMES.read_text()[:1000])
    return path


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, small_corpus):
    out = tmp_path_factory.mktemp("base") / "base.npz"
    ok(run_cli("train", small_corpus, "-o", out, *TINY, "--steps", "10", "--eval-every", "5",
               "-q"))
    return out


def copy_of(model, tmp_path, name="m.npz"):
    dst = tmp_path / name
    dst.write_bytes(model.read_bytes())
    return dst


def wait_for(path, proc, timeout=120.0):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() - t0 < timeout, "the model file never appeared"
        time.sleep(0.05)


def loads_finite(path, level="char"):
    m = checkpoint.load(str(path), level)
    assert np.isfinite(m.params.flat).all()
    return m


# ----------------------------------------------------------------- Ctrl-C and SIGTERM
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_and_says_how_to_resume(tmp_path, small_corpus, sig):
    out = tmp_path / "m.npz"
    proc = start("train", small_corpus, "-o", out, *TINY, "--steps", "100000000",
                 "--eval-every", "50")
    wait_for(out, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    m = re.search(r"rnn-cli: error: interrupted at step (\d+); the model is saved in (\S+)", err)
    assert m and m.group(2) == str(out), err
    assert f"--resume -o {out}" in err
    model = loads_finite(out)
    assert model.state["step"] == int(m.group(1)) >= 50
    assert stray_temps(tmp_path) == []
    # and it resumes from exactly there
    ok(run_cli("train", small_corpus, "--resume", "-o", out, "--steps",
               str(model.state["step"] + 3), "-q"))
    assert checkpoint.load(str(out)).state["step"] == model.state["step"] + 3


def run_cli_interrupted_in_compiler(args, case: str):
    """`rnn-cli ARGS` in a subprocess whose training, instead of running, takes Ctrl-C where
    numba's compiler does: inside a C library's callback into Python (llvmlite's object cache),
    where ctypes swallows the KeyboardInterrupt ("Exception ignored on calling ctypes callback").
    case "fails": then the library fails in its own way (numba: "no compiled object yet");
    "goes-on": it does not, and training starts; "second": the first Ctrl-C came after a save
    (a flag the step loop polls), the second lands in the compiler, which fails."""
    script = textwrap.dedent(f"""
        import ctypes, signal, sys
        from rnn_cli import training
        def compiler_callback():
            ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGINT))()
        def fake_train(corpus, *, on_event, should_stop, out=None, **options):
            if {case!r} == "second":
                on_event("start", {{"step": 0}})
                on_event("saved", {{"path": out, "step": 3}})
                signal.raise_signal(signal.SIGINT)
                assert should_stop()
            compiler_callback()
            if {case!r} in ("fails", "second"):
                raise RuntimeError("no compiled object yet for <Library '_gru_backward'>")
            on_event("start", {{"step": 0}})
            print("trained on", file=sys.stderr)
        training.train = fake_train
        from rnn_cli.cli import main
        sys.exit(main({[str(a) for a in args]!r}))
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, env=env(),
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("case", ["fails", "goes-on", "second"])
def test_ctrl_c_inside_the_kernel_compiler_exits_130_without_a_traceback(tmp_path,
                                                                         small_corpus, case):
    out = tmp_path / "m.npz"
    proc = run_cli_interrupted_in_compiler(["train", small_corpus, "-o", out], case)
    err = proc.stderr.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err and "trained on" not in err
    if case == "second":
        assert re.search(rf"rnn-cli: error: interrupted at step 3; the model is saved in {out}",
                         err), err
    else:
        assert err.strip().splitlines()[-1] == "rnn-cli: error: interrupted", err


# ----------------------------------------------------------------- kill -9 and a full disk
def run_cli_with_fault(args, fault: str, tmp_path):
    """`rnn-cli ARGS` in a subprocess whose np.savez writes 1000 bytes, then hits `fault`:
    'kill' (SIGKILL itself mid-save) or 'enospc' (the write fails: disk full)."""
    script = textwrap.dedent(f"""
        import errno, os, signal, sys
        import numpy as np
        from rnn_cli import checkpoint
        def faulty_savez(f, **arrays):
            f.write(b"PK\\x03\\x04" + b"x" * 996)
            f.flush()
            if {fault!r} == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        checkpoint.np.savez = faulty_savez
        from rnn_cli.cli import main
        sys.exit(main({[str(a) for a in args]!r}))
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, env=env(),
                          cwd=ROOT, timeout=300)


def test_kill_9_during_save_keeps_previous_model(tmp_path, small_corpus, base_model):
    out = copy_of(base_model, tmp_path)
    before = out.read_bytes()
    proc = run_cli_with_fault(["train", small_corpus, "--resume", "-o", out, "--steps", "30"],
                              "kill", tmp_path)
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == before
    loads_finite(out)
    leftovers = stray_temps(tmp_path)
    assert len(leftovers) == 1  # a killed process cannot clean up ...
    old = time.time() - 3600
    os.utime(tmp_path / leftovers[0], (old, old))
    ok(run_cli("train", small_corpus, "--resume", "-o", out, "--steps", "12", "-q"))
    assert stray_temps(tmp_path) == []  # ... the next save removes its stale temp file
    assert checkpoint.load(str(out)).state["step"] == 12


@pytest.mark.parametrize("kills", [2, pytest.param(12, marks=pytest.mark.slow)])
def test_kill_9_at_random_moments(tmp_path, small_corpus, kills):
    """Saving after every step, killed at random times: the file always loads."""
    out = tmp_path / "m.npz"
    rng = np.random.default_rng(kills)
    for _ in range(kills):
        proc = start("train", small_corpus, "-o", out, "--hidden", "96", "--batch-size", "4",
                     "--seq-len", "8", "--threads", "1", "--eval-every", "1",
                     "--steps", "100000000", "--resume" if out.exists() else "--quiet", "-q")
        wait_for(out, proc)
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.kill()
        proc.communicate(timeout=60)
        loads_finite(out)


def test_disk_full_is_a_clean_error_and_keeps_the_model(tmp_path, small_corpus, base_model):
    out = copy_of(base_model, tmp_path)
    before = out.read_bytes()
    proc = run_cli_with_fault(["train", small_corpus, "--resume", "-o", out, "--steps", "30"],
                              "enospc", tmp_path)
    assert_clean_error(proc, 1, "cannot save the model to", "No space left on device",
                       "the previous model at", "is unchanged")
    assert out.read_bytes() == before and stray_temps(tmp_path) == []


def _limit_file_size(n_bytes):
    def setup():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))
    return setup


def test_file_size_limit_without_injection(tmp_path, small_corpus, base_model):
    """A real failing write (RLIMIT_FSIZE, no code injected): same clean refusal."""
    out = copy_of(base_model, tmp_path)
    before = out.read_bytes()
    proc = subprocess.run(cmd("train", small_corpus, "--resume", "-o", out, "--steps", "30"),
                          capture_output=True, env=env(), cwd=ROOT, timeout=300,
                          preexec_fn=_limit_file_size(len(before) // 2))
    assert_clean_error(proc, 1, "cannot save the model to", "is unchanged")
    assert out.read_bytes() == before and stray_temps(tmp_path) == []


# ----------------------------------------------------------------- a diverging loss
DIVERGE = ("--activation", "relu", "--lr", "1000", "--clip", "0")


def test_nan_loss_stops_with_a_hint_and_keeps_a_finite_model(tmp_path, small_corpus):
    out = tmp_path / "m.npz"
    proc = rnn("train", small_corpus, "-o", out, *TINY, *DIVERGE, "--steps", "200",
               "--eval-every", "1")
    err = assert_clean_error(proc, 1, "became nan", "lower --lr", "--clip")
    assert "RuntimeWarning" not in err
    loads_finite(out)
    ok(rnn("sample", "-m", out, "-n", "10"))
    assert stray_temps(tmp_path) == []


def test_nan_on_resume_keeps_the_last_good_model(tmp_path, small_corpus):
    out = tmp_path / "m.npz"
    ok(rnn("train", small_corpus, "-o", out, *TINY, "--activation", "relu", "--steps", "10",
           "--eval-every", "5", "-q"))
    before = out.read_bytes()
    proc = rnn("train", small_corpus, "--resume", "-o", out, "--lr", "1000", "--clip", "0",
               "--steps", "200", "--eval-every", "1")
    assert_clean_error(proc, 1, "became nan")
    assert out.read_bytes() == before  # the blown-up step was never saved
    assert loads_finite(out).state["step"] == 10


# ----------------------------------------------------------------- exact resume
def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def check_resume_is_bit_identical(tmp_path, corpus, n, m, threads, extra=()):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    # a constant rate: under the cosine schedule a run of N steps is not the start of one of N+M
    # (its rate falls to 0 by step N); test_interrupted_cosine_run_resumes_bit_identically
    common = ("--hidden", "8", "--batch-size", "4", "--seq-len", "8", "--threads", str(threads),
              "--eval-every", "10", "--seed", "5", "-q", "--lr-schedule", "constant", *extra)
    ok(rnn("train", corpus, "-o", one, "--steps", str(n + m), *common))
    ok(rnn("train", corpus, "-o", two, "--steps", str(n), *common))
    ok(rnn("train", corpus, "--resume", "-o", two, "--steps", str(n + m), "--threads",
           str(threads), "-q", *extra[:2]))
    a, b = _arrays(one), _arrays(two)
    assert sorted(a) == sorted(b)
    for name in a:
        if name in ("history", "meta", "rng_state"):
            continue
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(a["history"][:, :3], b["history"][:, :3])  # not the seconds
    assert a["history"].shape[0] == (n + m) // 10
    ma, mb = checkpoint.load(str(one)), checkpoint.load(str(two))
    for key in ("step", "tokens", "batches", "carry", "best_val"):
        assert ma.state[key] == mb.state[key], key
    assert ma.rng_state == mb.rng_state
    assert ma.state["batches"]["epoch"] >= 2


def test_resume_is_bit_identical(tmp_path, small_corpus):
    """N steps + --resume + M steps == N+M steps in one run: losses, parameters, optimizer
    moments, data position, carried state and RNG, bit for bit (crossing epoch boundaries)."""
    check_resume_is_bit_identical(tmp_path, small_corpus, 30, 40, threads=1)


def test_resume_is_bit_identical_with_sparse_updates(tmp_path, small_corpus):
    """The same for a word model with the class softmax and --updates sparse (lazy Adam's
    moments, the rows left zero in the gradient buffer)."""
    # (--dropout given: a new word model's default dropout follows its budget, and the two runs'
    # budgets differ)
    check_resume_is_bit_identical(tmp_path, small_corpus, 30, 40, threads=1,
                                  extra=("--level", "word", "--softmax", "classes",
                                         "--classes", "5", "--updates", "sparse",
                                         "--dropout", "0.1"))


@pytest.mark.slow
def test_resume_is_bit_identical_with_parallel_kernels(tmp_path, small_corpus):
    """The same with 2 threads (batch-parallel kernels, threaded BLAS) and a resume mid-epoch."""
    check_resume_is_bit_identical(tmp_path, small_corpus, 50, 100, threads=2)


def test_interrupted_cosine_run_resumes_bit_identically(tmp_path):
    """A run stopped early (Ctrl-C) and resumed toward the same --steps follows the same cosine
    rates, so it ends bit for bit where the uninterrupted run ends."""
    from rnn_cli.config import ModelConfig, TrainConfig
    from rnn_cli.params import Params
    from rnn_cli.tasks.lm.train import Trainer
    from rnn_cli.vocab import build_vocab

    text = "to be or not to be, that is the question\n" * 6
    vocab = build_vocab(text, "char")
    ids, _ = vocab.encode(text)
    cfg = ModelConfig(cell="gru", hidden=6, vocab_size=len(vocab)).validate()
    tcfg = TrainConfig(batch_size=3, seq_len=7, steps=25, eval_every=10, seed=3,
                       lr=0.01, lr_schedule="cosine").validate()

    def trainer(model=None):
        rng = np.random.default_rng(3)
        model = model or checkpoint.Model(cfg, vocab, Params(cfg).init(rng), tcfg)
        if model.rng_state is not None:
            rng.bit_generator.state = model.rng_state
        return Trainer(model, tcfg, ids[:200], ids[200:], rng)

    whole = trainer()
    whole.run()
    first = trainer()
    first.run(should_stop=lambda: first.step >= 12)
    checkpoint.save(first.to_model(), tmp_path / "m.npz")
    rest = trainer(checkpoint.load(str(tmp_path / "m.npz")))
    assert rest.step == 12
    rest.run()
    np.testing.assert_array_equal(whole.params.flat, rest.params.flat)
    assert whole.opt.lr == rest.opt.lr > 0.0


def test_resume_with_conflicting_architecture_is_an_error(tmp_path, small_corpus, base_model):
    out = copy_of(base_model, tmp_path)
    before = out.read_bytes()
    cases = {("--hidden", "32"): (2, "--hidden 32 conflicts"),
             ("--activation", "relu"): (2, "--activation relu conflicts"),
             ("--optim", "sgd"): (2, "--optim conflicts"),
             ("--level", "word"): (1, "char-level model")}
    runs = run_cli_many({flags: ("train", small_corpus, "--resume", "-o", out, "--steps", "20",
                                 *flags) for flags in cases})
    for flags, (code, needle) in cases.items():
        assert_clean_error(runs[flags], code, needle)
    assert out.read_bytes() == before


# ----------------------------------------------------------------- two writers, one path
def test_two_trainings_on_one_path_later_save_wins_whole(tmp_path, small_corpus):
    out = tmp_path / "shared.npz"
    args = ("train", small_corpus, "-o", out, "--hidden", "24", "--batch-size", "4",
            "--seq-len", "8", "--threads", "1", "--eval-every", "1", "--steps", "20", "-q")
    procs = [start(*args, "--seed", str(seed)) for seed in (1, 2)]
    loads = 0
    while any(p.poll() is None for p in procs):  # a reader never sees a partial file
        if out.exists():
            checkpoint.load(str(out))
            loads += 1
        time.sleep(0.05)
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode()
    final = checkpoint.load(str(out))
    seed = final.train_cfg.seed
    assert seed in (1, 2) and final.state["step"] == 20
    alone = tmp_path / "alone.npz"
    ok(run_cli("train", small_corpus, "-o", alone, *args[4:], "--seed", str(seed)))
    np.testing.assert_array_equal(checkpoint.load(str(alone)).params.flat, final.params.flat)
    assert loads > 0 and stray_temps(tmp_path) == []


# ----------------------------------------------------------------- output and input
def test_sample_into_head_c_1_exits_quietly(base_model):
    line = f"{' '.join(cmd('sample', '-m', base_model, '-n', '300000'))} | head -c 1"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; " + line], capture_output=True,
                          env=env(), cwd=ROOT, timeout=120)
    assert len(proc.stdout) == 1
    assert proc.stderr == b""
    assert proc.returncode == 1  # BrokenPipeError: no message, exit 1 (see README)


def _with_tty_stdin(*args):
    master, slave = pty.openpty()
    try:
        return subprocess.run(cmd(*args), stdin=slave, capture_output=True, env=env(),
                              cwd=ROOT, timeout=60)
    finally:
        os.close(master)
        os.close(slave)


def test_terminal_on_stdin_is_never_waited_on(tmp_path, base_model):
    proc = _with_tty_stdin("train", "-", "-o", tmp_path / "m.npz")
    assert_clean_error(proc, 1, "standard input is a terminal", "pipe text in")
    assert not (tmp_path / "m.npz").exists()
    proc = _with_tty_stdin("sample", "-m", base_model, "--prime", "-")
    assert_clean_error(proc, 2, "--prime - reads standard input, but it is a terminal")


def test_no_temp_files_after_normal_runs(tmp_path, small_corpus):
    out = tmp_path / "m.npz"
    ok(run_cli("train", small_corpus, "-o", out, *TINY, "--steps", "6", "--eval-every", "2",
               "-q"))
    assert stray_temps(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["m.npz"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_errno_names_are_what_the_messages_say():
    assert os.strerror(errno.ENOSPC) == "No space left on device"
