"""CNNClassifier: a scikit-learn classifier that builds its Keras model from a layer spec.

Every hyperparameter is a scikit-learn parameter: `conv2__kernel` (a layer's attribute),
`train__batch_size`, `train__optimizer__learning_rate`, `model__rescale`, so
`set_params`, `GridSearchCV` and `RandomizedSearchCV` can vary any of them.
"""

from __future__ import annotations

import copy
import numbers
import os
import tempfile
import time
from collections.abc import Mapping
from typing import TypeVar

import keras
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d

from ..config import shapes
from ..config.errors import ConfigError, describe, first_error
from ..config.names import get_param, layers_first, param_names, set_param
from ..config.schema import Config, ModelSpec, Train
from ..nn import tta
from . import keras_setup, runtime


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Parameters
    ----------
    model : dict
        ``{"layers": [...], "rescale": 1/255, "augment": None}`` as in a config's model block.
    train : dict
        A config's train block (optimizer, epochs, batch_size, validation_split,
        early_stopping); missing keys take the schema's defaults.
    input_shape : tuple (H, W, C) or None
        The image shape of X given as flat rows (n, H*W*C); 4-D X (n, H, W, C) and 3-D X
        (n, H, W, grayscale) give their own shape. Flat rows without `input_shape` are
        feature vectors (n, n_features): that works for a model without spatial layers
        (dense, dropout, batchnorm, activation, flatten) and no augmentation, a plain
        multilayer perceptron; a model with conv/pool/global_pool layers needs images.
    random_state : int or None
        Seeds Python, NumPy and the backend before each fit (reproducible on the CPU)
        and the shuffle that picks the validation rows.
    verbose : int
        Keras' fit verbosity.

    `__init__` and `set_params` store what they are given; `fit` validates it (a bad value
    is a ValueError naming the field and what is allowed). One exception: `model` and
    `train` must be mappings (or None), because routed names (`conv2__kernel`) are set
    inside them: `set_params` refuses anything else with a ValueError.

    `fit` takes X as images or rows (finite numbers; NaN, infinity, complex, sparse and
    empty input are refused) and y as class labels (binary or multiclass; continuous,
    multilabel or multi-output y is refused, as is a single class). predict, predict_proba
    and score raise NotFittedError before `fit` and after `release`, and a ValueError for X
    whose feature count or image shape differs from fit's.

    Attributes (after fit): classes_, n_features_in_ (H*W*C, or n_features for vectors),
    input_shape_, history_, n_epochs_, fit_time_, model_ (the Keras model), tta_ (the
    model's test-time augmentation, which predict_proba and predict apply).
    """

    def __init__(self, model=None, train=None, input_shape=None, random_state=None, verbose=0):
        self.model = model
        self.train = train
        self.input_shape = input_shape
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters
    # Routed names (`conv2__kernel`, `train__batch_size`, ...) are a config's parameter
    # names: `config.names` lists, reads and sets them; this class only maps its attributes to a
    # raw config fragment and back. `random_state` is the config's `train.seed`.

    def _raw(self, **instead) -> dict:
        """A raw config fragment of these attributes (or of the values given `instead`)."""
        params = {**self.get_params(deep=False), **instead}
        train = _block("train", params["train"])
        train["seed"] = params["random_state"]
        return {"model": _block("model", params["model"]), "train": train}

    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if deep:
            raw = self._raw()
            params.update({name: get_param(raw, name) for name in param_names(raw) if name not in params})
        return params

    def set_params(self, **params):
        """Store the parameters (values are checked by `fit`). Refused, with nothing
        changed: an unknown name, and a `model` or `train` that is not a mapping."""
        own = {k: v for k, v in params.items() if k in self._get_param_names()}
        routed = {k: v for k, v in params.items() if k not in own}
        for key in ("model", "train"):
            if key in own:
                _block(key, own[key])
        raw = None
        if routed:  # on top of the new model/train/random_state, if given
            raw = self._raw(**own)
            for name, value in layers_first(routed):
                try:
                    set_param(raw, name, value, params_only=True)
                except ConfigError as e:
                    raise ValueError(
                        f"Invalid parameter {name!r} for {type(self).__name__}: {e.message}"
                    ) from None
        super().set_params(**own)
        if raw is not None:
            self.random_state = raw["train"].pop("seed")
            self.model, self.train = raw["model"], raw["train"]
        return self

    def _specs(self) -> tuple[ModelSpec, Train]:
        model, train = _block("model", self.model), _block("train", self.train)
        if "seed" in train:
            raise ValueError("train['seed'] is not read by the estimator: its seed is random_state")
        spec, train_spec = _validated(ModelSpec, "model", model), _validated(Train, "train", train)
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, numbers.Integral)):
            raise ValueError(f"random_state must be an int or None, got {rs!r}")
        shape = self.input_shape
        if shape is not None and not (
            isinstance(shape, (tuple, list)) and len(shape) == 3 and all(_positive_int(d) for d in shape)
        ):
            raise ValueError(f"input_shape must be (H, W, C), three positive ints, or None, got {shape!r}")
        return spec, train_spec

    # ------------------------------------------------------------------ data

    def _check_X(self, X: npt.ArrayLike, spec: ModelSpec | None = None) -> np.ndarray:
        """X as the model's input, (n, H, W, C) images or (n, n_features) vectors. With
        `config` (in fit) its shape is decided; without (predict) it must match fit's."""
        # dtype "numeric": uint8 pixels stay uint8 (the model casts them); object -> float
        X = np.asarray(
            check_array(
                X, dtype="numeric", allow_nd=True, ensure_all_finite=True, estimator=self, input_name="X"
            )
        )
        if X.ndim == 3:  # (n, H, W) grayscale
            X = X[..., None]
        if X.ndim > 4:
            raise ValueError(f"X must be (n, H, W, C) images or (n, H*W*C) rows, got {X.shape}")
        n_features = int(np.prod(X.shape[1:]))
        if spec is None:
            return self._as_fitted(X, n_features)
        if X.ndim == 4:
            return X
        shape = self.input_shape
        if shape is None:
            needs_images = [
                f"layer {layer.name} ({layer.type})" for layer in spec.layers if layer.spatial
            ] + (["augment"] if spec.augment else [])
            if needs_images:
                raise ValueError(
                    f"X is flat (n, H*W*C): set input_shape=(H, W, C): {needs_images[0]} needs images"
                )
            return X  # feature vectors
        if int(np.prod(shape)) != n_features:
            raise ValueError(
                f"X has {n_features} features, input_shape {tuple(shape)} needs {int(np.prod(shape))}"
            )
        return X.reshape((X.shape[0], *shape))

    def _as_fitted(self, X: np.ndarray, n_features: int) -> np.ndarray:
        name = type(self).__name__
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if X.ndim == 2:  # rows of the fitted shape
            return X.reshape((X.shape[0], *self.input_shape_))
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has images of shape {X.shape[1:]}, but {name} was fitted on {self.input_shape_}"
            )
        return X

    def _check_y(self, y: npt.ArrayLike | None, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"This {type(self).__name__} estimator requires y to be passed, but the target y is None."
            )
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type: y is {_describe_target(kind, y)}; "
                f"{type(self).__name__} needs one class label per sample "
                "(binary or multiclass)"
            )
        y = np.asarray(column_or_1d(y, warn=True))  # (n, 1): a DataConversionWarning
        check_consistent_length(np.empty(n_samples), y)
        return y

    # ------------------------------------------------------------------ fit / predict

    def fit(self, X, y, callbacks=None):
        """Build a fresh model and train it. `callbacks`: extra Keras callbacks."""
        spec, train = self._specs()
        X = self._check_X(X, spec)
        y = self._check_y(y, len(X))
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has one class ({', '.join(map(repr, classes.tolist()))}); a classifier needs two or more"
            )
        input_shape = tuple(int(d) for d in X.shape[1:])
        # ShapeError before the previous model is dropped; the model is built from this walk
        stack = shapes.infer(spec, input_shape, len(classes))
        self.release()
        self.classes_, self.input_shape_ = classes, input_shape
        self.n_features_in_ = int(np.prod(input_shape))
        seed = None if self.random_state is None else int(self.random_state)  # numpy ints too
        if seed is not None:
            keras.utils.set_random_seed(seed)  # after clear_session, which resets it
        (x_fit, y_fit), val = _validation_split(X, y_enc, train.validation_split, seed)
        steps = -(-len(x_fit) // train.batch_size)
        model = keras_setup.build(spec, train, self.input_shape_, len(self.classes_), seed, steps, stack)
        keras_setup.prepare(model, spec, x_fit, seed)
        y_fit = keras_setup.targets(y_fit, len(classes), train)
        if val is not None:
            val = (val[0], keras_setup.targets(val[1], len(classes), train))
        self.tta_ = spec.tta
        runtime.built()
        start = time.perf_counter()
        # The validation pass is inference only: a larger batch is faster and gives the same
        # figures (up to float rounding).
        history = model.fit(
            x_fit,
            y_fit,
            batch_size=train.batch_size,
            epochs=train.epochs,
            validation_data=val,
            validation_batch_size=max(train.batch_size, 256),
            shuffle=True,
            verbose=self.verbose,
            callbacks=keras_setup.callbacks(spec, train, steps * train.epochs) + list(callbacks or []),
        )
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

    def __sklearn_is_fitted__(self):
        return "model_" in self.__dict__  # release() leaves classes_ but no model

    def predict_proba(self, X, batch_size=512):
        """Class probabilities; with `model.tta` set, averaged over the test-time views."""
        check_is_fitted(self)
        X = self._check_X(X)
        if X.ndim != 4:  # feature vectors: no views to take
            return np.asarray(self.model_.predict(X, batch_size=batch_size, verbose=0))
        return tta.predict_proba(
            lambda v: self.model_.predict(v, batch_size=batch_size, verbose=0),
            X,
            getattr(self, "tta_", "none"),
        )

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # multi-threaded float sums differ in the last bits
        tags.input_tags.three_d_array = True  # (n, H, W) grayscale; (n, H, W, C) too
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
    return CNNClassifier(
        model=model, train=train, input_shape=input_shape, random_state=seed, verbose=verbose
    )


# ---------------------------------------------------------------------- helpers

_BLOCK_EXAMPLES = {"model": "{'layers': [...]}", "train": "{'epochs': 20, 'batch_size': 32}"}


def _block(key: str, value) -> dict:
    """A deep copy of the `model` or `train` parameter as a dict (None: {})."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping like {_BLOCK_EXAMPLES[key]}, got {type(value).__name__}")
    return copy.deepcopy(dict(value))


def _positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) > 0


_Block = TypeVar("_Block", bound=BaseModel)


def _validated(schema: type[_Block], section: str, block: dict) -> _Block:
    """`block` validated as a config's `section`; a refused value is a ValueError worded as a
    config's error is, the field named as a config names it (`train.epochs`,
    `model.layers[0] (conv1).filters`), an unknown key before a missing one."""
    try:
        return schema.model_validate(block)
    except ValidationError as e:
        err = first_error(e)
        err["loc"] = (section, *err["loc"])
        field, message = describe(err, {section: block})
        raise ValueError(f"{field}: {message}") from None


def _describe_target(kind: str, y) -> str:
    """`type_of_target`'s word for y, with what makes it so."""
    y = np.asarray(y)
    if kind.startswith("continuous"):
        values = np.unique(y)
        return (
            f"{kind} ({len(values)} distinct values such as {values[0]:g}, not class "
            "labels: bin or round them first)"
        )
    return f"{kind} (shape {y.shape})"


def _validation_split(X, y, fraction: float, seed):
    """Seeded shuffle, then the last `fraction` as validation data. (Keras' own
    validation_split takes the tail unshuffled, which on class-sorted data is one class.)"""
    n_val = min(round(len(X) * fraction), len(X) - 1)  # one row at least to fit on
    if n_val <= 0:
        return (X, y), None
    order = np.random.default_rng(seed).permutation(len(X))
    fit_idx, val_idx = np.sort(order[:-n_val]), np.sort(order[-n_val:])
    return (X[fit_idx], y[fit_idx]), (X[val_idx], y[val_idx])
