"""CNNClassifier under scikit-learn's tools: clone, cross_val_score, searches, pipelines, pickle."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cnn_cifar.estimator import CNNClassifier
from conftest import make_images

LAYERS = [{"name": "conv1", "type": "conv", "filters": 4, "kernel": 3, "activation": "relu"},
          {"name": "pool1", "type": "pool", "size": 2},
          {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"}]
TRAIN = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 3, "batch_size": 16}


def make_estimator(**kw):
    return CNNClassifier(model={"layers": LAYERS}, train=TRAIN, input_shape=(8, 8, 3),
                         random_state=0, **kw)


@pytest.fixture(scope="module")
def data():
    x, y = make_images(120)
    return x.reshape(len(x), -1), np.array(["cat", "dog", "frog"])[y]


def test_init_stores_params_unchanged():
    model = {"layers": LAYERS}
    est = CNNClassifier(model=model, train=TRAIN)
    assert est.model is model and est.train is TRAIN
    assert est.get_params(deep=False) == {"model": model, "train": TRAIN, "input_shape": None,
                                          "random_state": None, "verbose": 0}


def test_routed_params():
    est = make_estimator()
    params = est.get_params()
    assert params["conv1__filters"] == 4 and params["hidden__units"] == 8
    assert params["train__optimizer__learning_rate"] == 0.01
    est.set_params(conv1__kernel=5, train__batch_size=8, train__optimizer__learning_rate=0.1)
    assert est.model["layers"][0]["kernel"] == 5
    assert est.train["batch_size"] == 8 and est.train["optimizer"]["learning_rate"] == 0.1
    assert LAYERS[0]["kernel"] == 3 and TRAIN["batch_size"] == 16     # inputs not mutated
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
    assert est.score(X, y) > 0.6                    # the bands are easy to learn
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
    grid = GridSearchCV(make_estimator(), {"conv1__filters": [2, 4], "train__batch_size": [32]},
                        cv=2, error_score="raise").fit(X, y)
    assert grid.best_params_["train__batch_size"] == 32
    assert grid.best_estimator_.model["layers"][0]["filters"] in (2, 4)


def test_in_a_pipeline(data):
    X, y = data
    pipe = Pipeline([("scale", FunctionTransformer(lambda a: a.astype("float32") / 255.0)),
                     ("cnn", make_estimator().set_params(model={"layers": LAYERS, "rescale": 1.0}))])
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
    est = make_estimator().set_params(pool1__size=16)       # larger than the 8x8 map
    with pytest.raises(ValueError, match="pool size 16"):
        est.fit(X, y)
