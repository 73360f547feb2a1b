"""Word classes of the class-factored softmax (`--softmax classes`), and which softmax to use.

Classes by unigram frequency as in RNNLM (Mikolov et al. 2011, `rnnlm.c`, the default
"sqrt" binning): the words in order of decreasing training count, each class closing when the
running sum of sqrt(count) passes the next 1/C of the total. Frequent words get small classes
(often one word each), rare words share large ones, so a step's work, H (C + |class of y|), stays
near H (C + V/C) on average. The map is part of the model (`softmax.word_class` in the file).

The class kernels run on the thread pool from PARALLEL_FROM_C classes (serial below: a step's
class work is then a few ms and waking the pool cost more on a busy machine).
"""

from __future__ import annotations

import math
import os

import numpy as np

# From this vocabulary size `--softmax` defaults to classes at word level (README "Class softmax":
# on PTB, H 256, the class softmax trained 4.1x faster at V 10k with the same perplexity after
# one epoch, 1.5x faster at V 1k; at char level the output layer is a small part of a step and the
# full softmax is the seed's exact model).
CLASSES_FROM_V = 1000
# from this many classes the class kernels run in parallel (at V 100k, C 1,000: 50 ms steps
# against 60 serial, three A/B rounds; PTB's C 100 measured faster serial on a busy machine)
PARALLEL_FROM_C = 300


def parallel_class_kernels(classes: int, threads: int) -> bool:
    """Whether a network of C `classes` on `threads` threads runs the class kernels' prange
    builds: from PARALLEL_FROM_C classes on 2+ threads; RNN_CLI_CLASS_KERNELS=parallel or serial
    overrides the class count."""
    how = os.environ.get("RNN_CLI_CLASS_KERNELS") or ("parallel" if classes >= PARALLEL_FROM_C
                                                       else "serial")
    return threads > 1 and how == "parallel"


def default_softmax(level: str, vocab_size: int) -> str:
    return "classes" if level == "word" and vocab_size >= CLASSES_FROM_V else "full"


def default_classes(vocab_size: int) -> int:
    """C = sqrt(V) rounded (it minimises C + V/C), and from V 10k V/100 (classes of 100 words on
    average): a window's sparse update (`sparse.py`) touches every word of its targets' classes,
    and at V 100k C = 1,000 trained ~1.2x as fast as C = 316 (README "Sparse updates")."""
    return max(2, int(round(math.sqrt(vocab_size))), int(round(vocab_size / 100)))


def choose_softmax(level: str, softmax: str | None, classes: int | None, train_ids, V: int):
    """({softmax, classes} config fields, word_class or None) of a new model: --softmax, else
    classes when --classes is given, else by V; the classes from the training counts."""
    softmax = softmax or ("classes" if classes else default_softmax(level, V))
    if softmax != "classes":
        return {"softmax": softmax, "classes": classes or 0}, None
    counts = np.zeros(V, np.int64)
    for a in range(0, train_ids.shape[0], 1 << 24):  # in parts: the ids may be memory-mapped
        counts += np.bincount(train_ids[a:a + (1 << 24)], minlength=V)
    word_class = assign_classes(counts, classes or default_classes(V))
    return {"softmax": softmax, "classes": int(word_class.max()) + 1}, word_class


def assign_classes(counts: np.ndarray, classes: int) -> np.ndarray:
    """word_class (V,) int32 from training counts (V,): classes 0..C'-1, C' <= `classes`, every
    one non-empty, class 0 holding the most frequent words. Ties in count go by id."""
    V = counts.shape[0]
    C = max(1, min(int(classes), V))
    order = np.argsort(-np.asarray(counts, np.float64), kind="stable")
    root = np.sqrt(np.maximum(np.asarray(counts, np.float64)[order], 0.0))
    total = root.sum()
    word_class = np.zeros(V, np.int32)
    if total <= 0:  # no counts at all: equal-sized classes in id order
        word_class[order] = (np.arange(V) * C // V).astype(np.int32)
        return word_class
    cum, c = 0.0, 0
    for i in range(V):
        word_class[order[i]] = c
        cum += root[i] / total
        # close class c once its share is reached, leaving a word for each class still to come
        if c < C - 1 and cum > (c + 1) / C and V - 1 - i >= C - 1 - c:
            c += 1
    return word_class


def class_index(word_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members (V,) int32: word ids grouped by class, offsets (C+1,) int32)."""
    C = int(word_class.max()) + 1
    members = np.argsort(word_class, kind="stable").astype(np.int32)
    offsets = np.zeros(C + 1, np.int32)
    offsets[1:] = np.cumsum(np.bincount(word_class, minlength=C))
    return members, offsets


def check_word_class(word_class, vocab_size: int, classes: int) -> str | None:
    """Why an (untrusted) class map is invalid, or None: (V,) int32, values in [0, C), each class
    used at least once."""
    if word_class.dtype != np.int32 or word_class.shape != (vocab_size,):
        return f"is {word_class.dtype}{list(word_class.shape)}, expected int32[{vocab_size}]"
    if vocab_size and (word_class.min() < 0 or word_class.max() >= classes):
        return f"holds a class outside [0, {classes})"
    if (np.bincount(word_class, minlength=classes) == 0).any():
        return "leaves a class without words"
    return None
