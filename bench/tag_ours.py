#!/usr/bin/env python3
"""rnn-cli's arm of bench/tag.py: train a tagger with `rnn_cli.train` (what `rnn-cli train
--task tag` runs: the same defaults), then time tagging the test file's sentences as raw text
through `rnn_cli.Tagger` (streamed, one result per sentence, in order: what `rnn-cli tag` does
without the process start-up; the median of --passes (3) passes, each by a freshly loaded Tagger), score the test file (`Tagger.test`: conlleval), print one JSON
line. Run from the project root with PYTHONPATH=.; --opts JSON: extra training options
(`{"crf": true}`, `{"char_hidden": 0}`).
"""

import argparse
import json
import os
import sys
import time

PASSES = 3  # tagging passes over the test file; the median is reported (a pass lasts seconds)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--out", required=True, help="the model file")
    p.add_argument("--seconds", type=float, default=0.0, help="training seconds (0: defaults)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--opts", default="{}")
    p.add_argument("--passes", type=int, default=PASSES, help="tagging passes (the median)")
    p.add_argument("--tag-seconds", type=float, default=0.0,
                   help="keep making passes until this many seconds have gone")
    p.add_argument("--barrier", default=None,
                   help="a path prefix: start tagging when the peer is ready too (tag_sync.py)")
    a = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # as `rnn-cli --threads` sets them: before numpy
    import rnn_cli
    from rnn_cli.tasks.tag.tagger import Tagger

    opts = json.loads(a.opts)
    if a.seconds:  # the same minutes as the peer: time is the only stopping rule
        opts.update(max_seconds=a.seconds, epochs=1000.0, patience=0)
    evals = []
    summary = rnn_cli.train(a.train, task="tag", out=a.out, valid=a.dev, threads=a.threads,
                            on_event=lambda k, i: evals.append(i["value"]) if k == "eval"
                            else None, **opts)
    sents = []
    with open(a.test, encoding="utf-8") as f:
        toks = []
        for line in f:
            if line.strip():
                toks.append(line.split("\t")[0])
            elif toks:
                sents.append(" ".join(toks))
                toks = []
    import tag_sync

    count = []

    def one_pass():  # each by a fresh Tagger (its per-string cache empty)
        nonlocal tagger
        tagger = Tagger.load(a.out, threads=a.threads)
        t0 = time.perf_counter()
        count.append(sum(1 for _ in tagger.tag(sents)))
        return time.perf_counter() - t0

    tagger = None
    tag_sync.wait_for(a.barrier, "ours", "peer")
    runs = tag_sync.passes(one_pass, a.passes, a.tag_seconds)
    n = count[-1]
    tag_seconds = sorted(runs)[len(runs) // 2]
    m = tagger.test(a.test)
    out = {"impl": "rnn-cli", "steps": summary["steps"], "epochs": round(summary["epochs"], 2),
           "train_seconds": summary["seconds"], "tokens_per_sec": summary["tokens_per_sec"],
           "best_dev": summary["best"], "evals": evals, "reason": summary["reason"],
           "tag_seconds": round(tag_seconds, 3), "sentences_per_sec": round(n / tag_seconds, 1),
           "tag_passes": [round(t, 3) for t in runs],
           "test_accuracy": m["accuracy"], "threads": summary["threads"],
           "test_f1": m["entities"]["f1"] if "entities" in m else None,
           "test_precision": m["entities"]["precision"] if "entities" in m else None,
           "test_recall": m["entities"]["recall"] if "entities" in m else None,
           "parameters": sum(v.size for v in tagger.net.params.views.values())}
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
