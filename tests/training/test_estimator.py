"""CNNClassifier under scikit-learn's tools: clone, cross_val_score, searches, pipelines, pickle."""

import collections
import pickle

import numpy as np
import pytest
from conftest import make_images
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from cnn_cifar.config import shapes
from cnn_cifar.config.schema import Config, ModelSpec, Train
from cnn_cifar.training.estimator import CNNClassifier, _validation_split

LAYERS = [
    {"name": "conv1", "type": "conv", "filters": 4, "kernel": 3, "activation": "relu"},
    {"name": "pool1", "type": "pool", "size": 2},
    {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"},
]
TRAIN = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 3, "batch_size": 16}


def make_estimator(**kw):
    return CNNClassifier(model={"layers": LAYERS}, train=TRAIN, input_shape=(8, 8, 3), random_state=0, **kw)


@pytest.fixture(scope="module")
def data():
    x, y = make_images(120)
    return x.reshape(len(x), -1), np.array(["cat", "dog", "frog"])[y]


def test_init_stores_params_unchanged():
    model = {"layers": LAYERS}
    est = CNNClassifier(model=model, train=TRAIN)
    assert est.model is model and est.train is TRAIN
    assert est.get_params(deep=False) == {
        "model": model,
        "train": TRAIN,
        "input_shape": None,
        "random_state": None,
        "verbose": 0,
    }


def test_routed_params():
    est = make_estimator()
    params = est.get_params()
    assert params["conv1__filters"] == 4 and params["hidden__units"] == 8
    assert params["train__optimizer__learning_rate"] == 0.01
    est.set_params(conv1__kernel=5, train__batch_size=8, train__optimizer__learning_rate=0.1)
    assert est.model["layers"][0]["kernel"] == 5
    assert est.train["batch_size"] == 8 and est.train["optimizer"]["learning_rate"] == 0.1
    assert LAYERS[0]["kernel"] == 3 and TRAIN["batch_size"] == 16  # inputs not mutated
    for bad in ("conv1__kernal", "conv9__kernel", "train__epoch"):
        with pytest.raises(ValueError, match="Invalid parameter"):
            make_estimator().set_params(**{bad: 1})


def test_fit_predict_string_labels_and_fitted_attributes(data):
    X, y = data
    est = make_estimator().fit(X, y)
    assert list(est.classes_) == ["cat", "dog", "frog"]
    assert est.n_features_in_ == 192 and est.input_shape_ == (8, 8, 3)
    assert set(est.predict(X)) <= set(est.classes_)
    proba = est.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert est.score(X, y) > 0.6  # the bands are easy to learn
    assert est.n_epochs_ == len(est.history_["loss"]) == 3
    assert "val_loss" in est.history_


def test_accepts_4d_images(data):
    X, y = data
    est = make_estimator().set_params(input_shape=None).fit(X.reshape(-1, 8, 8, 3), y)
    assert est.predict(X.reshape(-1, 8, 8, 3)).shape == (120,)


def test_flat_rows_need_input_shape(data):
    X, y = data
    with pytest.raises(ValueError, match="input_shape"):
        make_estimator().set_params(input_shape=None).fit(X, y)


def test_reproducible_with_random_state(data):
    X, y = data
    a = clone(make_estimator()).fit(X, y).predict_proba(X)
    b = clone(make_estimator()).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_cross_val_score_tutorial_protocol(data):
    X, y = data
    cv = StratifiedShuffleSplit(n_splits=3, test_size=0.2, random_state=15)
    scores = cross_val_score(make_estimator(), X, y, cv=cv, scoring="accuracy")
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_grid_search_over_layer_and_train_params(data):
    X, y = data
    grid = GridSearchCV(
        make_estimator(), {"conv1__filters": [2, 4], "train__batch_size": [32]}, cv=2, error_score="raise"
    ).fit(X, y)
    assert grid.best_params_["train__batch_size"] == 32
    assert grid.best_estimator_.model["layers"][0]["filters"] in (2, 4)


def test_in_a_pipeline(data):
    X, y = data
    pipe = Pipeline(
        [
            ("scale", FunctionTransformer(lambda a: a.astype("float32") / 255.0)),
            ("cnn", make_estimator().set_params(model={"layers": LAYERS, "rescale": 1.0})),
        ]
    )
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.6


def test_pickle_round_trip_identical_predictions(data):
    X, y = data
    est = make_estimator().fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    assert again.history_ == est.history_


def test_refit_releases_previous_model(data):
    X, y = data
    est = make_estimator()
    est.fit(X, y)
    first = est.model_
    est.fit(X, y)
    assert est.model_ is not first


def test_bad_values_reported_at_fit(data):
    X, y = data
    est = make_estimator().set_params(conv1__filters=0)
    with pytest.raises(ValueError, match="filters"):
        est.fit(X, y)
    est = make_estimator().set_params(pool1__size=16)  # larger than the 8x8 map
    with pytest.raises(ValueError, match="pool size 16"):
        est.fit(X, y)


def test_fit_checks_its_params_once_and_builds_the_stack_it_checked(data, monkeypatch):
    """One fit validates model and train once each (what set_params changed included) and
    walks the layer stack once: the model is built from the walk that checked it."""
    calls: collections.Counter = collections.Counter()

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(shapes, "infer", counting("infer", shapes.infer))
    for schema in (Config, ModelSpec, Train):
        monkeypatch.setattr(schema, "model_validate", counting(schema.__name__, schema.model_validate))
    X, y = data
    est = make_estimator().set_params(train__epochs=1, conv1__kernel=5)
    est.fit(X, y)
    assert calls == {"infer": 1, "ModelSpec": 1, "Train": 1}
    assert est.model_.get_layer("conv1").kernel_size == (5, 5)


# ---------------------------------------------------------------------- bad input, one clear line


def _is_fitted(est) -> bool:
    try:
        check_is_fitted(est)
    except NotFittedError:
        return False
    return True


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return make_estimator().set_params(train__epochs=1).fit(X, y)


def test_predict_proba_score_before_fit_raise_not_fitted(data):
    X, y = data
    est = make_estimator()
    for call in (est.predict, est.predict_proba, lambda X: est.score(X, y)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call(X)
    assert not _is_fitted(est)


def test_release_leaves_the_estimator_unfitted(data):
    X, y = data
    est = make_estimator().set_params(train__epochs=1).fit(X, y)
    assert _is_fitted(est)
    est.release()
    assert not _is_fitted(est)
    with pytest.raises(NotFittedError):
        est.predict(X)


@pytest.mark.parametrize("key, value", [("model", 3), ("model", [LAYERS]), ("train", "fast")])
def test_set_params_refuses_a_block_that_is_not_a_mapping(data, key, value):
    X, y = data
    words = rf"^{key} must be a mapping like \{{.*\}}, got {type(value).__name__}$"
    est = make_estimator()
    with pytest.raises(ValueError, match=words):
        est.set_params(**{key: value})
    assert est.model == {"layers": LAYERS} and est.train == TRAIN  # nothing changed
    # the constructor stores it unchanged; fit and a routed set_params say the same words
    given = make_estimator().get_params(deep=False) | {key: value}
    with pytest.raises(ValueError, match=words):
        CNNClassifier(**given).fit(X, y)
    with pytest.raises(ValueError, match=words):
        CNNClassifier(**given).set_params(train__epochs=1)


def test_set_params_changes_nothing_when_it_raises():
    est = make_estimator()
    with pytest.raises(ValueError, match="Invalid parameter 'conv1__kernal'"):
        est.set_params(verbose=2, train__batch_size=8, conv1__kernal=5)
    assert est.verbose == 0 and est.train["batch_size"] == 16


def test_set_params_stores_values_and_fit_reports_them(data):
    X, y = data
    est = make_estimator().set_params(train__epochs=0, input_shape=(8, 8), random_state="x")
    assert est.train["epochs"] == 0  # stored, not validated
    with pytest.raises(ValueError, match=r"^train.epochs: Input should be greater than 0$"):
        est.fit(X, y)
    est.set_params(train__epochs=1)
    with pytest.raises(ValueError, match=r"^random_state must be an int or None, got 'x'$"):
        est.fit(X, y)
    est.set_params(random_state=0)
    with pytest.raises(ValueError, match=r"^input_shape must be \(H, W, C\).*got \(8, 8\)$"):
        est.fit(X, y)


@pytest.mark.parametrize(
    "kind, make_y, words",
    [
        ("continuous", lambda rng: rng.normal(size=120), r"continuous \(120 distinct values"),
        ("multilabel", lambda rng: rng.integers(0, 2, (120, 3)), "multilabel-indicator"),
        ("multioutput", lambda rng: rng.integers(0, 3, (120, 2)), "multiclass-multioutput"),
    ],
)
def test_y_must_be_class_labels(data, kind, make_y, words):
    X, _ = data
    y = make_y(np.random.default_rng(0))
    with pytest.raises(ValueError, match=rf"^Unknown label type: y is {words}"):
        make_estimator().fit(X, y)


def test_y_checks_one_class_and_length(data):
    X, y = data
    with pytest.raises(ValueError, match=r"^y has one class \('cat'\); a classifier needs two"):
        make_estimator().fit(X[y == "cat"], y[y == "cat"])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make_estimator().fit(X, y[:-1])
    with pytest.raises(ValueError, match="requires y to be passed"):
        make_estimator().fit(X, None)


@pytest.mark.parametrize(
    "bad, words", [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")]
)
def test_nan_and_inf_refused_at_fit_and_predict(data, fitted, bad, words):
    X, y = data
    X_bad = X.astype("float32")
    X_bad[3, 5] = bad
    with pytest.raises(ValueError, match=words):
        make_estimator().fit(X_bad, y)
    for call in (fitted.predict, fitted.predict_proba):
        with pytest.raises(ValueError, match=words):
            call(X_bad)


def test_predict_checks_features_against_fit(data, fitted):
    X, _ = data
    with pytest.raises(ValueError, match="X has 191 features, but CNNClassifier is expecting 192"):
        fitted.predict(X[:, :-1])
    with pytest.raises(
        ValueError,
        match=r"images of shape \(8, 3, 8\), but CNNClassifier was "
        r"fitted on \(8, 8, 3\)",
    ):
        fitted.predict(X.reshape(-1, 8, 3, 8))
    assert fitted.predict(X.reshape(-1, 8, 8, 3)).shape == (120,)  # flat or 4-D


def test_flat_rows_are_vectors_for_a_model_without_spatial_layers(data):
    X, y = data
    est = CNNClassifier(model={"layers": [LAYERS[2]]}, train=TRAIN, random_state=0).fit(X, y)
    assert est.input_shape_ == (192,) and est.n_features_in_ == 192
    assert est.score(X, y) > 0.6
    with pytest.raises(
        ValueError,
        match=r"set input_shape=\(H, W, C\): layer conv1 \(conv\) "
        "needs images",
    ):
        make_estimator().set_params(input_shape=None).fit(X, y)
    with pytest.raises(ValueError, match="augment needs images"):
        CNNClassifier(model={"layers": [LAYERS[2]], "augment": {"flip": True}}).fit(X, y)


def test_validation_split_keeps_rows_to_fit_on():
    x, y = np.arange(2), np.arange(2)
    (x_fit, _), val = _validation_split(x, y, 0.2, 0)  # 0.4 rows round to none
    assert len(x_fit) == 2 and val is None
    (x_fit, _), (x_val, _) = _validation_split(x, y, 0.9, 0)  # 1.8 rows: one is left to fit
    assert len(x_fit) == 1 and len(x_val) == 1
