"""rnn-cli's own workloads in `bench/speed.py`, after the training matrix: sampling speed (plain
and per sampling mode), `score --total` speed against training, warm start-up, `--help` time,
the idle memory baseline, and the word-level rows of bench/wordspeed.py (the class softmax and
per-line scoring). Each `bench_*` returns the records the report reads and emits them as JSON
lines.

Standard library only.
"""
import os
import statistics

import wordspeed  # bench/wordspeed.py: the class softmax and per-line scoring rows (issue 13)
from speed_matrix import (ENV_PREFIX, HELP_TARGET_S, OURS_BASELINE, OURS_SAMPLE, OURS_SCORE,
                          PEER_WARMUP_S, SAMPLE_MODES, SAMPLE_TARGETS, SCORE_TARGET,
                          STARTUP_TARGET_S, THREADS, arch)
from speed_peers import selected, train_ours
from speed_proc import cmdline, fmt, last_json, log, median_run, q, run, show


def ensure_model(s, a, tmp, H, rows, emit):
    """The H×B32×T64 model from the matrix if it ran, else a short fresh one."""
    for row in rows:
        c = row["config"]
        if c[2] == "char" and c[3] == H and c[4] == 32 and "runs" in row and \
                arch(c)["cell"] == "rnn" and not arch(c)["E"]:
            r = row["runs"].get("rnn-cli", {})
            if r.get("tokens_per_sec") and os.path.isfile(r.get("model", "")):
                return r["model"], r["tokens_per_sec"]
    cfg = (f"H{H}-B32-sampler", "shakespeare", "char", H, 32, 64)
    rec = train_ours(s, a, cfg, s.shakespeare, 0.01, tmp, a.model_seconds - PEER_WARMUP_S)
    emit(dict(kind="train-for-extras", config=cfg[0], **{k: v for k, v in rec.items() if k != "model"}))
    if rec.get("error") or not os.path.isfile(rec["model"]):
        return None, rec.get("error")
    return rec["model"], rec.get("tokens_per_sec")


def bench_sample_modes(a, s, models, emit):
    """Tokens/s of each sampling mode, measured like `sample` ((n-1) / (wall(n) - wall(1)),
    medians of 3) with n = --sample-n divided by the mode's divisor (beam K: n/K tokens)."""
    recs = []
    for H, (model, _) in models.items():
        for name, flags, div in SAMPLE_MODES:
            if model is None:
                recs.append({"H": H, "mode": name, "error": "no model"})
                continue
            n = max(a.sample_n // div, 200)
            tmpl = OURS_SAMPLE + " " + flags
            argv1 = cmdline(tmpl, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
            argvn = cmdline(tmpl, rnn=q(s.rnn), model=q(model), n=n, threads=THREADS)
            run(argv1, a.timeout, stream=True)                       # warm the kernel cache
            w1, e1 = median_run(argv1, 3, a.timeout, stream=True)
            wn, en = median_run(argvn, 3, a.timeout, stream=True)
            rec = {"H": H, "mode": name, "n": n, "cmd": show(argvn)}
            if e1 or en:
                rec["error"] = e1 or en
            elif wn - w1 < 0.5:  # start-up noise on a loaded machine would swamp the difference
                rec["error"] = (f"n={n} ran {wn - w1:.2f} s longer than n=1: too short to "
                                "measure; raise --sample-n")
            else:
                rec.update(wall_n_s=wn, wall_1_s=w1,
                           tokens_per_sec=round((n - 1) / max(wn - w1, 1e-9)))
                log(f"== sample H={H} {name}: {rec['tokens_per_sec']:,} tokens/s "
                    f"(n={n}: {wn:.2f} s, n=1: {w1:.2f} s, medians of 3)")
            if rec.get("error"):
                log(f"== sample H={H} {name}: {rec['error']}")
            recs.append(rec)
            emit(dict(kind="sample-mode", **rec))
    return recs


def bench_extras(s, a, tmp, rows, emit):
    """Every selected extra, in this order; {name: records}."""
    ex = {}
    need_model = any(selected(a, n) for n in ("sample", "sample-modes", "score", "startup"))
    models = {}
    if need_model and s.have["shakespeare"]:
        for H in (512, 128):
            models[H] = ensure_model(s, a, tmp, H, rows, emit)
    elif need_model:
        s.warn("no tiny Shakespeare: sample, score and start-up are skipped")

    if selected(a, "sample"):
        ex["sample"] = bench_sample(s, a, models, emit)
    if selected(a, "sample-modes"):
        ex["sample-modes"] = bench_sample_modes(a, s, models, emit)
    if selected(a, "score"):
        ex["score"] = bench_score(s, a, tmp, models, emit)
    if selected(a, "startup"):
        ex["startup"] = bench_startup(s, a, models, emit)
    if selected(a, "help"):
        ex["help"] = bench_help(s, emit)
    if selected(a, "memory"):
        ex["memory"] = bench_memory(s, a, tmp, emit)

    if selected(a, "softmax") and s.have["ptb"]:
        ex["softmax"] = wordspeed.bench_softmax(s, a, tmp, emit)
    if selected(a, "score-lines") and s.have["ptb"]:
        ex["score-lines"] = wordspeed.bench_score_lines(s, a, tmp, emit, ex.get("softmax"))
    if a.only and "softmax-epoch" in a.only and s.have["ptb"]:
        ex["softmax-epoch"] = wordspeed.bench_epoch(s, a, tmp, emit)
    if a.only and "sparse-steps" in a.only and s.have["ptb"]:
        ex["sparse-steps"] = wordspeed.bench_sparse_steps(s, a, tmp, emit)
    return ex


def bench_sample(s, a, models, emit):
    """chars/s of `sample` at each H: (n - 1) / (wall(n) - wall(1)), medians of 3."""
    out = []
    for H, (model, _) in models.items():
        if model is None:
            out.append({"H": H, "error": "no model: " + str(_)})
            continue
        argv1 = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
        argvn = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=a.sample_n, threads=THREADS)
        run(argv1, a.timeout, stream=True)                       # warm the kernel cache
        w1, e1 = median_run(argv1, 3, a.timeout, stream=True)
        rns = [run(argvn, a.timeout, stream=True) for _ in range(3)]
        rec = {"H": H, "n": a.sample_n, "cmd": show(argvn), "target": SAMPLE_TARGETS[H]}
        bad = [r for r in rns if r.get("error")]
        if e1 or bad:
            rec["error"] = e1 or bad[0]["error"]
        else:
            rn = sorted(rns, key=lambda r: r["wall_s"])[1]          # the median run
            rec.update(wall_n_s=rn["wall_s"], wall_1_s=w1, chars=rn["nchars"],
                       chars_per_sec=round((a.sample_n - 1) / max(rn["wall_s"] - w1, 1e-9)),
                       stream_chars_per_sec=round((rn["nchars"] - 1) /
                                                  max(rn["last_s"] - rn["first_s"], 1e-9))
                       if rn.get("first_s") is not None and rn["nchars"] > 1 else None,
                       maxrss_mb=rn["maxrss_mb"])
            log(f"== sample H={H}: {rec['chars_per_sec']:,} chars/s "
                f"(n={a.sample_n}: {rn['wall_s']:.2f} s, n=1: {w1:.2f} s, medians of 3)")
        out.append(rec)
        emit(dict(kind="sample", **rec))
    return out


def bench_score(s, a, tmp, models, emit):
    """`score --total` tok/s on 1 MB (minus a 1 kB run's wall time) ÷ training tok/s."""
    r = run([s.rnn, "score", "--help"], 60)
    if r.get("rc") != 0:
        out = {"skipped": "`rnn-cli score` does not exist in this build"}
        log("== score: skipped (`rnn-cli score --help` does not exit 0)")
    elif not models:
        out = {"skipped": "no model (tiny Shakespeare missing)"}
    else:
        out = []
        big = os.path.join(tmp, "score-1MB.txt")
        small = os.path.join(tmp, "score-1KB.txt")
        with open(s.shakespeare, encoding="utf-8") as f:
            text = f.read()
        with open(big, "w", encoding="utf-8") as f:
            f.write(text[:1_000_000])
        with open(small, "w", encoding="utf-8") as f:
            f.write(text[:1_000])
        for H, (model, train_tps) in models.items():
            if model is None:
                continue
            argvb = cmdline(OURS_SCORE, rnn=q(s.rnn), model=q(model), file=q(big), threads=THREADS)
            argvs = cmdline(OURS_SCORE, rnn=q(s.rnn), model=q(model), file=q(small), threads=THREADS)
            run(argvs, a.timeout)                                  # warm
            ws, es = median_run(argvs, 3, a.timeout)
            rb = run(argvb, a.timeout)
            rec = {"H": H, "cmd": show(argvb), "train_tokens_per_sec": train_tps,
                   "target_ratio": SCORE_TARGET}
            if es or rb.get("error"):
                rec["error"] = es or rb["error"]
            else:
                j = last_json(rb.get("stdout")) or {}
                ntok = j.get("tokens") or 1_000_000
                tps = (ntok - 1000) / max(rb["wall_s"] - ws, 1e-9)
                rec.update(tokens=ntok, wall_s=rb["wall_s"], wall_small_s=ws,
                           tokens_per_sec=round(tps), stdout_head=rb["stdout"][:300],
                           ratio=round(tps / train_tps, 2) if train_tps else None)
                log(f"== score H={H}: {tps:,.0f} tok/s, {fmt(rec['ratio'], 2)}× training")
            out.append(rec)
            emit(dict(kind="score", **rec))
    return out


def bench_startup(s, a, models, emit):
    """Seconds to the first sampled character of `sample -n 1`, warm; median of 5."""
    out = []
    for H, (model, _) in models.items():
        if model is None:
            continue
        argv1 = cmdline(OURS_SAMPLE, rnn=q(s.rnn), model=q(model), n=1, threads=THREADS)
        run(argv1, a.timeout, stream=True)                         # the warm run
        rs = [run(argv1, a.timeout, stream=True) for _ in range(5)]
        bad = [r for r in rs if r.get("error") or r.get("first_s") is None]
        rec = {"H": H, "cmd": show(argv1), "target_s": STARTUP_TARGET_S}
        if bad:
            rec["error"] = bad[0].get("error") or "no output"
        else:
            rec.update(first_char_s=round(statistics.median(r["first_s"] for r in rs), 3),
                       exit_s=round(statistics.median(r["wall_s"] for r in rs), 3))
            log(f"== start-up H={H}: first char after {rec['first_char_s']:.3f} s (median of 5)")
        out.append(rec)
        emit(dict(kind="startup", **rec))
    return out


def bench_help(s, emit):
    """`rnn-cli --help` wall time, median of 5 after a warm run."""
    argv = ENV_PREFIX + [s.rnn, "--help"]
    run(argv, 60)
    rs = [run(argv, 60) for _ in range(5)]
    rec = {"cmd": show(argv), "target_s": HELP_TARGET_S}
    if any(r.get("error") for r in rs):
        rec["error"] = next(r["error"] for r in rs if r.get("error"))
    else:
        rec["median_s"] = round(statistics.median(r["wall_s"] for r in rs), 3)
        rec["all_s"] = [r["wall_s"] for r in rs]
        log(f"== rnn-cli --help: {rec['median_s']:.3f} s (median of 5)")
    emit(dict(kind="help", **rec))
    return rec


def bench_memory(s, a, tmp, emit):
    """The idle baseline: peak RSS of a 1-step H 8 `train` on a 20 kB text (kernels cached)."""
    tiny = os.path.join(tmp, "tiny.txt")
    if s.have["shakespeare"]:
        with open(s.shakespeare, encoding="utf-8") as f:
            txt = f.read(20_000)
    else:
        txt = ("the quick brown fox jumps over the lazy dog\n" * 500)
    with open(tiny, "w", encoding="utf-8") as f:
        f.write(txt)
    argv = cmdline(OURS_BASELINE, rnn=q(s.rnn), data=q(tiny), model=q(os.path.join(tmp, "base.npz")),
                   threads=THREADS)
    run(argv, a.timeout)                                           # kernels cached
    r = run(argv, a.timeout)
    rec = {"cmd": show(argv), "baseline_rss_mb": r.get("maxrss_mb"), "error": r.get("error")}
    log(f"== baseline RSS of a 1-step rnn-cli train: {fmt(r.get('maxrss_mb'))} MB")
    emit(dict(kind="memory-baseline", **rec))
    return rec
