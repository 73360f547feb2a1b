"""A trained tagger, loaded: tag sentences as a stream, tag probabilities, entity spans, and the
test metrics. What `rnn-cli tag` and `rnn-cli test` run on a tagging model. Never prints.

    tagger = Tagger.load("ner.npz")
    for s in tagger.tag(open("tweets.txt"), probs=True):    # one result per sentence, in order
        s.tokens, s.tags, s.probs, s.spans()                 # spans: [{"start", "end", "type",
                                                             #   "text", "confidence"}]
    tagger.tag_tokens([["Harry", "Potter", "waved"]])        # [Tagged], already split
    tagger.test("test.tsv")                                  # accuracy, entities, per_type, ...

Input to tag: raw text (one sentence a line, split by `tokenizer`; an empty line gives an empty
result, so the output stays aligned), or a CoNLL column / CoNLL-U file ("conll", "conllu"; a
column file may hold only tokens; its tags, if any, come back as `gold`). Sentences are read and
tagged READ_AHEAD batches at a time (bounded memory on an endless stream); batch_size 1 answers
each sentence as soon as it is read. Sentences are never cut (`--max-len` is training's).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from rnn_cli.encoder import GATES
from rnn_cli.errors import UsageError
from rnn_cli.store import resolve_model_path
from rnn_cli.taskfile import TaskModel, load_task
from rnn_cli.tasks.tag import data as tagdata
from rnn_cli.tasks.tag.infer import TypeCache, tag_block
from rnn_cli.tasks.tag.metrics import TagScorer
from rnn_cli.tasks.tag.model import FORMAT, TagConfig, TaggerNet
from rnn_cli.tasks.tag.reader import (ReadReport, Sentence, parse_conll, parse_conllu,
                                      parse_raw, read_tagged)
from rnn_cli.tasks.tag.tagset import span_records

READ_AHEAD = 8  # batches of sentences read, tagged and yielded together
FORMATS = ("raw", "conll", "conllu")


@dataclass
class Tagged:
    """One tagged sentence: its tokens, the predicted tags, the probability of each predicted tag
    (with probs=True), the gold tags of a column file (or None), its first line."""

    tokens: list[str]
    tags: list[str]
    probs: list[float] | None = None
    gold: list[str] | None = None
    line: int = 0

    def spans(self) -> list[dict]:
        """The entity spans of the predicted tags (`tagset.span_records`)."""
        return span_records(self.tokens, self.tags, self.probs)


class Tagger:
    """A loaded tagging model (`Tagger.load`). Not thread-safe: one per thread."""

    def __init__(self, model: TaskModel, parallel: bool = True):
        self.model = model
        self.cfg = TagConfig.from_dict(model.config)
        self.words, self.chars = model.vocabs["word"], model.vocabs["char"]
        self.tags: list[str] = list(model.labels["tag"])
        self.net = TaggerNet(self.cfg, len(self.words), len(self.chars), self.tags,
                             model.params, parallel=parallel)
        self.tagset = self.net.tagset
        self.scheme = self.tagset.scheme
        spec = self.net.spec  # each token string's layer-0 input terms computed once (infer.py)
        self.net.cache = TypeCache(spec.dirs, GATES[spec.cell] * spec.hidden,
                                   model.params.flat.dtype)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, threads: int | None = None,
             parallel: bool = True) -> "Tagger":
        """Read and validate a tagger's model file (None: the stored tagger,
        $RNN_CLI_HOME/tag.npz); a file of another kind is the one-line ModelFileError naming
        the command for it. threads: CPU threads of the compiled kernels (process-wide; None:
        all cores)."""
        from rnn_cli.kernels import _jit

        if threads:
            _jit.set_threads(threads)
        where = resolve_model_path(os.fspath(path) if path is not None else None, None, "tag")
        tagger = cls(load_task(where, FORMAT), parallel)
        tagger.path = where
        return tagger

    def __repr__(self) -> str:
        c = self.cfg
        chars = f" + characters {c.char_hidden}x2" if c.char_hidden else ""
        return (f"rnn_cli.Tagger({getattr(self, 'path', None)!r}: {len(self.tags)} tags "
                f"({self.scheme}), words{chars} -> {'bi' if c.bidirectional else ''}{c.cell} "
                f"{c.layers} x {c.hidden} -> {'crf' if c.crf else 'softmax'})")

    @property
    def column(self) -> int | None:
        """The tag column of the training file (`--column`), read the same way by default."""
        return self.model.train.get("column")

    @property
    def field(self) -> str | None:
        """The CoNLL-U field the model was trained on (`--field`)."""
        return self.model.train.get("field")

    # ------------------------------------------------------------------ tagging
    def _tag_block(self, sents: list[Sentence], probs: bool) -> list[Tagged]:
        paths, chosen = tag_block(self.net, sents, self.words, self.chars, probs)
        tags = self.tags
        return [Tagged(list(s.tokens), [tags[k] for k in paths[i].tolist()],
                       chosen[i].tolist() if chosen is not None else None, s.tags, s.line)
                for i, s in enumerate(sents)]

    def tag_blocks(self, sentences: Iterable[Sentence], probs: bool = False,
                   batch_size: int = 32, idle: Callable[[], bool] | None = None
                   ) -> Iterator[list[Tagged]]:
        """`tag_sentences`, a block (a list of Tagged, in order) at a time: batch_size *
        READ_AHEAD sentences (batch_size 1: one), or fewer when idle() says that no more input
        has arrived after a sentence (`streams.Lines.idle`: a piped sentence is answered
        without waiting for the next)."""
        if batch_size < 1:
            raise UsageError(f"the batch size must be >= 1 (got {batch_size})")
        size = batch_size if batch_size == 1 else batch_size * READ_AHEAD
        sents: list[Sentence] = []
        for s in sentences:
            sents.append(s)
            if len(sents) >= size or (idle is not None and idle()):
                yield self._tag_block(sents, probs)
                sents = []
        if sents:
            yield self._tag_block(sents, probs)

    def tag_sentences(self, sentences: Iterable[Sentence], probs: bool = False,
                      batch_size: int = 32) -> Iterator[Tagged]:
        """One Tagged per sentence, in order (see the module docstring for the read-ahead)."""
        return itertools.chain.from_iterable(self.tag_blocks(sentences, probs, batch_size))

    def tag(self, lines: Iterable[str], fmt: str = "raw", tokenizer: str = "space",
            column: int | None = None, field: str | None = None, probs: bool = False,
            batch_size: int = 32, name: str = "<input>",
            report: ReadReport | None = None) -> Iterator[Tagged]:
        """Tag the sentences of `lines` (raw text, a CoNLL column file or CoNLL-U: `fmt`),
        streamed: each block of sentences is read only when the one before is out."""
        return itertools.chain.from_iterable(self.tag_lines(
            lines, fmt, tokenizer, column, field, probs, batch_size, name, report))

    def tag_lines(self, lines: Iterable[str], fmt: str = "raw", tokenizer: str = "space",
                  column: int | None = None, field: str | None = None, probs: bool = False,
                  batch_size: int = 32, name: str = "<input>",
                  report: ReadReport | None = None, idle: Callable[[], bool] | None = None
                  ) -> Iterator[list[Tagged]]:
        """`tag`, a block (a list of Tagged) at a time (`tag_blocks`, which idle is for)."""
        if fmt not in FORMATS:
            raise UsageError(f"unknown input format {fmt!r} (expected one of "
                             f"{', '.join(FORMATS)})")
        if fmt == "raw":
            sents = parse_raw(lines, tokenizer=tokenizer, report=report)
        elif fmt == "conll":
            sents = parse_conll(lines, column=column, name=name, report=report,
                                require_tags=False)
        else:
            sents = parse_conllu(lines, field=field, name=name, report=report)
        return self.tag_blocks(sents, probs, batch_size, idle)

    def tag_tokens(self, sentences: Sequence[Sequence[str]], probs: bool = False
                   ) -> list[Tagged]:
        """Tag sentences already split into tokens (lists of strings), in order."""
        return list(self.tag_sentences((Sentence(list(t), None, 0) for t in sentences), probs))

    # ------------------------------------------------------------------ testing
    def test(self, source: str | Iterable[str], fmt: str | None = None,
             column: int | None = None, field: str | None = None, encoding: str = "utf-8",
             errors: str = "strict", stdin=None) -> dict:
        """Metrics of a gold file (path or '-'; or an iterable of lines of a column file):
        `metrics.TagScorer`'s summary (sentences, tokens, accuracy, unseen_tags; for a chunk
        scheme entities, per_type, non_chunk_tags, invalid_sentences), loss (mean per scored
        token), unknown_words, and the read report's warnings."""
        strict = column is not None or field is not None  # given here, not the model's
        column = column if column is not None else self.column
        field = field if field is not None else self.field
        if isinstance(source, str):
            sents, report = read_tagged(source, fmt=fmt, column=column, field=field,
                                        encoding=encoding, errors=errors, stdin=stdin,
                                        strict=strict)
        else:
            report = ReadReport("<lines>", fmt or "conll")
            parse = parse_conllu if fmt == "conllu" else parse_conll
            kw = {"field": field} if fmt == "conllu" else {"column": column}
            sents = list(parse(source, name=report.name, report=report, **kw))
        data = tagdata.encode(sents, self.words, self.chars, self.tagset,
                              tagdata.loss_tags(sents, self.tagset))
        paths, _, (total, n) = self.net.run_all(data, loss=True)
        scorer = TagScorer(self.scheme, known=self.tags)
        for s, path in zip(sents, paths):
            scorer.add(s.tags, [self.tags[k] for k in path.tolist()])
        out = scorer.summary()
        out.update(loss=total / n if n else float("nan"), unknown_words=data.unknown_words,
                   warnings=report.messages(), name=report.name)
        return out

