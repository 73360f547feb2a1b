"""What `bench/speed.py` measures: the command templates, the training configurations (each
with its targets), the extras, and the arithmetic behind the targets (FLOPs per token, the
memory bound, the machine's peak rate).

Standard library only, no I/O but `peak_rate`'s reading of an already-loaded limits.json.
"""

# ----------------------------------------------------------------------------- templates
# Adjust these if rnn-cli's flags change. {rnn} is the rnn-cli executable; every path is quoted.
# --eval-every is huge so that validation runs once, at the end (excluded from tok/s anyway).
OURS_TRAIN = ("{rnn} train {data} -o {model} --level {level} --hidden {H} --batch-size {B} "
              "--seq-len {T} --threads {threads} --max-seconds {seconds} --eval-every 1000000 "
              "--val-frac {val_frac} --json --seed 1 --cell {cell} --dropout {dropout} --embed {E} "
              "{extra}")
OURS_TIE = "--tie-weights"
OURS_WORD_EXTRA = "--tokenizer space --vocab-size 10000 --softmax full"  # the peers' output layer
OURS_SAMPLE = "{rnn} sample -m {model} -n {n} --seed 1 --threads {threads}"
OURS_SCORE = "{rnn} score -m {model} --total --json --threads {threads} {file}"
OURS_BASELINE = ("{rnn} train {data} -o {model} --hidden 8 --batch-size 1 --seq-len 8 "
                 "--steps 1 --threads {threads} --val-frac 0.1 --seed 1 --cell rnn --dropout 0")
PEER_TRAIN = ("{python} {peers} --impl {impl} --cell {cell} --hidden {H} --batch {B} --seq {T} "
              "--vocab-file {data} --seconds {seconds} --threads {threads} --emb {E} {extra}")
PEER_CHAR_EXTRA = "--level char --val-frac 0.1"
PEER_WORD_EXTRA = "--level word --val-file {valid}"
# OMP_WAIT_POLICY=PASSIVE is rnn-cli's own default (kernels/_jit.py), spelled out for its commands.
# The peers run with their own defaults: torch's OpenMP threads spin between regions, which on a
# quiet machine is worth up to 2x its speed (LSTM H 256 --emb 256: 67.6k tok/s, 34.1k passive;
# 2026-12-02). Until then the peers ran passive too, which halved torch on a quiet machine and
# so inflated the ratios. On a shared machine spinning costs torch up to 10x instead (load average
# 7-10 on 2 cores: 200-2,000 tok/s instead of ~20k); --peers-passive gives them our policy there.
ENV_PREFIX = ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY=PASSIVE"]
PEER_ENV_PREFIX = ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE"]

# The peers train --warmup (default 2 s, untimed) + --seconds; rnn-cli has no separate warm-up
# (its kernel compile is not training), so it gets the same total training wall time.
PEER_WARMUP_S = 2.0
THREADS = 2

# name, corpus, level, H, B, T, targets {peer: minimum ratio}, issue's reference figures[, arch]
# arch (issue 12): cell, embedding width E (0: one-hot; the torch peer always has an embedding,
# H wide unless E says otherwise), tied weights, which peers run (default torch and numpy)
TORCH_ONLY = ("torch",)


def _cells_rows():
    rows = [("H256-B32", "shakespeare", "char", 256, 32, 64, {"torch": 1.5}, "≥ 1.5× torch",
             {"peers": TORCH_ONLY})]
    for H in (128, 256, 512):
        k, txt = (2.0, "≥ 2× torch") if H == 128 else (1.5, "≥ 1.5× torch")
        for cell in ("rnn", "gru", "lstm"):
            rows.append((f"{cell}-E{H}-H{H}", "shakespeare", "char", H, 32, 64, {"torch": k}, txt,
                         {"cell": cell, "E": H, "peers": TORCH_ONLY}))
    rows.append(("ptb-gru-H256-tied", "ptb", "word", 256, 32, 35, {"torch": 1.5}, "≥ 1.5× torch",
                 {"cell": "gru", "E": 256, "tie": True, "peers": TORCH_ONLY}))
    return rows


CONFIGS = [
    ("H128-B32", "shakespeare", "char", 128, 32, 64, {"torch": 2.0, "numpy": 1.5},
     "≥ 2× torch and ≥ 1.5× numpy"),
    ("H128-B1", "shakespeare", "char", 128, 1, 64, {"numpy": 1.5}, "≥ 1.5× numpy"),
    ("H512-B32", "shakespeare", "char", 512, 32, 64, {"torch": 2.0},
     "≥ 2× torch (≈ 50 % of the FLOP limit)"),
    ("H512-B1", "shakespeare", "char", 512, 1, 64, {"numpy": 1.5}, "≥ 1.5× numpy"),
    ("ptb-H256-B32", "ptb", "word", 256, 32, 35, {"numpy": 1.8}, "≥ 1.8× numpy"),
] + _cells_rows()
EXTRAS = ["sample", "sample-modes", "score", "startup", "help", "memory", "softmax", "score-lines"]
# only with --only: one PTB epoch per softmax (~30 min here); equal steps sparse vs dense (~6 min)
OPT_IN = ["softmax-epoch", "sparse-steps"]
# sampling modes (issue 15): name, flags, divisor of --sample-n (a beam of K steps K hypotheses)
SAMPLE_MODES = [("draw", "", 1), ("--top-k 40", "--top-k 40", 1), ("--top-p 0.9", "--top-p 0.9", 1),
                ("--argmax", "--argmax", 1), ("--beam 1", "--beam 1", 1), ("--beam 4", "--beam 4", 4),
                ("--beam 16", "--beam 16", 16)]
QUICK_CONFIGS = ["H128-B32", "H512-B1"]
# --quick's extras: all but the word-level rows of wordspeed.py, whose runs last 45 s at least
# (SOFTMAX_MIN_SECONDS), 16 of them: no smoke test ("short extras")
QUICK_EXTRAS = [e for e in EXTRAS if e not in ("softmax", "score-lines")]
SAMPLE_TARGETS = {512: 50_000, 128: 300_000}   # chars/s, B=1, streaming to a pipe
SCORE_TARGET = 3.0         # score tok/s ÷ training tok/s of the same model
STARTUP_TARGET_S = 1.0     # warm start-up to the first sampled char
HELP_TARGET_S = 0.3        # `rnn-cli --help`


def arch(cfg):
    """The row's architecture: cell, E, tie, peers (the seed's one-hot RNN by default)."""
    out = {"cell": "rnn", "E": 0, "tie": False, "peers": ("torch", "numpy")}
    out.update(cfg[8] if len(cfg) > 8 else {})
    return out


def flops_per_token(H, V, G=1):
    """Recurrence and output layer, forward and backward (flops.md; G gate blocks per cell)."""
    return 6 * G * H * H + 6 * H * V


def peak_rate(limits, threads):
    """Best float32 1024^3 GEMM rate (numpy or torch) at `threads`, in FLOP/s (flops.md)."""
    if not limits:
        return None
    for ent in limits:
        if ent.get("threads") == threads:
            for g in ent.get("gemm", []):
                if g.get("label", "").replace(" ", "") == "gemm1024^3":
                    return 1e9 * max(g.get("np_float32_gflops") or 0, g.get("torch_float32_gflops") or 0)
    return None


def memory_bound(H, V, B, T, n_tokens):
    """Issue 5: 2 × (parameters + Adam state + one window of activations) + corpus ids, bytes."""
    P = V * H + H * H + H + V * H + V
    act = (T + 1) * B * H * 3 + T * B * V * 2
    return 2 * 4 * (P + 2 * P + act) + 4 * 3 * n_tokens, P
