"""bench/TRANSLATE.md from bench/translate.py's results (raw.json): the tables and the targets."""

from __future__ import annotations

PUBLISHED = [("2-layer LSTM seq2seq (notebook 1)", 13.76), ("GRU with context (notebook 2)", 20.61),
             ("bidirectional GRU + additive attention (notebook 3)", 28.30)]


def _ok(cond: bool) -> str:
    return "**met**" if cond else "**missed**"


def _load(m: dict) -> str:
    return ", ".join(f"{x:g}" for x in m["load"])


SPEED_TITLE = "## Speed check"


def render_speed(speed: dict) -> str:
    """The speed part's section: ratios of arms trained and decoding at the same time."""
    r, m, a = speed["result"], speed["machine"], speed["args"]
    o, t = r["rnn-cli"], r["torch"]
    out = [f"{SPEED_TITLE}: {a['speed_minutes']:g} minutes of training each, 1 thread each, "
           "at the same time", "",
           f"{m['when']}, git {r.get('git', '?')}; load average {_load(m)} at the start, "
           f"{', '.join(f'{x:g}' for x in speed['load_after'])} at the end. "
           "`bench/translate.py --parts speed`: the network and training rules of the 30-minute "
           "run below, trained for a few minutes (speed only: the BLEU of so short a run says "
           "little), then both arms translate test2016 at the same time, each after an untimed "
           f"warm-up on its first {a['warmup']} sources.", "",
           "| | rnn-cli | torch | ratio | target |", "|---|---:|---:|---:|---|"]
    ratio = o["tokens_per_sec"] / t["tokens_per_sec"]
    out.append(f"| training target tokens/s | {o['tokens_per_sec']:,.0f} | "
               f"{t['tokens_per_sec']:,.0f} | {ratio:.2f}x | ≥ 2x: {_ok(ratio >= 2)} |")
    out.append(f"| optimizer steps | {o['steps']:,} | {t['steps']:,} | | |")
    for what, label in (("greedy", "greedy"), ("beam", "beam 5")):
        ro = o[f"{what}_sent_s"] / t[f"{what}_sent_s"]
        out.append(f"| {label} translation, sentences/s | {o[f'{what}_sent_s']:.1f} | "
                   f"{t[f'{what}_sent_s']:.1f} | {ro:.2f}x | ≥ 2x: {_ok(ro >= 2)} |")
        if f"{what}_words_s" in o:  # output words/s: the same work whatever each model writes
            rw = o[f"{what}_words_s"] / t[f"{what}_words_s"]
            out.append(f"| {label} translation, output words/s | {o[f'{what}_words_s']:,.0f} | "
                       f"{t[f'{what}_words_s']:,.0f} | {rw:.2f}x | |")
    for what, label in (("greedy", "greedy"), ("beam", "beam 5")):
        out.append(f"| test2016 BLEU after the short run, {label} (cased) | "
                   f"{o[what]['bleu']:.2f} | {t[what]['bleu']:.2f} | | |")
    return "\n".join(out + [""])


def splice_speed(text: str, speed: dict) -> str:
    """`text` (a report) with its speed section replaced by this one, or this one put before
    the first other section; everything else kept."""
    section = render_speed(speed)
    lines = text.split("\n")
    heads = [i for i, line in enumerate(lines) if line.startswith("## ")]
    mine = [i for i in heads if lines[i].startswith(SPEED_TITLE)]
    if mine:
        nxt = [i for i in heads if i > mine[0]]
        end = nxt[0] if nxt else len(lines)
        return "\n".join(lines[:mine[0]] + section.split("\n") + lines[end:])
    at = heads[0] if heads else len(lines)
    return "\n".join(lines[:at] + section.split("\n") + lines[at:])


def render(found: dict, args) -> str:
    out = ["# Translation (issue 28): Multi30k de→en beside PyTorch, and the dates task", "",
           "Written by `bench/translate.py` (its docstring says how each part runs). Every "
           "figure of a ratio comes from arms trained **at the same time**, one thread each, in "
           "one run, because this 2-core machine is shared: the load average at the start of "
           "each part is given with it.", ""]
    if found.get("speed"):
        out += [render_speed(found["speed"])]
    side = found.get("side")
    if side:
        r, m = side["result"], side["machine"]
        o, t = r["rnn-cli"], r["torch"]
        mins = side["args"]["minutes"]
        out += [f"## Side by side: {mins:g} minutes each, 1 thread each, at the same time", "",
                f"{m['when']}; load average {_load(m)} at the start, "
                f"{', '.join(f'{x:g}' for x in side['load_after'])} at the end.", "",
                "Network (both): source embedding 256 → bidirectional GRU 256 per direction → "
                "bridge → GRU decoder 256 with additive attention (256) → output projection "
                "256, tied with the target embedding; dropout 0.3, label smoothing 0.1, Adam "
                "2e-3 with the cosine to 0, clipping 1, batches of 64 pairs by target length; "
                "words, cased, vocabularies of the words seen twice (rnn-cli's reader for "
                "both arms).", "",
                "| | rnn-cli | torch | ratio | target |", "|---|---:|---:|---:|---|"]
        ratio = o["tokens_per_sec"] / t["tokens_per_sec"]
        out.append(f"| training target tokens/s | {o['tokens_per_sec']:,.0f} | "
                   f"{t['tokens_per_sec']:,.0f} | {ratio:.2f}x | ≥ 2x: {_ok(ratio >= 2)} |")
        out.append(f"| optimizer steps | {o['steps']:,} | {t['steps']:,} | | |")
        for what in ("greedy", "beam"):
            ro = o[f"{what}_sent_s"] / t[f"{what}_sent_s"]
            label = "greedy" if what == "greedy" else "beam 5"
            out.append(f"| {label} translation, sentences/s | {o[f'{what}_sent_s']:.1f} | "
                       f"{t[f'{what}_sent_s']:.1f} | {ro:.2f}x | ≥ 2x: {_ok(ro >= 2)} |")
        for what, label in (("greedy", "greedy"), ("beam", "beam 5")):
            d = o[what]["bleu"] - t[what]["bleu"]
            out.append(f"| test2016 BLEU, {label} (cased, detokenised) | {o[what]['bleu']:.2f} "
                       f"| {t[what]['bleu']:.2f} | {d:+.2f} | ≥ torch: {_ok(d >= 0)} |")
            out.append(f"| test2016 BLEU, {label} (lower-cased) | {o[what]['bleu_lower']:.2f} | "
                       f"{t[what]['bleu_lower']:.2f} | {o[what]['bleu_lower'] - t[what]['bleu_lower']:+.2f} | |")
        out += ["", f"sacrebleu signatures: `{o['greedy']['signature']}` (cased), "
                    f"`{o['greedy']['signature_lower']}` (lower-cased).", ""]
        out += ["First test sentences, rnn-cli greedy:", ""] + \
               [f"    {s}" for s in o["samples"]] + [""]
    goal = found.get("goal")
    if goal:
        r, m = goal["result"], goal["machine"]
        s = r["summary"]
        out += [f"## rnn-cli alone: {goal['args']['goal_minutes']:g} minutes on both threads", "",
                f"{m['when']}; load average {_load(m)} at the start. `rnn_cli.train` (what "
                "`rnn-cli train --task translate` runs) with the network above, validating on "
                "dev2016 at each epoch's end and keeping the best by BLEU.", "",
                f"{s['steps']:,} steps, {s['epochs']:.2f} epochs, {s['tokens_per_sec']:,.0f} "
                f"target tokens/s, {s['seconds']:.0f} s of training (validation included: "
                f"{s['eval_seconds']:.0f} s).", "",
                "| test2016 | BLEU cased, detokenised | BLEU lower-cased | sentences/s | target |",
                "|---|---:|---:|---:|---|"]
        for what, label in (("greedy", "greedy"), ("beam", "beam 5, length penalty 1.0")):
            b = r[what]
            out.append(f"| {label} | {b['bleu']:.2f} | {b['bleu_lower']:.2f} | "
                       f"{r[what + '_sent_s']:.1f} | ≥ 28.3: {_ok(b['bleu'] >= 28.3)} (cased) |")
        out += ["", "Validation (dev2016, greedy) at each epoch's end:", "",
                "| step | epoch | BLEU | loss |", "|---:|---:|---:|---:|"]
        out += [f"| {e['step']} | {e['epoch']:.2f} | {e['value']:.2f} | {e['val_loss']:.3f} |"
                for e in r["evals"]]
        out.append("")
    out += ["## The published marks", "",
            "bentrevett/pytorch-seq2seq (2023 notebooks), Multi30k test2016, 10 epochs on a "
            "GPU, greedy decoding; BLEU of HF `evaluate` on **lower-cased spaCy tokens** (not "
            "sacrebleu's detokenised, cased BLEU: the lower-cased column above is the nearer "
            "figure):", "", "| model | BLEU |", "|---|---:|"]
    out += [f"| {name} | {v:.2f} |" for name, v in PUBLISHED]
    out.append("")
    dates = found.get("dates")
    if dates:
        r, m = dates["result"], dates["machine"]
        out += [f"## The dates task: {dates['args']['dates_seconds']:g} s of training", "",
                f"{m['when']}; load average {_load(m)}. `corpora/dates` (characters both "
                "sides; bidirectional GRU 128, decoder GRU 128, additive attention 128, "
                "embeddings and projection 32, no dropout, `--lr 3e-3`: docs/translate.md's "
                "command), both threads.", "",
                "| | value | target |", "|---|---:|---|",
                f"| exact match, test ({r['test_n']:,} dates) | {100 * r['test_exact']:.1f} % | "
                f"≥ 99.5 %: {_ok(r['test_exact'] >= 0.995)} |",
                f"| exact match, valid | {100 * r['val_exact']:.1f} % | |",
                f"| steps, epochs | {r['steps']:,}, {r['epochs']:.1f} | |",
                f"| training seconds | {r['seconds']:.0f} | |", ""]
    return "\n".join(out)
