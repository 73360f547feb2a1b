"""Classification metrics: accuracy, macro-F1, per-label precision / recall / F1 / support, the
confusion matrix, and the gold labels the model never saw. Plain NumPy; no printing.

Definitions are scikit-learn's (`accuracy_score`, `precision_recall_fscore_support`,
`f1_score(average="macro")` with zero_division=0): precision of a label never predicted is 0,
recall of a label never in the gold set is 0, F1 = 2PR / (P + R) (0 when P + R = 0), and the
macro average is over the labels that occur in the gold labels or in the predictions. A gold
label the model does not know cannot be predicted: its examples count as errors in the accuracy
and as a label of recall 0 in the macro average (as scikit-learn counts a label that is in
y_true only), and they are reported in `unseen` ({label: count}).
"""

from __future__ import annotations

import numpy as np


def classification_metrics(y: np.ndarray, pred: np.ndarray, labels: list[str],
                           gold: list[str] | None = None) -> dict:
    """Metrics of predictions `pred` (N,) (indices into `labels`) against gold indices `y` (N,),
    -1 where the gold label is not one of `labels` (its name then in `gold`, the gold label
    strings). Returns {"n", "accuracy", "macro_f1", "per_label": {label: {"precision",
    "recall", "f1", "support"}}, "confusion": (K, K) int64 list of lists (rows gold, columns
    predicted, over the known gold labels), "labels", "unseen": {label: count}}."""
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    K, N = len(labels), int(y.shape[0])
    known = y >= 0
    confusion = np.zeros((K, K), np.int64)
    np.add.at(confusion, (y[known], pred[known]), 1)
    unseen: dict[str, int] = {}
    if gold is not None:
        for i in np.flatnonzero(~known):
            unseen[gold[i]] = unseen.get(gold[i], 0) + 1
    elif (~known).any():
        unseen["?"] = int((~known).sum())
    tp = np.diag(confusion).astype(np.float64)
    predicted = np.bincount(pred, minlength=K).astype(np.float64)  # unseen-gold lines too
    support = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(K), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(K), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(K), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    f1s = list(f1[present]) + [0.0] * len(unseen)  # an unseen gold label: recall 0, F1 0
    per_label = {lab: {"precision": float(precision[k]), "recall": float(recall[k]),
                       "f1": float(f1[k]), "support": int(support[k])}
                 for k, lab in enumerate(labels)}
    for lab, count in unseen.items():
        per_label[lab] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": count}
    return {"n": N, "accuracy": float(tp.sum() / N) if N else float("nan"),
            "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
            "per_label": per_label, "confusion": confusion.tolist(), "labels": list(labels),
            "unseen": unseen}
