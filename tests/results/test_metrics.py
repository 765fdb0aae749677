import json

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix, f1_score, precision_score

from cnn_cifar.results.metrics import (
    classification_metrics,
    classification_report_text,
    confusion,
    confusion_sentences,
    most_confident_errors,
    top_confusions,
)

NAMES = ["cat", "dog", "ship"]


@pytest.fixture
def known():
    # cat: 8 right, 2 -> dog; dog: 7 right, 3 -> cat; ship: 10 right.
    y_true = np.array([0] * 10 + [1] * 10 + [2] * 10)
    y_pred = np.array([0] * 8 + [1] * 2 + [1] * 7 + [0] * 3 + [2] * 10)
    return y_true, y_pred


def test_perfect_classifier():
    y = np.array([0, 1, 2, 2, 1, 0])
    m = classification_metrics(y, y, NAMES)
    assert m["accuracy"] == 1.0
    for key in (
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "weighted_precision",
        "weighted_recall",
        "weighted_f1",
    ):
        assert m[key] == 1.0
    assert m["per_class"]["ship"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert confusion(y, y, 3).tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert top_confusions(confusion(y, y, 3), NAMES) == []
    assert confusion_sentences(confusion(y, y, 3), NAMES) == []


def test_known_confusion_by_hand(known):
    y_true, y_pred = known
    m = classification_metrics(y_true, y_pred, NAMES)
    assert m["accuracy"] == pytest.approx(25 / 30)
    cat, dog = m["per_class"]["cat"], m["per_class"]["dog"]
    assert cat["recall"] == pytest.approx(0.8) and cat["precision"] == pytest.approx(8 / 11)
    assert dog["recall"] == pytest.approx(0.7) and dog["precision"] == pytest.approx(7 / 9)
    assert cat["support"] == dog["support"] == 10
    assert confusion(y_true, y_pred, 3).tolist() == [[8, 2, 0], [3, 7, 0], [0, 0, 10]]


def test_matches_sklearn_and_is_json_serialisable():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 4, 300))
    names = ["a", "b", "c", "d"]
    m = classification_metrics(y_true, y_pred, names)
    for avg in ("macro", "weighted"):
        assert m[f"{avg}_precision"] == pytest.approx(precision_score(y_true, y_pred, average=avg))
        assert m[f"{avg}_f1"] == pytest.approx(f1_score(y_true, y_pred, average=avg))
    per_f1 = f1_score(y_true, y_pred, average=None)
    assert [m["per_class"][n]["f1"] for n in names] == pytest.approx(per_f1)
    json.dumps(m)  # plain Python types only
    assert all(type(v) is float for k, v in m.items() if k not in ("per_class", "n_samples"))
    assert type(m["per_class"]["a"]["support"]) is int
    assert np.array_equal(confusion(y_true, y_pred, 4), confusion_matrix(y_true, y_pred))


def test_absent_class_scores_zero_without_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics([0, 0, 1], [0, 0, 1], NAMES)
    assert m["per_class"]["ship"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_report_text(known):
    y_true, y_pred = known
    text = classification_report_text(y_true, y_pred, NAMES)
    assert text == classification_report(y_true, y_pred, target_names=NAMES, digits=3)
    assert "cat" in text and "0.800" in text


def test_top_confusions_order_and_rate():
    cm = np.array([[50, 30, 5, 0], [10, 60, 0, 0], [5, 0, 80, 15], [0, 0, 30, 70]])
    names = ["w", "x", "y", "z"]
    top = top_confusions(cm, names, k=10)
    assert [(c["true"], c["predicted"], c["count"]) for c in top] == [
        ("w", "x", 30),
        ("z", "y", 30),
        ("y", "z", 15),
        ("x", "w", 10),
        ("w", "y", 5),
        ("y", "w", 5),
    ]
    assert top[0]["rate"] == pytest.approx(30 / 85)
    assert top[1]["rate"] == pytest.approx(30 / 100)
    assert len(top_confusions(cm, names, k=2)) == 2
    json.dumps(top)


def test_confusion_sentences():
    names = ["cat", "dog", "truck", "automobile"]
    cm = np.array([[700, 187, 13, 100], [120, 850, 10, 20], [0, 0, 890, 110], [0, 0, 5, 995]])
    lines = confusion_sentences(cm, names, k=4)
    assert lines[0] == "cat taken for dog: 187 of 1000 test images (18.7%)"
    assert "dog taken for cat: 120 of 1000 test images (12.0%)" in lines
    both = [s for s in lines if "both ways" in s]
    assert len(both) == 1
    assert both[0].startswith("cat and dog are mixed up both ways")
    assert "187" in both[0] and "120" in both[0] and "307" in both[0]
    # truck -> automobile is in the top list but the reverse (5) is not: no 'both ways' line.
    assert not any("truck and automobile" in s or "automobile and truck" in s for s in lines)
    assert confusion_sentences(cm, names, k=1) == [lines[0]]  # reverse direction not in top 1


def test_most_confident_errors():
    proba = np.array(
        [
            [0.9, 0.1, 0.0],  # true 0: right
            [0.2, 0.7, 0.1],  # true 0: wrong, 0.7
            [0.05, 0.05, 0.9],  # true 1: wrong, 0.9
            [0.4, 0.35, 0.25],  # true 2: wrong, 0.4
            [0.0, 1.0, 0.0],  # true 1: right
            [0.1, 0.3, 0.6],  # true 0: wrong, 0.6
        ]
    )
    y_true = np.array([0, 0, 1, 2, 1, 0])
    assert most_confident_errors(proba, y_true).tolist() == [2, 1, 5, 3]
    assert most_confident_errors(proba, y_true, k=2).tolist() == [2, 1]
    assert most_confident_errors(proba[[0, 4]], y_true[[0, 4]]).size == 0
