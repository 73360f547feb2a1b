"""The plumbing of `bench/speed.py`: running one command and measuring it (wall time, peak RSS,
streamed output), building command lines from the templates, showing them as a reader reruns
them, formatting numbers, and what the machine is (CPU, versions, GEMM rate).

Standard library only.
"""
import codecs
import json
import os
import platform
import resource  # noqa: F401  (documents that ru_maxrss comes from os.wait4's struct rusage)
import selectors
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from speed_matrix import ENV_PREFIX, PEER_ENV_PREFIX

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def q(s):
    return shlex.quote(str(s))


# ----------------------------------------------------------------------------- processes
def run(argv, timeout, stream=False):
    """Run argv (no shell); returns rc, wall_s, maxrss_mb (this child, from os.wait4), stdout
    (decoded, unless stream), stderr tail; with stream=True stdout is a pipe read here: nchars,
    first_s (seconds to its first byte) and last_s (to its last byte)."""
    err = tempfile.TemporaryFile()
    out = None if stream else tempfile.TemporaryFile()
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=err,
                             stdout=subprocess.PIPE if stream else out)
    except OSError as e:
        return {"rc": None, "error": f"cannot start {argv[0]}: {e}", "wall_s": 0.0}
    rec = {}
    timed_out = False
    if stream:
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        nchars, first, last = 0, None, None
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        fd = p.stdout.fileno()
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            now = time.perf_counter()
            if first is None:
                first = now - t0
            last = now - t0
            nchars += len(dec.decode(chunk))
        sel.close()
        p.stdout.close()
        rec.update(nchars=nchars, first_s=first, last_s=last)
    while not timed_out:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            break
        time.sleep(0.02)
    if timed_out:
        p.kill()
        pid, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keeps Popen from waiting again
    err.seek(0)
    rec.update(rc=p.returncode, wall_s=round(wall, 3), maxrss_mb=round(ru.ru_maxrss / 1024, 1),
               stderr_tail=err.read().decode("utf-8", "replace")[-1500:])
    err.close()
    if out is not None:
        out.seek(0)
        rec["stdout"] = out.read().decode("utf-8", "replace")
        out.close()
    if timed_out:
        rec["error"] = f"timed out after {timeout:.0f} s"
    elif rec["rc"] != 0:
        rec["error"] = f"exit status {rec['rc']}: " + rec["stderr_tail"].strip()[-400:]
    return rec


def last_json(stdout):
    for line in reversed((stdout or "").strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def peer_env(a):
    """The peers' environment prefix: their own thread policy unless --peers-passive."""
    return ENV_PREFIX if getattr(a, "peers_passive", False) else PEER_ENV_PREFIX


def cmdline(template, prefix=None, **kw):
    return (prefix or ENV_PREFIX) + shlex.split(" ".join(template.format(**kw).split()))


def show(argv):
    """The command as a reader reruns it from the project root: no paths of this machine (the
    project's own files relative to it, the shared folder as ../shared, temp files as $TMP)."""
    def rel(w):
        w = str(w)
        if not os.path.isabs(w):
            return w
        tmp = tempfile.gettempdir()
        if w.startswith(tmp + os.sep) and os.path.basename(os.path.dirname(w)).startswith("rnn-bench-"):
            return "$TMP/" + os.path.basename(w)
        shared = os.path.abspath(os.path.join(REPO, "..", "shared"))
        for root, shown in ((REPO, ""), (shared, "../shared/")):
            real = os.path.realpath(root)
            for r in {root, real}:
                if w.startswith(r + os.sep):
                    return shown + os.path.relpath(w, r)
        return w
    return " ".join(r if r.startswith("$TMP/") else q(r) for r in map(rel, argv))


def median_run(argv, k, timeout, key="wall_s", **kw):
    rs = [run(argv, timeout, **kw) for _ in range(k)]
    bad = [r for r in rs if r.get("error")]
    if bad:
        return None, bad[0]["error"]
    return statistics.median(r[key] for r in rs if r.get(key) is not None), None


def fmt(x, nd=0):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:,.{nd}f}"


def ratio(a, b):
    return a / b if a and b else None


def versions(s):
    v = {"python": platform.python_version()}
    r = subprocess.run([s.py, "-c", "import numpy, numba; print(numpy.__version__, numba.__version__)"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        v["numpy"], v["numba"] = r.stdout.split()
    r = subprocess.run([s.rnn, "--version"], capture_output=True, text=True)
    v["rnn-cli"] = (r.stdout or r.stderr).strip() or "?"
    if s.peer_ok["torch"] or s.peer_ok["numpy"]:
        r = subprocess.run([s.peer_python, "-c", "import numpy; print(numpy.__version__)\n"
                            "try:\n import torch; print(torch.__version__)\nexcept ImportError:"
                            " print('-')"], capture_output=True, text=True)
        if r.returncode == 0:
            v["peer numpy"], v["torch"] = r.stdout.split()
    try:
        v["git"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return v


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": n, "cpu": model, "kernel": platform.release()}


GEMM_PROBE = ("import numpy as np, time\n"
              "a = np.random.rand(1024, 1024).astype(np.float32); c = np.empty_like(a)\n"
              "np.matmul(a, a, out=c); best = 1e9\n"
              "for _ in range(5):\n"
              "    t = time.perf_counter(); np.matmul(a, a, out=c); best = min(best, time.perf_counter() - t)\n"
              "print(2 * 1024 ** 3 / best / 1e9)\n")


def gemm_rates(s) -> dict:
    """This machine's 1024³ float32 GEMM rate (numpy's OpenBLAS) at 1 and 2 threads, in GF/s."""
    out = {}
    for th in (1, 2):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env.update(OPENBLAS_NUM_THREADS=str(th), OMP_NUM_THREADS=str(th))
        try:
            r = subprocess.run([sys.executable, "-c", GEMM_PROBE], env=env, capture_output=True,
                               text=True, timeout=120)
            out[str(th)] = round(float(r.stdout.strip()), 1)
        except (subprocess.SubprocessError, ValueError):
            out[str(th)] = None
    return out
