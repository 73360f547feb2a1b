"""bench/translate.py — the translator measured (issue 28): Multi30k German -> English beside a
PyTorch peer of the same network, rnn-cli's own 30-minute run, and the bundled dates task.
Writes bench/TRANSLATE.md.

    side   rnn-cli and the PyTorch peer (bench/translate_peer.py) trained AT THE SAME TIME for
           --minutes, one thread each, on the same token ids (rnn-cli's reader and vocabularies:
           words, cased, --min-count 2), the same network and training rules; neither
           validates (both keep their last parameters, the learning rate falling to 0 by the
           cosine over the minutes). Then both translate test2016 at the same time, greedy and
           beam 5. Targets: BLEU >= the peer's; training target tokens/s >= 2x; greedy and
           beam-5 sentences/s >= 2x.
    goal   rnn-cli alone on both threads for --goal-minutes, validating on dev2016 at every
           epoch's end (the best by BLEU kept): test2016 BLEU >= 28.3 (the published
           bidirectional GRU + additive attention mark, bentrevett/pytorch-seq2seq notebook 3).
    speed  the speed check of `side` alone: both arms trained at the same time for
           --speed-minutes (3), then both translate test2016 greedy and beam 5 at the same
           time, each after an untimed warm-up on the first --warmup (20) sources (rnn-cli's
           first call loads its compiled kernels from the cache, ~0.4 s; torch's has its own
           first-call costs). Targets: training tokens/s, greedy and beam-5 sentences/s >= 2x
           the peer's. Its table becomes (or replaces) the "Speed check" section of the report
           and leaves the other sections as they are.
    dates  `corpora/dates`: --dates-seconds of training (both threads), exact match on its test
           part >= 99.5 %.

    python bench/translate.py                                   # all three (~70 minutes)
    python bench/translate.py --parts side --minutes 1 --out /tmp/t.md   # a smoke test
    python bench/translate.py --parts speed                     # the speed check (~6 minutes)

BLEU is sacrebleu's on detokenised, cased text (signature in the report) — the issue's measure;
the published 28.3 was computed differently (HF `evaluate`'s BLEU on lower-cased spaCy tokens,
greedy decoding), so the table also gives sacrebleu's lower-cased BLEU (13a tokens, the closest
we can compute without spaCy), each labelled. Both sides run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset; run the timed parts under the bench lock:

    flock /work/bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        .venv/bin/python bench/translate.py --parts side
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = 28.3  # bentrevett notebook 3, test BLEU (lower-cased spaCy tokens, greedy)
NETWORK = {"hidden": 256, "embed": 256, "dec_hidden": 256, "attn_size": 256, "proj": 256,
           "dropout": 0.3}  # rnn-cli's flags of the benchmarked network (both arms)
TRAINING = {"batch_size": 64, "lr": 2e-3, "clip": 1.0, "label_smoothing": 0.1}
BEAM, ALPHA = 5, 1.0
PEER_DECODE_BATCH = 64  # the peer's fastest greedy batch here (32: 51, 64: 111, 128: 80 sent/s)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--parts", default="side,goal,dates", help="comma-separated subset")
    p.add_argument("--minutes", type=float, default=30.0, help="side by side: training minutes")
    p.add_argument("--goal-minutes", type=float, default=30.0)
    p.add_argument("--dates-seconds", type=float, default=120.0)
    p.add_argument("--speed-minutes", type=float, default=3.0, help="speed: training minutes")
    p.add_argument("--warmup", type=int, default=20,
                   help="speed: test sources each arm decodes untimed before the timed runs")
    p.add_argument("--data", default=os.path.join(os.environ.get(
        "RNN_CLI_SHARED", os.path.join(ROOT, "..", "shared")), "corpora", "multi30k-de-en"),
        help="the Multi30k folder (train/dev/test.tsv); $RNN_CLI_SHARED/corpora/... by default")
    p.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-bench", "bin", "python"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "TRANSLATE.md"))
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "translate"),
                   help="raw results (JSON) and the models go here")
    p.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm (a JSON spec)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------- data
def load_multi30k(folder: str):
    """(train, dev, test) Pairs and the vocabularies of the benchmark (words, cased, min 2)."""
    from rnn_cli.tasks.translate import reader

    pairs = [reader.read_pairs(os.path.join(folder, f"{n}.tsv")) for n in ("train", "dev", "test")]
    sv = reader.build_vocab(pairs[0].src, "word", 50000, 2)
    tv = reader.build_vocab(pairs[0].tgt, "word", 50000, 2)
    return pairs, sv, tv


def write_ids(path: str, folder: str) -> None:
    """The token ids both arms train on (rnn-cli's reader), for the peer."""
    import numpy as np

    from rnn_cli.tasks.translate import reader

    (train, _, test), sv, tv = load_multi30k(folder)
    out = {"V_src": len(sv), "V_tgt": len(tv), "eos_tgt": tv.eos_id}
    for name, p in (("train", train), ("test", test)):
        for side, vocab, lines in (("src", sv, p.src), ("tgt", tv, p.tgt)):
            ids = [reader.encode(vocab, x)[0] for x in lines]
            out[f"{name}_{side}_ids"] = np.concatenate(ids)
            out[f"{name}_{side}_off"] = np.concatenate([[0], np.cumsum([len(i) for i in ids])])
    np.savez(path, **out)


def bleu(outputs: list[str], refs: list[str]) -> dict:
    """sacrebleu's cased BLEU (its defaults), and lower-cased, of detokenised outputs."""
    import sacrebleu

    cased, lower = sacrebleu.metrics.BLEU(), sacrebleu.metrics.BLEU(lowercase=True)
    c = cased.corpus_score(outputs, [refs])
    lo = lower.corpus_score(outputs, [refs])
    return {"bleu": round(c.score, 2), "bleu_lower": round(lo.score, 2),
            "signature": str(cased.get_signature()),
            "signature_lower": str(lower.get_signature())}


# ---------------------------------------------------------------------------------- arms
def arm_ours(spec: dict) -> dict:
    """One rnn-cli run in this process: train (the engine call `rnn-cli train` makes), then
    translate the test sources greedy and with a beam, timed."""
    import rnn_cli
    from rnn_cli.kernels import _jit
    from rnn_cli.tasks.translate import reader
    from rnn_cli.tasks.translate.translator import Translator

    _jit.set_threads(spec["threads"])
    evals = []
    summary = rnn_cli.train(spec["train"], task="translate", out=spec["model"],
                            on_event=lambda k, i: evals.append(
                                {"step": i["step"], "epoch": i["epoch"], "value": i["value"],
                                 "val_loss": i["val_loss"]}) if k == "eval" else None,
                            **spec["options"])
    result = {"impl": "rnn-cli", "threads": spec["threads"], "summary": summary, "evals": evals}
    if spec.get("decode"):
        test = reader.read_pairs(spec["test"])
        tr = Translator.load(spec["model"])
        for beam, alpha in ((1, 0.0), (BEAM, ALPHA)) if spec.get("warmup") else ():
            list(tr.translate(test.src[:spec["warmup"]], beam=beam, length_penalty=alpha))
        for name, beam, alpha in (("greedy", 1, 0.0), ("beam", BEAM, ALPHA)):
            t0 = time.perf_counter()
            out = [a[0].text for a in tr.translate(test.src, beam=beam, length_penalty=alpha)]
            result[name + "_seconds"] = time.perf_counter() - t0
            result[name] = out
        result["sentences"] = len(test.src)
    return result


def run_arms(specs: list[tuple[str, list[str]]], log) -> list[dict]:
    """Start every command at once; wait; their JSON results (the last stdout line or --out)."""
    procs = []
    for out_path, cmd in specs:
        log(" ".join(cmd))
        procs.append((out_path, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)))
    results = []
    for out_path, proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"an arm failed ({proc.returncode}):\n{err[-3000:]}")
        with open(out_path) as f:
            results.append(json.load(f))
    return results


def ours_cmd(spec: dict, path: str) -> list[str]:
    spec = {**spec, "result": path}
    return [sys.executable, os.path.join(ROOT, "bench", "translate.py"), "--arm",
            json.dumps(spec)]


# ---------------------------------------------------------------------------------- parts
def part_speed(a, work: str, log) -> dict:
    out = part_side(a, work, log, minutes=a.speed_minutes, warmup=a.warmup)
    out["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    return out


def part_side(a, work: str, log, minutes: float | None = None, warmup: int = 0) -> dict:
    from rnn_cli.tasks.translate.search import to_text  # noqa: F401  (imports rnn_cli early)

    ids = os.path.join(work, "ids.npz")
    write_ids(ids, a.data)
    secs = (a.minutes if minutes is None else minutes) * 60
    (_, _, test), _, tv = load_multi30k(a.data)
    ours = {"threads": 1, "train": os.path.join(a.data, "train.tsv"),
            "test": os.path.join(a.data, "test.tsv"), "model": os.path.join(work, "side.npz"),
            "decode": True, "warmup": warmup,
            "options": {**NETWORK, **TRAINING, "min_count": 2, "vocab_size": 50000,
                        "val_frac": 0.0, "max_seconds": secs, "metric": "loss", "seed": 1234}}
    peer = [a.peer_python, os.path.join(ROOT, "bench", "translate_peer.py"), "--data", ids,
            "--seconds", str(secs), "--threads", "1", "--out", os.path.join(work, "peer.json"),
            "--embed", "256", "--hidden", "256", "--dec-hidden", "256", "--attn-size", "256",
            "--proj", "256", "--dropout", "0.3", "--label-smoothing", "0.1", "--batch-size",
            "64", "--lr", "2e-3", "--clip", "1.0", "--beam", str(BEAM), "--length-penalty",
            str(ALPHA), "--decode-batch", str(PEER_DECODE_BATCH), "--warmup", str(warmup)]
    r_ours, r_peer = run_arms([(os.path.join(work, "ours.json"),
                                ours_cmd(ours, os.path.join(work, "ours.json"))),
                               (os.path.join(work, "peer.json"), peer)], log)
    for r in (r_peer,):
        for name in ("greedy", "beam"):
            r[name] = [to_text(tv, ids) for ids in r[name]]
    out = {}
    for label, r in (("rnn-cli", r_ours), ("torch", r_peer)):
        tok_s = r["summary"]["tokens_per_sec"] if label == "rnn-cli" else r["tokens_per_sec"]
        steps = r["summary"]["steps"] if label == "rnn-cli" else r["steps"]
        out[label] = {"tokens_per_sec": tok_s, "steps": steps, "sentences": r["sentences"],
                      "greedy_sent_s": r["sentences"] / r["greedy_seconds"],
                      "beam_sent_s": r["sentences"] / r["beam_seconds"],
                      # the words written: a weaker model's longer outputs take longer to decode
                      **{f"{n}_words_s": sum(len(x.split()) for x in r[n]) / r[f"{n}_seconds"]
                         for n in ("greedy", "beam")},
                      "greedy": bleu(r["greedy"], test.tgt), "beam": bleu(r["beam"], test.tgt),
                      "samples": r["greedy"][:3]}
    return out


def part_goal(a, work: str, log) -> dict:
    spec = {"threads": 2, "train": os.path.join(a.data, "train.tsv"),
            "test": os.path.join(a.data, "test.tsv"), "model": os.path.join(work, "goal.npz"),
            "decode": True,
            "options": {**NETWORK, **TRAINING, "min_count": 2, "vocab_size": 50000,
                        "valid": os.path.join(a.data, "dev.tsv"), "metric": "bleu",
                        "max_seconds": a.goal_minutes * 60, "seed": 1234}}
    path = os.path.join(work, "goal.json")
    (r,) = run_arms([(path, ours_cmd(spec, path))], log)
    (_, _, test), _, _ = load_multi30k(a.data)
    return {"summary": {k: v for k, v in r["summary"].items() if not isinstance(v, (list, dict))},
            "evals": r["evals"], "greedy": bleu(r["greedy"], test.tgt),
            "beam": bleu(r["beam"], test.tgt),
            "greedy_sent_s": r["sentences"] / r["greedy_seconds"],
            "beam_sent_s": r["sentences"] / r["beam_seconds"]}


def part_dates(a, work: str, log) -> dict:
    d = os.path.join(ROOT, "corpora", "dates")
    spec = {"threads": 2, "train": os.path.join(d, "train.tsv"),
            "model": os.path.join(work, "dates.npz"),
            "options": {"level": "char", "valid": os.path.join(d, "valid.tsv"),
                        "test": os.path.join(d, "test.tsv"), "hidden": 128, "embed": 32,
                        "proj": 32, "dropout": 0.0, "lr": 3e-3,
                        "max_seconds": a.dates_seconds, "seed": 1234}}  # docs/translate.md's
    path = os.path.join(work, "dates.json")
    (r,) = run_arms([(path, ours_cmd(spec, path))], log)
    s = r["summary"]
    return {k: s[k] for k in ("test_exact", "test_n", "val_exact", "steps", "epochs", "seconds",
                              "wall_seconds", "tokens_per_sec")}


# ---------------------------------------------------------------------------------- report
def machine() -> dict:
    import platform

    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load": [round(x, 2) for x in load],
            "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime())}


def write_report(path: str, found: dict, a, parts: list[str]) -> None:
    """The whole report from `found`, or (speed alone) its speed section spliced into the
    report already there, the rest of it kept."""
    from translate_report import render, splice_speed  # noqa: E402  (next to this file)

    if parts == ["speed"] and os.path.exists(path):
        text = splice_speed(open(path).read(), found["speed"])
    else:
        text = render(found, a)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None) -> int:
    a = parse_args(argv)
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    if a.arm:
        spec = json.loads(a.arm)
        result = arm_ours(spec)
        with open(spec["result"], "w") as f:
            json.dump(result, f, default=str)
        return 0
    os.makedirs(a.results, exist_ok=True)
    log = (lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
                             flush=True))
    parts = [p for p in a.parts.split(",") if p]
    raw = os.path.join(a.results, "raw.json")
    found = json.load(open(raw)) if os.path.exists(raw) else {}
    with tempfile.TemporaryDirectory() as work:
        for name in parts:
            before = machine()
            log(f"part {name} (load {before['load']})")
            t0 = time.time()
            found[name] = {"result": {"side": part_side, "goal": part_goal,
                                      "dates": part_dates, "speed": part_speed}[name](
                                          a, work, log),
                           "machine": before, "load_after": machine()["load"],
                           "wall": round(time.time() - t0, 1),
                           "args": {"minutes": a.minutes, "goal_minutes": a.goal_minutes,
                                    "dates_seconds": a.dates_seconds,
                                    "speed_minutes": a.speed_minutes, "warmup": a.warmup}}
            with open(raw, "w") as f:
                json.dump(found, f, indent=1, default=str)
    write_report(a.out, found, a, parts)
    log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
