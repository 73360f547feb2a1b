"""`--device cpu|cuda|auto` without a GPU: the CPU suite's side of the optional CUDA target.

These run in the normal suite (no GPU, no simulator needed): the availability probe is replaced by
a stub, so nothing here imports numba.cuda. The device kernels themselves are in test_cuda.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from rnn_cli.cuda import backend
from rnn_cli.errors import RnnCliError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(backend, "probe", lambda: (False, "no CUDA driver or GPU was found"))


def test_importing_the_backend_does_not_import_numba_cuda():
    code = ("import sys, rnn_cli.cuda, rnn_cli.cuda.backend as b; b.resolve('cpu'); "
            "print(any(m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cuda_without_gpu_is_one_error_with_a_hint(no_gpu):
    with pytest.raises(RnnCliError) as e:
        backend.resolve("cuda")
    assert "no usable GPU" in e.value.message and "no CUDA driver" in e.value.message
    assert "rnn-cli[cuda]" in e.value.hint and "nvidia-smi" in e.value.hint
    assert "\n" not in e.value.message + e.value.hint


def test_auto_falls_back_to_cpu_with_a_notice(no_gpu):
    notices = []
    assert backend.resolve("auto", notices.append) == "cpu"
    assert len(notices) == 1 and "running on the CPU" in notices[0]
    assert backend.resolve("cpu", notices.append) == "cpu" and len(notices) == 1


def test_probe_without_numba_cuda_says_so(monkeypatch):
    real = backend.importlib.util.find_spec
    monkeypatch.setattr(backend.importlib.util, "find_spec",
                        lambda name: None if name == "numba_cuda" else real(name))
    assert backend.probe() == (False, "the numba-cuda package is not installed")


@pytest.mark.parametrize("command", ("train", "sample"))
def test_cli_device_cuda_without_gpu_exits_1(no_gpu, command, tmp_path, capsys):
    from rnn_cli.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 20)
    args = ["train", str(corpus), "-o", str(tmp_path / "m.npz")] if command == "train" \
        else ["sample", "-m", str(tmp_path / "missing.npz")]
    assert main([*args, "--device", "cuda", "--no-color"]) == 1
    err = capsys.readouterr().err
    assert "rnn-cli: error: --device cuda: no usable GPU" in err and "rnn-cli[cuda]" in err


@pytest.mark.parametrize("kw", [dict(cell="gru"), dict(cell="lstm", layers=2),
                                dict(cell="gru", embed=8, tie_weights=True, hidden=8),
                                dict(cell="rnn", dropout=0.3)])
def test_every_full_softmax_model_runs_on_the_device(kw):
    from rnn_cli.config import ModelConfig

    cfg = ModelConfig(vocab_size=10, **{"hidden": 4, **kw}).validate()
    notices = []
    assert backend.for_model("cuda", "cuda", cfg, notices.append, training=True) == "cuda"
    assert backend.for_model("cuda", "auto", cfg, notices.append) == "cuda" and not notices
