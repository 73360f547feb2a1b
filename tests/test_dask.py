"""`rnn-cli score --dask` on a `dask.distributed.LocalCluster` of two worker processes: the rows
equal a single-process run, byte for byte, in input order, with errors in the same place.

One cluster for the module (started by `dask_score.Session.open("local:2")`, as `--dask local:2`
does); the CLI tests reach it by its scheduler address, as `--dask tcp://HOST:PORT` would. The
models are the tiny ones of the other CLI tests. Without the dask extra this module is skipped,
except the test that `--dask` then fails with the install hint (it hides the module itself).
"""

from __future__ import annotations

import sys

import pytest

from clihelp import NAMES, SHAKESPEARE, run_cli, train_small_char, train_small_word


def rnn(*args, input=None, check=True):
    proc = run_cli(*map(str, args), "--threads", "1", input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    return train_small_word(tmp_path_factory.mktemp("dask"))


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    return train_small_char(tmp_path_factory.mktemp("dask") / "c.npz", steps=20)


@pytest.fixture(scope="module")
def session():
    pytest.importorskip("distributed")
    from rnn_cli.tasks.lm import dask_score

    s = dask_score.Session.open("local:2", threads=1)
    yield s
    s.close()


@pytest.fixture(scope="module")
def address(session):
    return session.client.scheduler.address


@pytest.fixture(scope="module")
def text():
    """1,300 lines of Shakespeare with blank lines, words the model never saw, and a line
    longer than a scoring window."""
    lines = SHAKESPEARE.read_text().splitlines()[2000:3300]
    lines[5] = " ".join(lines[6:80])  # > 512 tokens: spans windows
    return "\n".join(lines) + "\n"


def test_session_rows_equal_one_process_over_many_chunks(session, word_model, text, request):
    """Small chunks and a window of 2 chunks in flight: the order and the numbers still hold,
    for one-line-at-a-time scoring and for batches (chunks of whole read-ahead groups). The one
    process runs the workers' thread count (1), as the CLI tests' `--threads 1` do: the products
    split their rows over the threads, and some BLAS builds round a row differently with the
    number of rows in its call (numpy's OpenBLAS with OPENBLAS_CORETYPE=Haswell on an AMD EPYC)."""
    import numpy as np

    from rnn_cli.kernels import _jit
    from rnn_cli.tasks.lm import api

    before = _jit.get_threads()
    lm = api.Model.load(word_model, threads=1)
    request.addfinalizer(lambda: _jit.set_threads(before))
    lines = text.splitlines(keepends=True)
    for batch in (1, 4):
        one = list(lm.score_lines(lines, batch_size=batch))
        dist = list(session.score_lines(lm, iter(lines), batch, tokens=True, chunk_lines=100,
                                        window=2))
        assert len(dist) == len(one) > 1000
        for a, b in zip(one, dist):
            assert (a.lineno, a.line, a.unknown) == (b.lineno, b.line, b.unknown)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.nll, b.nll)  # bit for bit, not approximately
        lean = list(session.score_lines(lm, iter(lines), batch, chunk_lines=300))
        assert [(r.lineno, r.line, r.tokens, r.unknown, r.logprob, r.perplexity) for r in lean] \
            == [(r.lineno, r.line, r.tokens, r.unknown, r.logprob, r.perplexity) for r in one]


@pytest.mark.parametrize("flags", [(), ("--batch-size", "1", "--json"), ("--tokens", "--log10"),
                                   ("--sort",)])
def test_cli_rows_are_those_of_one_process(address, word_model, text, tmp_path, flags):
    f = tmp_path / "in.txt"
    f.write_text(text)
    one = rnn("score", "-m", word_model, f, *flags)
    dist = rnn("score", "-m", word_model, f, *flags, "--dask", address)
    assert dist.stdout == one.stdout and len(one.stdout.splitlines()) > 1000
    assert dist.stderr == one.stderr  # the same <UNK> warning, nothing from Dask


def test_several_files_and_stdin(address, char_model):
    names = NAMES.read_text().splitlines()
    one = rnn("score", "-m", char_model, NAMES, "-", input="\n".join(names[:50]))
    dist = rnn("score", "-m", char_model, NAMES, "-", "--dask", address,
               input="\n".join(names[:50]))
    assert dist.stdout == one.stdout
    assert len(one.stdout.splitlines()) == len([n for n in names if n.strip()]) + 50


def test_an_unscorable_line_stops_both_after_the_same_rows(address, char_model):
    text = "".join(f"{n}\n" for n in NAMES.read_text().splitlines()[:3000]) + "ЖЖЖ\nemma\n"
    one = rnn("score", "-m", char_model, "-", "--batch-size", "4", input=text, check=False)
    dist = rnn("score", "-m", char_model, "-", "--batch-size", "4", "--dask", address,
               input=text, check=False)
    assert one.returncode == dist.returncode == 1
    assert dist.stdout == one.stdout and len(one.stdout.splitlines()) == 3000
    assert dist.stderr == one.stderr and b"line 3001: every token is unknown" in one.stderr


def test_total_and_device_are_refused_with_dask(address, char_model):
    p = rnn("score", "-m", char_model, NAMES, "--total", "--dask", address, check=False)
    assert p.returncode == 2 and b"--total carries the state" in p.stderr
    assert len(p.stderr.decode().splitlines()) == 2  # the error and its hint
    p = rnn("score", "-m", char_model, NAMES, "--device", "auto", "--dask", address, check=False)
    assert p.returncode == 2 and b"--dask scores on the workers' CPUs" in p.stderr


def test_workers_of_another_version_are_refused(session, monkeypatch):
    from rnn_cli.errors import RnnCliError
    from rnn_cli.tasks.lm import dask_score

    monkeypatch.setattr(dask_score, "__version__", "0.0.0-client")
    with pytest.raises(RnnCliError, match="this client 0.0.0-client") as e:
        session._check_workers("tcp://x")
    assert "install rnn-cli 0.0.0-client on every worker" in e.value.hint


def test_bad_addresses(char_model, monkeypatch):
    pytest.importorskip("distributed")
    from rnn_cli.tasks.lm import dask_score

    monkeypatch.setattr(dask_score, "CONNECT_TIMEOUT", "1s")  # Dask retries until then
    p = rnn("score", "-m", char_model, NAMES, "--dask", "local:0", check=False)
    assert p.returncode == 2 and b"local:N with N >= 1" in p.stderr
    p = rnn("score", "-m", char_model, NAMES, "--dask", "tcp://127.0.0.1:1", check=False)
    assert p.returncode == 1 and b"cannot reach the scheduler" in p.stderr


def test_without_dask_one_line_and_the_install_hint(char_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    p = rnn("score", "-m", char_model, NAMES, "--dask", "local:2", check=False)
    assert p.returncode == 1 and p.stdout == b""
    err = p.stderr.decode().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("rnn-cli: error: --dask needs Dask")
    assert "pip install 'rnn-cli[dask]'" in err[1]


def test_help_shows_dask():
    p = run_cli("score", "--help")
    text = " ".join(p.stdout.decode().split())
    assert p.returncode == 0 and "--dask ADDRESS" in text and "rnn-cli[dask]" in text
