"""Word level at speed (issue 13), the part of `bench/speed.py` that measures it.

    softmax       training tok/s, interleaved A B A B: PTB (V 10k) full vs --softmax classes;
                  a V 100k corpus with classes vs PTB with classes (defaults: at V 100k sparse
                  updates, C 1,000), and the V 100k run with dense updates and C 316 (the
                  defaults before); PTB cut to V 1k, full vs classes (where the default switches)
    score-lines   per-line `score` (batched lines) tok/s ÷ the same model's training tok/s: char
                  H512 on 1 MB of tiny Shakespeare lines, word on ptb.test.txt (both softmaxes)
    softmax-epoch opt-in (~30 min here): one PTB epoch each, test perplexity classes vs full
    sparse-steps  opt-in (~6 min here): equal steps, --updates sparse vs dense, validation loss at
                  V 100k (C 1,000) and PTB V 10k (C 100): lazy Adam's cost in quality

The V 100k corpus is built in the temporary folder from ../shared/corpora only (never copied
into the repository): War and Peace + tiny Shakespeare + ptb.train.txt, split on whitespace
(62.8k types), plus War and Peace once more with each line's words joined in pairs
("the_old prince_said"): phrase tokens as word2vec's phrases make them, enough types for
--vocab-size 100000.
"""
import os
import statistics

from speed_matrix import ENV_PREFIX, OURS_TRAIN, THREADS
from speed_peers import train_ours
from speed_proc import cmdline, fmt, last_json, log, q, run, show

SOFTMAX_TARGET = 3.0   # classes ÷ full training tok/s at PTB V 10k
V100K_TARGET = 0.5     # V 100k ÷ V 10k training tok/s (classes)
SCORE_LINES_TARGET = 3.0
EPOCH_PPL_TARGET = 0.03
REPEATS = 2
SOFTMAX_MIN_SECONDS = 45.0
SPARSE_STEPS = (600, 1500)  # sparse-steps: V 100k, PTB V 10k


def build_v100k(shared, tmp):
    path = os.path.join(tmp, "words-v100k.txt")
    corpora = os.path.join(shared, "corpora")
    srcs = [os.path.join(corpora, n) for n in ("warpeace.txt", "tinyshakespeare.txt")]
    srcs.append(os.path.join(corpora, "ptb", "ptb.train.txt"))
    with open(path, "w", encoding="utf-8") as out:
        for src in srcs:
            with open(src, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.split():
                        out.write(" ".join(line.split()) + "\n")
        with open(srcs[0], encoding="utf-8", errors="replace") as f:
            for line in f:
                w = line.split()
                if len(w) >= 2:
                    out.write(" ".join("_".join(w[i:i + 2]) for i in range(0, len(w), 2)) + "\n")
    return path


# the default word model's network (`rnn-cli train --level word` picks it for these corpora: GRU,
# tied embedding, dropout 0.1), next to the rows' one-hot RNN, whose input weights W_ax (H, V) are
# updated column by column (strided) while the default's embedding rows are contiguous
DEFAULT_WORD_NET = {"cell": "gru", "E": 256, "dropout": "0.1", "more": "--tie-weights"}


def _train(s, a, tmp, name, data, vocab, softmax, seconds, more="", net=None):
    net = net or {"cell": "rnn", "E": 0, "dropout": "0", "more": ""}
    extra = f"--tokenizer space --vocab-size {vocab} --softmax {softmax} {more} {net['more']}"
    argv = cmdline(OURS_TRAIN, rnn=q(s.rnn), data=q(data),
                      model=q(os.path.join(tmp, f"ws-{name}.npz")), level="word", H=256, B=32,
                      T=35, threads=THREADS, seconds=f"{seconds:g}", val_frac="0.01",
                      cell=net["cell"], dropout=net["dropout"], E=net["E"], extra=extra.strip())
    if not seconds:  # a run to --steps
        argv = [x for i, x in enumerate(argv) if not (x == "--max-seconds" or
                                                      (i and argv[i - 1] == "--max-seconds"))]
    r = run(argv, a.timeout if seconds else 3600)
    j = last_json(r.get("stdout")) or {}
    rec = {"name": name, "cmd": show(argv), "model": os.path.join(tmp, f"ws-{name}.npz"),
           "error": r.get("error"), "wall_s": r.get("wall_s")}
    rec.update({k: j.get(k) for k in ("tokens_per_sec", "V", "val_loss", "steps")})
    return rec


def bench_softmax(s, a, tmp, emit):
    """{name: {"tps": [...], "median": x, "model": path, "V": V}} for the eight runs."""
    runs = [("full-10k", s.ptb_train, 10000, "full", ""),
            ("classes-10k", s.ptb_train, 10000, "classes", ""),
            ("classes-100k", None, 100000, "classes", ""),
            ("classes-100k-dense", None, 100000, "classes", "--updates dense --classes 316"),
            ("full-1k", s.ptb_train, 1000, "full", ""), ("classes-1k", s.ptb_train, 1000, "classes", ""),
            ("default-10k", s.ptb_train, 10000, "classes", "", DEFAULT_WORD_NET),
            ("default-100k", None, 100000, "classes", "", DEFAULT_WORD_NET)]
    v100k = build_v100k(s.shared, tmp)
    out = {n[0]: {"tps": [], "cmds": []} for n in runs}
    # at least 45 s: the first V 100k step touches ~0.6 GB of fresh gradient and Adam buffers,
    # which dominated 15 s runs (0.20x measured then, 0.58-0.64x in 45 s runs)
    seconds = max(a.seconds, SOFTMAX_MIN_SECONDS)
    for rep in range(REPEATS):
        for name, data, vocab, softmax, more, *net in runs:
            rec = _train(s, a, tmp, name, data or v100k, vocab, softmax, seconds, more,
                         *net)
            emit(dict(kind="softmax-train", rep=rep, **{k: v for k, v in rec.items()
                                                         if k != "model"}))
            o = out[name]
            o["cmds"].append(rec["cmd"])
            if rec.get("tokens_per_sec"):
                o["tps"].append(rec["tokens_per_sec"])
                o.update(model=rec["model"], V=rec["V"])
            else:
                o["error"] = rec.get("error") or "no tokens_per_sec"
            log(f"== softmax {name} (rep {rep + 1}): "
                   f"{fmt(rec.get('tokens_per_sec'))} tok/s, V {rec.get('V')}")
    for o in out.values():
        o["median"] = statistics.median(o["tps"]) if o["tps"] else None
    return out


def score_lines_rate(s, a, model, big, small):
    """Per-line `score` tok/s: (tokens(big) - tokens(small)) ÷ (wall(big) - wall(small))."""
    def argv(f):
        return ENV_PREFIX + [s.rnn, "score", "-m", model, "--json", "--threads",
                                str(THREADS), f]
    run(argv(small), a.timeout)  # warm
    rs = [run(argv(small), a.timeout) for _ in range(3)]
    rb = run(argv(big), a.timeout)
    bad = [r for r in rs + [rb] if r.get("error")]
    if bad:
        return {"error": bad[0]["error"]}

    def ntok(r):
        import json
        return sum(json.loads(line)["tokens"] for line in r["stdout"].splitlines() if line)
    ws = statistics.median(r["wall_s"] for r in rs)
    n = ntok(rb) - ntok(rs[0])
    return {"tokens": ntok(rb), "wall_s": rb["wall_s"], "wall_small_s": ws, "cmd": show(argv(big)),
            "tokens_per_sec": round(n / max(rb["wall_s"] - ws, 1e-9))}


def bench_score_lines(s, a, tmp, emit, softmax_runs):
    recs = []
    jobs = []
    # the char H512 baseline: its own timed run (a short model made for sampling gives no
    # meaningful training tok/s)
    rec = train_ours(s, a, ("H512-B32-score", "shakespeare", "char", 512, 32, 64),
                        s.shakespeare, 0.01, tmp, a.seconds)
    emit(dict(kind="train-for-score-lines", **{k: v for k, v in rec.items() if k != "model"}))
    char_model = (rec["model"], rec.get("tokens_per_sec")) if rec.get("tokens_per_sec") else None
    if char_model:
        big, small = os.path.join(tmp, "score-1MB.txt"), os.path.join(tmp, "lines-1KB.txt")
        with open(s.shakespeare, encoding="utf-8") as f:
            text = f.read()
        for path, n in ((big, 1_000_000), (small, 1_000)):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text[:n])
        jobs.append(("char H512, 1 MB tiny Shakespeare", char_model[0], char_model[1], big, small))
    small_ptb = os.path.join(tmp, "ptb-test-50.txt")
    with open(s.ptb_test, encoding="utf-8") as f:
        head = [next(f) for _ in range(50)]
    with open(small_ptb, "w", encoding="utf-8") as f:
        f.writelines(head)
    for name in ("classes-10k", "full-10k"):
        o = (softmax_runs or {}).get(name) or {}
        if o.get("model") and o.get("median"):
            jobs.append((f"word PTB V 10k {name.split('-')[0]} softmax, ptb.test.txt", o["model"],
                         o["median"], s.ptb_test, small_ptb))
    for label, model, train_tps, big, small in jobs:
        rec = {"label": label, "train_tokens_per_sec": train_tps}
        rec.update(score_lines_rate(s, a, model, big, small))
        if rec.get("tokens_per_sec") and train_tps:
            rec["ratio"] = round(rec["tokens_per_sec"] / train_tps, 2)
        log(f"== score per line, {label}: {fmt(rec.get('tokens_per_sec'))} tok/s, "
               f"{fmt(rec.get('ratio'), 2)}× training")
        emit(dict(kind="score-lines", **rec))
        recs.append(rec)
    return recs


def bench_epoch(s, a, tmp, emit):
    """One PTB epoch per softmax (valid + test), the test perplexities side by side."""
    out = {}
    for softmax in ("classes", "full"):
        argv = cmdline(OURS_TRAIN, rnn=q(s.rnn), data=q(s.ptb_train),
                          model=q(os.path.join(tmp, f"epoch-{softmax}.npz")), level="word",
                          H=256, B=32, T=35, threads=THREADS, seconds="0", val_frac="0",
                          cell="rnn", dropout=0, E=0,
                          extra=f"--tokenizer space --vocab-size 10000 --softmax {softmax} "
                                f"--epochs 1 --valid {q(s.ptb_valid)} --test {q(s.ptb_test)}")
        argv = [x for i, x in enumerate(argv) if not (x == "--max-seconds" or
                                                      (i and argv[i - 1] == "--max-seconds"))]
        r = run(argv, 6 * 3600)
        j = last_json(r.get("stdout")) or {}
        out[softmax] = {"cmd": show(argv), "error": r.get("error"),
                        **{k: j.get(k) for k in ("test_ppl", "val_loss", "tokens_per_sec",
                                                 "tokens", "seconds")}}
        emit(dict(kind="softmax-epoch", softmax=softmax, **out[softmax]))
        log(f"== one PTB epoch, {softmax}: test ppl {fmt(out[softmax].get('test_ppl'), 1)}")
    return out


def bench_sparse_steps(s, a, tmp, emit):
    """Equal steps, --updates sparse vs dense, validation loss at the end: what lazy Adam costs
    in quality (speed-independent: may run on a busy machine)."""
    v100k = build_v100k(s.shared, tmp)
    out = []
    for label, data, vocab, steps, more in (
            ("V 100k, C 1,000", v100k, 100000, SPARSE_STEPS[0], "--classes 1000"),
            ("PTB V 10k, C 100", s.ptb_train, 10000, SPARSE_STEPS[1], "--classes 100")):
        rec = {"label": label, "steps": steps}
        for updates in ("sparse", "dense"):
            r = _train(s, a, tmp, f"steps-{updates}", data, vocab, "classes", 0,
                       f"{more} --updates {updates} --steps {steps}")
            rec[updates] = r.get("val_loss")
            rec[updates + "_cmd"] = r["cmd"]
            emit(dict(kind="sparse-steps", label=label, updates=updates, **{
                k: v for k, v in r.items() if k != "model"}))
            log(f"== {label}, {steps} steps, --updates {updates}: validation "
                   f"{fmt(r.get('val_loss'), 4)}")
        out.append(rec)
    return out


def rows(ex):
    """Markdown table rows (measurement | value | target | met?) for RESULTS.md."""
    L = []
    sm = ex.get("softmax")
    if sm:
        def med(n):
            return (sm.get(n) or {}).get("median")

        def row(label, num, den, target):
            r = num / den if num and den else None
            tps = " / ".join(f"{fmt(x)}" for x in (num, den))
            met = "–" if r is None or target is None else ("yes" if r >= target else "**no**")
            tgt = f"≥ {target:g}×" if target else "(chooses the default)"
            L.append(f"| {label} (tok/s, medians of {REPEATS}) | {tps} ({fmt(r, 2)}×) | {tgt} "
                     f"| {met} |")
        row("training PTB H256 B32 T35, V 10k: `--softmax classes` ÷ full", med("classes-10k"),
            med("full-10k"), SOFTMAX_TARGET)
        row(f"training V {fmt((sm.get('classes-100k') or {}).get('V'))} (War and Peace + "
            "Shakespeare + PTB, + word pairs) ÷ PTB V 10k, both classes", med("classes-100k"),
            med("classes-10k"), V100K_TARGET)
        row("training V 100k: the defaults (`--updates sparse`, C 1,000) ÷ `--updates dense "
            "--classes 316` (the previous defaults)", med("classes-100k"),
            med("classes-100k-dense"), None)
        row("training PTB cut to V 1k: classes ÷ full", med("classes-1k"), med("full-1k"), None)
        row("training V 100k ÷ PTB V 10k, the default word network (GRU, tied embedding 256, "
            "dropout 0.1, classes)", med("default-100k"), med("default-10k"), V100K_TARGET)
    for rec in ex.get("sparse-steps") or []:
        d = rec["sparse"] - rec["dense"] if rec.get("sparse") and rec.get("dense") else None
        L.append(f"| {rec['label']}, equal steps ({rec['steps']:,}): validation nats/token "
                 f"sparse / dense | {fmt(rec.get('sparse'), 4)} / {fmt(rec.get('dense'), 4)} "
                 f"({'–' if d is None else f'{d:+.4f}'}) | (lazy Adam's cost) | – |")
    for rec in ex.get("score-lines") or []:
        if rec.get("error"):
            L.append(f"| per-line `score`, {rec['label']} | **failed**: {rec['error'][:120]} | "
                     f"≥ {SCORE_LINES_TARGET:g}× | – |")
            continue
        ok = rec.get("ratio") is not None and rec["ratio"] >= SCORE_LINES_TARGET
        L.append(f"| per-line `score` (batched lines), {rec['label']} (tok/s; ÷ training "
                 f"{fmt(rec['train_tokens_per_sec'])}) | {fmt(rec['tokens_per_sec'])} "
                 f"({fmt(rec.get('ratio'), 2)}×) | ≥ {SCORE_LINES_TARGET:g}× | "
                 f"{'yes' if ok else '**no**'} |")
    ep = ex.get("softmax-epoch")
    if ep:
        c, f = (ep.get(k, {}).get("test_ppl") for k in ("classes", "full"))
        d = c / f - 1 if c and f else None
        L.append(f"| one PTB epoch, test perplexity classes / full | {fmt(c, 1)} / "
                 f"{fmt(f, 1)} ({'–' if d is None else f'{100 * d:+.1f} %'}) | within "
                 f"{100 * EPOCH_PPL_TARGET:g} % | "
                 f"{'–' if d is None else 'yes' if abs(d) <= EPOCH_PPL_TARGET else '**no**'} |")
    return L
