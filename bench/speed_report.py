"""The report of `bench/speed.py`: the training table (ratios, targets, % of the FLOP limit,
losses, peak RSS), the extras table (sampling, scoring, start-up, `--help`, memory, and the
word-level rows of wordspeed.py), and the Markdown file with the machine, the versions and the
exact commands.

Standard library only.
"""
import os

import wordspeed  # bench/wordspeed.py: the class softmax and per-line scoring rows (issue 13)
from speed_matrix import (ENV_PREFIX, HELP_TARGET_S, SCORE_TARGET, STARTUP_TARGET_S, THREADS,
                          arch, flops_per_token, memory_bound, peak_rate)
from speed_proc import REPO, fmt, log, ratio

def config_table(s, rows, ex):
    rpk = peak_rate(s.limits, THREADS)
    base = (ex.get("memory") or {}).get("baseline_rss_mb")
    L = ["| config | rnn-cli tok/s | torch tok/s | numpy tok/s | ratio vs torch | ratio vs numpy "
         "| target | met? | % of FLOP limit | val loss (ours / torch / numpy) | peak RSS MB (ours / torch / numpy) |",
         "|---|---:|---:|---:|---:|---:|---|---|---:|---|---|"]
    mem, rounds = [], []
    for row in rows:
        name, corpus, level, H, B, T, targets, target_txt = row["config"][:8]
        ar = arch(row["config"])
        emb = f" E{ar['E']}{' tied' if ar['tie'] else ''}" if ar["E"] else ""
        label = (f"char {ar['cell']} H{H}{emb} B{B} T{T}" if level == "char"
                 else f"word {ar['cell']} PTB H{H}{emb} B{B} T{T}")
        if "skipped" in row:
            L.append(f"| {label} | skipped: {row['skipped']} |" + " |" * 9)
            continue
        R = row["runs"]
        tps = {k: R[k].get("tokens_per_sec") for k in R}
        ours = tps.get("rnn-cli")
        rt, rn = ratio(ours, tps.get("torch")), ratio(ours, tps.get("numpy"))
        rr = {"torch": rt, "numpy": rn}
        checks = [(rr[p] is not None and rr[p] >= m, p, m) for p, m in targets.items()]
        if not ours or any(rr[p] is None for p in targets):
            met = "n/a (missing run)"
        else:
            met = "yes" if all(c[0] for c in checks) else "**no** (" + ", ".join(
                f"{rr[p]:.2f}× vs {p} < {m}×" for ok, p, m in checks if not ok) + ")"
        V = R.get("rnn-cli", {}).get("V")
        G = {"rnn": 1, "gru": 3, "lstm": 4}[ar["cell"]]
        lim = rpk / flops_per_token(H, V, G) if rpk and V else None
        pct = f"{100 * ours / lim:.1f}% of {lim:,.0f}" if ours and lim else "–"

        def cell(k, key, nd):
            r = R.get(k)
            if r is None:
                return "skipped"
            return fmt(r.get(key), nd) if r.get(key) is not None else "**failed**"
        L.append(f"| {label} | {cell('rnn-cli', 'tokens_per_sec', 0)} | {cell('torch', 'tokens_per_sec', 0)} | "
                 f"{cell('numpy', 'tokens_per_sec', 0)} | {fmt(rt, 2)}{'×' if rt else ''} | "
                 f"{fmt(rn, 2)}{'×' if rn else ''} | {target_txt} | {met} | {pct} | "
                 f"{cell('rnn-cli', 'val_loss', 3)} / {cell('torch', 'val_loss', 3)} / {cell('numpy', 'val_loss', 3)} | "
                 f"{cell('rnn-cli', 'maxrss_mb', 0)} / {cell('torch', 'maxrss_mb', 0)} / {cell('numpy', 'maxrss_mb', 0)} |")
        if len(R.get("rnn-cli", {}).get("rounds_tok_s") or []) > 1:
            rounds.append(f"- {label}: " + "; ".join(
                f"{k} " + " / ".join(fmt(v) for v in R[k]["rounds_tok_s"]) for k in R)
                + " (load " + " / ".join(f"{v:.1f}" for v in R["rnn-cli"]["rounds_load"]) + ")")
        o = R.get("rnn-cli", {})
        if o.get("maxrss_mb") and V and ar["cell"] == "rnn" and not ar["E"]:
            bound, P = memory_bound(H, V, o.get("B") or B, o.get("T") or T, row["n_tokens"])
            bmb = bound / 2 ** 20
            mem.append((label, P, bmb, o["maxrss_mb"], base))
    if rounds:
        L += ["", "tok/s of every round, in run order (each row above shows the median round; "
              "load = 1-minute load average before rnn-cli's run):", ""] + rounds
    return L, mem


def extras_table(ex, mem):
    L = ["| measurement | value | target | met? |", "|---|---:|---|---|"]
    for rec in ex.get("sample", []):
        tgt = rec["target"]
        if rec.get("error"):
            L.append(f"| sampling H{rec['H']} (chars/s) | **failed**: {rec['error'][:120]} | ≥ {tgt:,} | – |")
        else:
            v = rec["chars_per_sec"]
            L.append(f"| sampling H{rec['H']}, B=1, to a pipe (chars/s = (n−1) ÷ (wall(n={rec['n']:,}) − wall(n=1)), medians of 3) "
                     f"| {v:,} (in-stream {fmt(rec.get('stream_chars_per_sec'))}) | ≥ {tgt:,} | "
                     f"{'yes' if v >= tgt else '**no** (' + format(v / tgt, '.2f') + '× the target)'} |")
    for rec in ex.get("sample-modes", []):
        label = f"sampling H{rec['H']} `{rec['mode']}` (tokens/s, n = {rec.get('n', 0):,}, as above)"
        L.append(f"| {label} | **failed**: {rec['error'][:120]} | – | – |" if rec.get("error") else
                 f"| {label} | {rec['tokens_per_sec']:,} | – | – |")
    sc = ex.get("score")
    if isinstance(sc, dict):
        L.append(f"| `score` forward tok/s ÷ training tok/s | skipped: {sc['skipped']} | ≥ {SCORE_TARGET:g}× | – |")
    elif sc is not None:
        for rec in sc:
            if rec.get("error"):
                L.append(f"| `score` H{rec['H']} | **failed**: {rec['error'][:120]} | ≥ {SCORE_TARGET:g}× | – |")
            else:
                ok = rec["ratio"] is not None and rec["ratio"] >= SCORE_TARGET
                L.append(f"| `score` H{rec['H']} on 1 MB, `--total` (tok/s; ÷ training tok/s "
                         f"{fmt(rec['train_tokens_per_sec'])}) | {rec['tokens_per_sec']:,} ({fmt(rec['ratio'], 2)}×) "
                         f"| ≥ {SCORE_TARGET:g}× | {'yes' if ok else '**no**'} |")
    for rec in ex.get("startup", []):
        if rec.get("error"):
            L.append(f"| warm start-up to the first sampled char, H{rec['H']} | **failed**: {rec['error'][:120]} | < 1 s | – |")
        else:
            v = rec["first_char_s"]
            L.append(f"| warm start-up to the first sampled char, H{rec['H']} (median of 5; exit {rec['exit_s']:.3f} s) "
                     f"| {v:.3f} s | < {STARTUP_TARGET_S:g} s | {'yes' if v < STARTUP_TARGET_S else '**no**'} |")
    h = ex.get("help")
    if h:
        if h.get("error"):
            L.append(f"| `rnn-cli --help` | **failed**: {h['error'][:120]} | < 0.3 s | – |")
        else:
            v = h["median_s"]
            L.append(f"| `rnn-cli --help` (median of 5) | {v:.3f} s | < {HELP_TARGET_S:g} s | "
                     f"{'yes' if v < HELP_TARGET_S else '**no**'} |")
    m = ex.get("memory")
    if m:
        L.append(f"| idle baseline: peak RSS of a 1-step `rnn-cli train` (H=8, 20 kB text) | "
                 f"{fmt(m.get('baseline_rss_mb'))} MB | (subtracted below) | – |")
    L += wordspeed.rows(ex)
    for label, P, bmb, rss, base in mem:
        sub = rss - base if base else None
        ok = sub is not None and sub <= bmb
        L.append(f"| peak RSS of training, {label} (P = {P:,}) | {rss:,.0f} MB raw ({rss / bmb:.1f}× the bound); "
                 f"{fmt(sub)} MB above the idle baseline ({fmt(sub / bmb if sub is not None else None, 2)}× the bound) "
                 f"| ≤ bound {bmb:,.1f} MB | {'yes' if ok else ('**no**' if sub is not None else '–')} (baseline-subtracted) |")
    return L


def write_md(path, s, a, rows, ex, meta):
    L = ["# rnn-cli speed next to the PyTorch and NumPy peers\n",
         f"Generated by `bench/speed.py` ({'--quick, ' if a.quick else ''}{a.seconds:g} s timed per training run, "
         f"{THREADS} threads) on {meta['date']}. Raw JSON lines: `{os.path.relpath(a.jsonl, REPO)}` "
         f"(run id `{meta['run_id']}`).\n",
         "tok/s = B·T training tokens per optimizer step (forward + backward + clip + update) per second of "
         "step time, the peers' definition; kernel compile, evaluation and data loading excluded. Every "
         "implementation trains for the same wall time (the peers: 2 s untimed warm-up + the timed seconds; "
         f"rnn-cli: `--max-seconds` = both), then evaluates once. Ratios = rnn-cli tok/s ÷ peer tok/s, both "
         "measured in this run, one after the other (rnn-cli, torch, numpy per config; with --rounds, the "
         "median of interleaved rounds). % of FLOP limit = "
         "rnn-cli tok/s ÷ (best 1024³ float32 GEMM rate at 2 threads from `../shared/bench/results/limits.json` "
         "÷ (6H² + 6HV) FLOPs per token), as in `../shared/bench/flops.md`. Losses in nats per token "
         "(char: last 10 % of tiny Shakespeare; PTB: ptb.valid.txt). Train losses (the mean of the last 50 "
         "steps, for rnn-cli and the peers alike) are in the JSON lines. The limits.json GEMM rate is the "
         "reference machine's; this machine's own 1024³ float32 GEMM rate is printed under Machine, and the "
         "% of *this* machine's limit is that column times the ratio of the two rates.\n"]
    if rows:
        t, mem = config_table(s, rows, ex)
        L += ["## Training throughput\n"] + t + [""]
    else:
        mem = []
    xt = extras_table(ex, mem)
    if len(xt) > 2:
        L += ["## Sampling, scoring, start-up, memory\n"] + xt + [""]
        if mem:
            L.append("Memory bound (issue 5) = 2 × (parameters P + Adam state 2P + one window of activations "
                     "(T+1)·B·H·3 + T·B·V·2) × 4 bytes + corpus ids 4 bytes × 3 copies; P = 2VH + H² + H + V. "
                     "The idle baseline is the peak RSS of `rnn-cli train` for one step of an H=8 model on a "
                     f"20 kB text: {fmt((ex.get('memory') or {}).get('baseline_rss_mb'))} MB "
                     "(Python + numpy + numba + the cached kernels).\n")
    if s.notes:
        L += ["## Skipped / warnings\n"] + [f"- {n}" for n in s.notes] + [""]
    m, v = meta["machine"], meta["versions"]
    L += ["## Machine and versions\n",
          f"- date: {meta['date']}; load average (1 min) at start {meta['load_start']:.2f}, at end "
          f"{meta['load_end']:.2f} (other work on the machine lowers every figure; the peers ran beside "
          "rnn-cli, so the ratios are the robust numbers)",
          f"- machine: {m['nproc']} CPUs available, {m['cpu']}, Linux {m['kernel']}; 1024³ float32 GEMM "
          f"(numpy's OpenBLAS) {fmt((m.get('gemm_gflops') or {}).get('1'))} GF/s on 1 thread, "
          f"{fmt((m.get('gemm_gflops') or {}).get('2'))} GF/s on 2",
          "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
          f"- environment: rnn-cli's commands are prefixed with `{' '.join(ENV_PREFIX)}`, the "
          f"peers' with `{' '.join(meta.get('peer_env') or ENV_PREFIX)}`", ""]
    cmds = []
    for row in rows:
        for k, r in row.get("runs", {}).items():
            cmds.append(r["cmd"])
    for k in ("sample", "sample-modes", "score", "startup"):
        if isinstance(ex.get(k), list):
            cmds += [r["cmd"] for r in ex[k] if r.get("cmd")]
    for k in ("help", "memory"):
        if ex.get(k):
            cmds.append(ex[k]["cmd"])
    for o in (ex.get("softmax") or {}).values():
        cmds += o.get("cmds", [])[:1]
    cmds += [r["cmd"] for r in ex.get("score-lines") or [] if r.get("cmd")]
    cmds += [r["cmd"] for r in (ex.get("softmax-epoch") or {}).values() if r.get("cmd")]
    cmds += [r[k] for r in ex.get("sparse-steps") or [] for k in ("sparse_cmd", "dense_cmd")]
    if cmds:
        L += ["## Exact commands\n", "Temporary paths (`$TMP/`, a `rnn-bench-*` folder of the system temp dir) are deleted at the end; the "
              "PTB file for rnn-cli is ptb.train.txt + ptb.valid.txt with `--val-frac` = the valid share of "
              "tokens, so its validation set is exactly ptb.valid.txt.\n", "```"] + cmds + ["```", ""]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L))
    log(f"speed.py: wrote {os.path.relpath(path, os.getcwd())}")
