"""CNNClassifier: a scikit-learn classifier that builds its Keras model from a layer spec.

Every hyperparameter is a scikit-learn parameter: `conv2__kernel` (a layer's attribute),
`train__batch_size`, `train__optimizer__learning_rate`, `model__rescale`, so
`set_params`, `GridSearchCV` and `RandomizedSearchCV` can vary any of them.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time

import numpy as np
from pydantic import ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from . import runtime, shapes
from .config import ConfigError, get_param, param_names, set_param
from .schema import Config, ModelSpec, Train


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Parameters
    ----------
    model : dict
        ``{"layers": [...], "rescale": 1/255, "augment": None}`` as in a config's model block.
    train : dict
        A config's train block (optimizer, epochs, batch_size, validation_split,
        early_stopping); missing keys take the schema's defaults.
    input_shape : tuple (H, W, C) or None
        Needed only when X comes as flat rows (n, H*W*C); 4-D X gives its own shape.
    random_state : int or None
        Seeds Python, NumPy and the backend before each fit (reproducible on the CPU)
        and the shuffle that picks the validation rows.
    verbose : int
        Keras' fit verbosity.
    """

    def __init__(self, model=None, train=None, input_shape=None, random_state=None, verbose=0):
        self.model = model
        self.train = train
        self.input_shape = input_shape
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters
    # Routed names (`conv2__kernel`, `train__batch_size`, ...) are a config's parameter
    # names: config.py lists, reads and sets them; this class only maps its attributes to a
    # raw config fragment and back. `random_state` is the config's `train.seed`.

    def _raw(self) -> dict:
        train = copy.deepcopy(self.train or {})
        train["seed"] = self.random_state
        return {"model": copy.deepcopy(self.model or {}), "train": train}

    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if deep:
            raw = self._raw()
            params.update({name: get_param(raw, name) for name in param_names(raw)
                           if name not in params})
        return params

    def set_params(self, **params):
        own = self._get_param_names()
        super().set_params(**{k: v for k, v in params.items() if k in own})
        routed = {k: v for k, v in params.items() if k not in own}
        if not routed:
            return self
        raw = self._raw()
        for name, value in routed.items():
            try:
                set_param(raw, name, value, params_only=True)
            except ConfigError as e:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}: "
                                 f"{e.message}") from None
        self.random_state = raw["train"].pop("seed")
        self.model, self.train = raw["model"], raw["train"]
        return self

    def _specs(self) -> tuple[ModelSpec, Train]:
        if "seed" in (self.train or {}):
            raise ValueError("train['seed'] is not read by the estimator: its seed is random_state")
        try:
            spec = ModelSpec.model_validate(self.model or {})
            train = Train.model_validate(self.train or {})
        except ValidationError as e:
            err = e.errors()[0]
            raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return spec, train

    # ------------------------------------------------------------------ data

    def _images(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 4:
            return X
        if X.ndim == 3:                                   # (n, H, W) grayscale
            return X[..., None]
        if X.ndim != 2:
            raise ValueError(f"X must be (n, H, W, C) images or (n, H*W*C) rows, got {X.shape}")
        shape = self.input_shape or getattr(self, "input_shape_", None)
        if shape is None:
            raise ValueError("X is flat (n, H*W*C): set input_shape=(H, W, C)")
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, input_shape {tuple(shape)} needs {int(np.prod(shape))}")
        return X.reshape((X.shape[0], *shape))

    # ------------------------------------------------------------------ fit / predict

    def fit(self, X, y, callbacks=None):
        """Build a fresh model and train it. `callbacks`: extra Keras callbacks."""
        import keras
        spec, train = self._specs()
        X = self._images(X)
        self.classes_, y_enc = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y has a single class; a classifier needs at least two")
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        self.input_shape_ = tuple(int(d) for d in X.shape[1:])
        shapes.infer(spec.layers, self.input_shape_, len(self.classes_))   # ShapeError early
        runtime.release(self.__dict__.pop("model_", None))
        if self.random_state is not None:
            keras.utils.set_random_seed(self.random_state)    # after clear_session, which resets it
        (x_fit, y_fit), val = _validation_split(X, y_enc, train.validation_split, self.random_state)
        steps = -(-len(x_fit) // train.batch_size)
        model = _build(spec, train, self.input_shape_, len(self.classes_), self.random_state, steps)
        runtime.built()
        start = time.perf_counter()
        # The validation pass is inference only: a larger batch is faster and gives the same
        # figures (up to float rounding).
        history = model.fit(x_fit, y_fit, batch_size=train.batch_size, epochs=train.epochs,
                            validation_data=val, validation_batch_size=max(train.batch_size, 256),
                            shuffle=True, verbose=self.verbose,
                            callbacks=_callbacks(train) + list(callbacks or []))
        self.fit_time_ = time.perf_counter() - start
        runtime.free_traced_graphs(model, ("train_function", "test_function"))
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.n_epochs_ = len(history.epoch)
        self.model_ = model
        return self

    def release(self):
        """Drop the fitted model and free what the framework holds for it (scoring first:
        the estimator is unfitted afterwards). cv, search and evaluate call it after each
        fit so memory stays flat over many fits."""
        runtime.release(self.__dict__.pop("model_", None))
        return self

    def predict_proba(self, X, batch_size=512):
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(self._images(X), batch_size=batch_size, verbose=0))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True      # multi-threaded float sums differ in the last bits
        return tags

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["_keras_bytes"] = model_to_bytes(model)
        return state

    def __setstate__(self, state):
        data = state.pop("_keras_bytes", None)
        self.__dict__.update(state)
        if data is not None:
            self.model_ = model_from_bytes(data)


def model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes):
    import keras
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.models.load_model(path, safe_mode=True)


def from_config(cfg: Config, input_shape=None, verbose=0) -> CNNClassifier:
    """The estimator a config describes; `train.seed` becomes `random_state`."""
    model = cfg.model.model_dump(mode="json")
    train = cfg.train.model_dump(mode="json")
    seed = train.pop("seed")
    return CNNClassifier(model=model, train=train, input_shape=input_shape,
                         random_state=seed, verbose=verbose)


# ---------------------------------------------------------------------- helpers

def _validation_split(X, y, fraction: float, seed):
    """Seeded shuffle, then the last `fraction` as validation data. (Keras' own
    validation_split takes the tail unshuffled, which on class-sorted data is one class.)"""
    if fraction <= 0:
        return (X, y), None
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(len(X) * fraction))
    fit_idx, val_idx = np.sort(order[:-n_val]), np.sort(order[-n_val:])
    return (X[fit_idx], y[fit_idx]), (X[val_idx], y[val_idx])


def _build(spec, train, input_shape, n_classes, seed, steps_per_epoch):
    import keras
    from .model import build_model, make_optimizer
    model = build_model(spec, input_shape, n_classes, seed,
                        precision=runtime.resolve_precision(train.precision))
    optimizer = make_optimizer(train.optimizer, steps_per_epoch * train.epochs, steps_per_epoch)
    # Keras' torch backend runs one step per call, whatever the setting
    spe = 1 if keras.backend.backend() == "torch" else min(train.steps_per_execution, steps_per_epoch)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=spe)
    return model


def _callbacks(train: Train) -> list:
    import keras
    es = train.early_stopping
    if es is None:
        return []
    return [keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience,
                                          min_delta=es.min_delta,
                                          restore_best_weights=es.restore_best_weights)]
