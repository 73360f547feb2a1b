"""The language model as a task of `rnn_cli.training`: options -> configs, the corpus as token
ids, the train/validation split, the batch shape, the defaults scaled to the corpus, the device,
a new or resumed model, and the trainer (CPU `Trainer` or `CudaTrainer`). Never prints: notices
go out as events (`emit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnn_cli import checkpoint, idcache
from rnn_cli.config import ModelConfig, TrainConfig, to_dict, use_sparse
from rnn_cli.errors import UsageError
from rnn_cli.params import Params
from rnn_cli.tasks import Emit, TestReport
from rnn_cli.tasks.lm import windows
from rnn_cli.tasks.lm.options import OPTIONS, configs, scaled_defaults
from rnn_cli.tasks.lm.train import EVAL_BUDGET, Trainer, warm_up


class LmTask:
    """`rnn_cli.tasks.Task` of the language model."""

    kind = "lm"
    options = OPTIONS

    def prepare(self, corpus_path: str, *, out: str | None, resume: bool,
                options: Mapping[str, Any], device: str, emit: Emit) -> LmRun:
        from rnn_cli.cuda.backend import for_model

        given = dict(options)
        level = given.get("level")
        path = out or checkpoint.store_path(level or "char")
        resumed = checkpoint.load(path, level) if resume else None
        mcfg, tcfg = configs(given, resumed)
        if out is None and resumed is None:
            path = checkpoint.store_path(mcfg.level)
        checkpoint.check_writable(path)
        enc, errs = given.get("encoding", "utf-8"), given.get("errors", "strict")
        vsize = tcfg.vocab_max if mcfg.level == "word" or "vocab_size" in given else None
        data = idcache.corpus_ids(corpus_path, enc, errs, resumed=resumed, level=mcfg.level,
                                  vocab_size=vsize, min_count=tcfg.min_count, lower=tcfg.lower,
                                  tokenizer=tcfg.tokenizer)
        vocab, ids, info, unknown = data.vocab, data.ids, data.info, data.unknown
        emit("detail", {"message": f"token ids ({'cached' if data.cached else 'built'}): "
                                   f"{data.path}"})
        train_ids, val_ids = windows.split_train_val(ids, tcfg.val_frac)
        if tcfg.valid:
            val_ids = _extra_ids(tcfg.valid, vocab, enc, errs, emit, "validation")
        test_ids = _extra_ids(tcfg.test, vocab, enc, errs, emit, "test") if tcfg.test else None
        B, T, adjusted = windows.fit_batch_shape(len(train_ids), tcfg.batch_size, tcfg.seq_len)
        if adjusted:
            if resumed is not None:
                raise UsageError("the corpus no longer fits the resumed batch shape")
            emit("warning", {"message": f"the text is short: using --batch-size {B} --seq-len "
                                        f"{T} (asked {tcfg.batch_size} x {tcfg.seq_len})"})
            tcfg = TrainConfig(**{**vars(tcfg), "batch_size": B, "seq_len": T})
        scaled = scaled_defaults(mcfg.level, len(train_ids), given) if resumed is None else {}
        word_class = None
        if resumed is None:
            from rnn_cli.tasks.lm.classes import choose_softmax

            scaled_sm, word_class = choose_softmax(mcfg.level, given.get("softmax"),
                                                   given.get("classes"), train_ids, len(vocab))
            scaled.update(scaled_sm)
        mcfg = ModelConfig(**{**vars(mcfg), **scaled, "vocab_size": len(vocab)}).validate()
        if resumed is None and mcfg.level == "word":
            planned = _plan_word(mcfg, tcfg, train_ids, B, T, given, scaled, device,
                                 word_class, emit)
            scaled.update(planned)
            train_part = {k: planned.pop(k) for k in ("lr",) if k in planned}
            mcfg = ModelConfig(**{**vars(mcfg), **planned}).validate()
            tcfg = TrainConfig(**{**vars(tcfg), **train_part}).validate()
        sparse = use_sparse(tcfg.updates, mcfg)
        device = for_model(device, given.get("device", device), mcfg, _warner(emit),
                           training=True, sparse=sparse)
        if scaled:
            emit("detail", {"message": "defaults for this corpus: " + ", ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in scaled.items())})
        rng = np.random.default_rng(tcfg.seed)
        if resumed is not None:
            model = resumed
            model.train_cfg = tcfg
            if resumed.rng_state:
                rng.bit_generator.state = resumed.rng_state
        else:
            params = Params(mcfg, word_class=word_class).init(rng)
            model = checkpoint.Model(mcfg, vocab, params, tcfg,
                                     {"corpus": info, "unknown_tokens": int(unknown),
                                      "train_tokens": int(len(train_ids)),
                                      "val_tokens": int(len(val_ids))})
        emit("notice", {"message": f"{info['name']}: {info['bytes']:,} bytes, {len(ids):,} "
                                   f"{mcfg.level} tokens ({len(train_ids):,} train, "
                                   f"{len(val_ids):,} validation), V = {len(vocab):,}"
                                   + (f", {unknown:,} mapped to <UNK>" if unknown else "")})
        if tcfg.updates == "auto":
            emit("detail", {"message": f"--updates auto: {'sparse' if sparse else 'dense'}"})
        run = LmRun(path, device, model, tcfg, train_ids, val_ids, test_ids, rng, sparse, emit)
        # the default cadence keeps validation within its time budget; an explicit --eval-every
        # (now, or in the run being resumed, as the model file records) validates at every due
        # step
        budget = EVAL_BUDGET if resumed is None else float(resumed.state.get("eval_budget", 0.0))
        run.trainer.eval_budget = (budget or None) if "eval_every" not in given else None
        run.trainer.model.state["eval_budget"] = run.trainer.eval_budget or 0.0
        run.scaled, run.resumed = scaled, resumed is not None
        return run

    def test(self, path: str, file: str, options: Mapping[str, Any]) -> TestReport:
        return perplexity_report(path, file, options)


def perplexity_report(path: str, file: str, options: Mapping[str, Any]) -> TestReport:
    """`rnn-cli test` of a language model: FILE read as one stream, the state carried across
    lines as in validation (the numbers of `rnn-cli score --total`)."""
    from rnn_cli import streams
    from rnn_cli.tasks.lm.api import Model

    if options.get("bad_lines"):
        raise UsageError("--bad-lines applies to labelled files; a language model reads any "
                         "text", hint="drop --bad-lines")
    lm = Model.load(path, level=options.get("level"), device=options.get("device") or "cpu",
                    threads=options.get("threads"), warn=options.get("warn"))
    name, stream = streams.open_input(file, options.get("encoding") or "utf-8",
                                      options.get("errors") or "strict")
    with stream:
        t = lm.score_total(raw for _, raw in streams.read_lines(name, stream))
    data = {"kind": "lm", "model": path, "file": file, "lines": t.lines, "tokens": t.tokens,
            "oov": t.oov, "logprob": t.logprob, "nats_per_token": t.nats_per_token,
            "perplexity": t.perplexity, "log10prob": t.log10prob}
    if t.bits_per_char is not None:
        data["bits_per_char"] = t.bits_per_char
    summary = [("lines", t.lines), ("tokens", t.tokens), ("oov", t.oov),
               ("nats_per_token", t.nats_per_token), ("perplexity", t.perplexity)]
    if t.bits_per_char is not None:
        summary.append(("bits_per_char", t.bits_per_char))
    warnings = [f"{t.oov:,} token(s) were not in the vocabulary and were scored as <UNK>"] \
        if t.oov else []
    return TestReport("lm", data, summary, [], warnings)


class LmRun:
    """`rnn_cli.tasks.Run` of the language model: a Trainer (or CudaTrainer) and where it saves."""

    def __init__(self, out: str, device: str, model: checkpoint.Model, tcfg: TrainConfig,
                 train_ids, val_ids, test_ids, rng: np.random.Generator, sparse: bool,
                 emit: Emit):
        self.out, self.device, self.sparse = out, device, sparse
        self.n_train, self.n_val = int(len(train_ids)), int(len(val_ids))
        self.n_test = None if test_ids is None else int(len(test_ids))
        self.scaled: dict = {}
        self.resumed = False
        if device == "cuda":
            from rnn_cli.cuda import train as cuda_train

            if test_ids is not None:
                emit("warning", {"message": "--test is scored on the CPU path only; ignored "
                                            "with --device cuda"})
            self.trainer = cuda_train.CudaTrainer(model, tcfg, train_ids, val_ids, rng)
            self.n_test = None
        else:
            self.trainer = Trainer(model, tcfg, train_ids, val_ids, rng, test_ids)

    @property
    def step(self) -> int:
        return self.trainer.step

    def compile(self, emit: Emit) -> float:
        cfg = self.trainer.model.cfg
        secs = warm_up(cfg, sparse=self.sparse)  # sparse implies the CPU (for_model)
        if self.device == "cuda":
            from rnn_cli.cuda import backend, train as cuda_train

            secs += cuda_train.warm_up(cfg)
            emit("detail", {"message": f"device: {backend.describe()}"})
        return secs

    def describe(self) -> dict[str, Any]:
        t = self.trainer
        return {"task": "lm", "out": self.out, "device": self.device, "resumed": self.resumed,
                "step": t.step, "defaults": dict(self.scaled), "model": to_dict(t.model.cfg),
                "train": {k: v for k, v in to_dict(t.tcfg).items() if k != "extra"},
                "sizes": {"train_tokens": self.n_train, "val_tokens": self.n_val,
                          "test_tokens": self.n_test, "V": t.model.cfg.vocab_size,
                          "B": t.batches.batch_size, "T": t.batches.seq_len,
                          "parameters": len(t.params)},
                "sparse_updates": self.sparse}

    def run(self, on_event: Emit, should_stop: Callable[[], bool]) -> dict[str, Any]:
        preview = _Preview(self.trainer, on_event)

        def forward(kind, info):
            on_event(kind, info)
            if kind == "step":
                preview(info["step"])

        return self.trainer.run(forward, should_stop)

    def save(self, path: str, with_resume: bool = True) -> None:
        checkpoint.save(self.trainer.to_model(with_resume=with_resume), path)


def _plan_word(mcfg, tcfg, train_ids, B, T, given, scaled, device, word_class, emit) -> dict:
    """The word defaults by budget (`budget.py`); with --max-seconds on the CPU the kernels are
    compiled first and a few steps timed (inside a compiling/compiled pair of events)."""
    from rnn_cli.tasks.lm import budget

    timed = []

    def rate_of(cfg):
        emit("compiling", {})
        t0 = time.perf_counter()
        warm_up(cfg)
        rate = budget.measure_rate(cfg, word_class, B, T, train_ids)
        emit("compiled", {"seconds": time.perf_counter() - t0})
        timed.append(rate)
        return rate

    explicit = any(k in given for k in ("steps", "epochs", "max_seconds"))
    planned, why = budget.word_defaults(
        mcfg, tcfg, len(train_ids), B, T, given, rate_of if device == "cpu" else None,
        cap=None if explicit else scaled.get("hidden", mcfg.hidden))
    timed_h = mcfg.hidden if "hidden" in given else budget.RATE_H  # what rate_of timed
    emit("detail", {"message": "word defaults by budget: " + why
                               + (f" (H {timed_h} timed at {timed[0]:,.0f} tok/s)"
                                  if timed else "")})
    return planned


def _extra_ids(path, vocab, encoding, errors, emit, what):
    """Ids of a --valid / --test file under the training vocabulary (unknown tokens -> <UNK>)."""
    data = idcache.corpus_ids(path, encoding, errors, vocab=vocab)
    emit("notice", {"message": f"{what}: {data.info['name']}, {len(data.ids):,} tokens"
                               + (f", {data.unknown:,} mapped to <UNK>" if data.unknown else "")})
    return data.ids


def _warner(emit: Emit):
    return lambda msg: emit("warning", {"message": msg})


class _Preview:
    """A short sample every --sample-every steps, as a "sample" event (karpathy/char-rnn habit)."""

    def __init__(self, trainer, emit: Emit):
        self.trainer, self.emit, self.every = trainer, emit, trainer.tcfg.sample_every

    def __call__(self, step: int) -> None:
        if not self.every or step % self.every:
            return
        from rnn_cli.tasks.lm.sample import SampleConfig, Sampler

        m = self.trainer.model
        s = Sampler(checkpoint.Model(m.cfg, m.vocab, self.trainer.params))
        x0, _ = s.prime("")
        n = 200 if m.cfg.level == "char" else 40
        text = "".join(s.generate(SampleConfig(length=n), np.random.default_rng(step), x0))
        self.emit("sample", {"step": step, "text": text})


TASK = LmTask()
