"""Classification metrics and plain-English summaries of a confusion matrix.

Pure numpy / scikit-learn; every returned number is a plain Python int or float
so results can go straight into JSON reports.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMetrics(TypedDict):
    """Accuracy, macro and weighted precision/recall/F1, and each class's scores by name."""

    accuracy: float
    n_samples: int
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    per_class: dict[str, ClassScores]


def classification_metrics(y_true, y_pred, class_names) -> ClassificationMetrics:
    """Accuracy, macro/weighted precision/recall/F1 and per-class scores.
    Classes absent from both ``y_true`` and ``y_pred`` score 0 (``zero_division=0``).
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support  # seconds to import

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(class_names)))

    def averaged(average: str) -> tuple[float, float, float]:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        return float(p), float(r), float(f)

    (mp, mr, mf), (wp, wr, wf) = averaged("macro"), averaged("weighted")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n_samples": int(y_true.size),
        "macro_precision": mp,
        "macro_recall": mr,
        "macro_f1": mf,
        "weighted_precision": wp,
        "weighted_recall": wr,
        "weighted_f1": wf,
        "per_class": {
            str(name): {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, name in enumerate(class_names)
        },
    }


def classification_report_text(y_true, y_pred, class_names) -> str:
    """scikit-learn's text report with class names, 3 digits."""
    from sklearn.metrics import classification_report

    return str(
        classification_report(
            y_true,
            y_pred,
            labels=list(range(len(class_names))),
            target_names=[str(c) for c in class_names],
            digits=3,
            zero_division=0,
        )
    )


def confusion(y_true, y_pred, n_classes) -> np.ndarray:
    """Count matrix: rows = true class, columns = predicted class."""
    from sklearn.metrics import confusion_matrix

    return np.asarray(confusion_matrix(y_true, y_pred, labels=list(range(n_classes))))


def top_confusions(cm, class_names, k=5) -> list[dict]:
    """The k largest non-zero off-diagonal cells, largest first.

    Each item: ``{"true", "predicted", "count", "rate"}`` where ``rate`` is the
    count divided by the number of images of the true class. Ties are broken by
    (true, predicted) index so the order is deterministic.
    """
    cm = np.asarray(cm)
    row_totals = cm.sum(axis=1)
    cells = [
        (int(cm[i, j]), i, j)
        for i in range(cm.shape[0])
        for j in range(cm.shape[1])
        if i != j and cm[i, j] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [
        {
            "true": str(class_names[i]),
            "predicted": str(class_names[j]),
            "count": count,
            "rate": float(count / row_totals[i]),
        }
        for count, i, j in cells[:k]
    ]


def confusion_sentences(cm, class_names, k=4) -> list[str]:
    """Plain-English lines about the k most frequent confusions.

    One line per confusion ('cat taken for dog: 187 of 1000 test images (18.7%)'),
    followed by one line per pair that appears in both directions among those k.
    Empty list when there are no misclassifications.
    """
    top = top_confusions(cm, class_names, k=k)
    totals = dict(zip(map(str, class_names), np.asarray(cm).sum(axis=1).tolist(), strict=True))
    lines = [
        f"{c['true']} taken for {c['predicted']}: {c['count']} of {totals[c['true']]} "
        f"test images ({c['rate']:.1%})"
        for c in top
    ]
    by_pair = {(c["true"], c["predicted"]): c for c in top}
    for c in top:
        back = by_pair.get((c["predicted"], c["true"]))
        # Report each pair once, from the direction listed first.
        if back is None or top.index(back) < top.index(c):
            continue
        a, b = c["true"], c["predicted"]
        lines.append(
            f"{a} and {b} are mixed up both ways: {c['count']} {a} images predicted as {b}, "
            f"{back['count']} {b} images predicted as {a} ({c['count'] + back['count']} in total)"
        )
    return lines


def most_confident_errors(proba, y_true, k=25) -> np.ndarray:
    """Indices of misclassified rows, most confident (wrong) prediction first."""
    proba, y_true = np.asarray(proba), np.asarray(y_true)
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    confidence = proba[wrong, pred[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:k]
