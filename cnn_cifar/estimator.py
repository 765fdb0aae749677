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

from . import shapes
from .config import Config, ModelSpec, Train


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

    def _layers(self) -> list[dict]:
        return list((self.model or {}).get("layers", []))

    def _layer_names(self) -> list[str]:
        return [layer.get("name") or f"{layer.get('type')}{k}"
                for layer, k in zip(self._layers(), _type_counts(self._layers()))]

    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        if not deep:
            return params
        for name, layer in zip(self._layer_names(), self._layers()):
            params.update({f"{name}__{k}": v for k, v in layer.items() if k not in ("name", "type")})
        rest = {k: v for k, v in (self.model or {}).items() if k != "layers"}
        params.update(_flatten(rest, "model"))
        params.update(_flatten(self.train or {}, "train"))
        return params

    def set_params(self, **params):
        routed = {k: v for k, v in params.items() if "__" in k}
        super().set_params(**{k: v for k, v in params.items() if "__" not in k})
        if not routed:
            return self
        model, train = copy.deepcopy(self.model or {}), copy.deepcopy(self.train or {})
        names = self._layer_names()
        for key, value in routed.items():
            head, *rest = key.split("__")
            if head in names:
                _set(model["layers"][names.index(head)], rest, value)
            elif head == "model":
                _set(model, rest, value)
            elif head == "train":
                _set(train, rest, value)
            else:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}: "
                                 f"starts with a layer name ({', '.join(names)}), model or train")
            if _unknown_name(model, train):
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}: no such setting")
        self.model, self.train = model, train
        return self

    def _specs(self) -> tuple[ModelSpec, Train]:
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
        self._release()
        if self.random_state is not None:
            keras.utils.set_random_seed(self.random_state)    # after clear_session, which resets it
        (x_fit, y_fit), val = _validation_split(X, y_enc, train.validation_split, self.random_state)
        steps = -(-len(x_fit) // train.batch_size)
        model = _build(spec, train, self.input_shape_, len(self.classes_), self.random_state, steps)
        global _COLLECTED
        _COLLECTED = False
        start = time.perf_counter()
        # The validation pass is inference only: a larger batch is faster and gives the same
        # figures (up to float rounding).
        history = model.fit(x_fit, y_fit, batch_size=train.batch_size, epochs=train.epochs,
                            validation_data=val, validation_batch_size=max(train.batch_size, 256),
                            shuffle=True, verbose=self.verbose,
                            callbacks=_callbacks(train) + list(callbacks or []))
        self.fit_time_ = time.perf_counter() - start
        _free_traced_graphs(model, ("train_function", "test_function"))
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.n_epochs_ = len(history.epoch)
        self.model_ = model
        return self

    def _release(self):
        """Drop the previous model and Keras' global state so memory stays flat across fits."""
        import keras
        global _COLLECTED
        model = self.__dict__.pop("model_", None)
        had_model = model is not None
        if had_model:
            _free_traced_graphs(model, ("train_function", "test_function", "predict_function"))
        del model
        # clear_session's garbage collection takes about 0.25 s with TensorFlow loaded: run it
        # once per fit, not again when nothing was built since the last one (cv and search
        # release each model after scoring it, then fit a fresh estimator).
        keras.backend.clear_session(free_memory=had_model or not _COLLECTED)
        _COLLECTED = True

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

def _type_counts(layers):
    counts: dict = {}
    for layer in layers:
        counts[layer.get("type")] = counts.get(layer.get("type"), 0) + 1
        yield counts[layer.get("type")]


def _flatten(d: dict, prefix: str) -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}__{k}"
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def _set(node: dict, path: list[str], value) -> None:
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _unknown_name(model: dict, train: dict) -> bool:
    """Unknown parameter names fail in set_params; bad values are reported by fit."""
    for schema, data in ((ModelSpec, model), (Train, train)):
        try:
            schema.model_validate(data)
        except ValidationError as e:
            if any(err["type"] == "extra_forbidden" for err in e.errors()):
                return True
    return False


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
    from .runtime import resolve_precision
    model = build_model(spec, input_shape, n_classes, seed, precision=resolve_precision(train.precision))
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


_COLLECTED = False       # True: nothing was built since Keras' session was cleared and collected


def _free_traced_graphs(model, attrs) -> None:
    """Dismantle the graphs TensorFlow traced for `model`'s train/test/predict functions and
    forget the functions (Keras traces them again if the model is used again).

    The graphs of tf.functions traced inside other tf.functions (Keras' one_step_on_data, the
    optimizer's and metrics' cond branches) form reference cycles through C++ objects the
    garbage collector cannot see, so they outlive the model: about 3 MB a fit, which adds up
    over a search (tensorflow#61791, tf-keras#286; measured by scripts/bench.py --only memory).
    Uses TensorFlow internals, so any failure leaves things as they were."""
    import keras
    if keras.backend.backend() != "tensorflow":
        return
    try:
        from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
        from tensorflow.python.framework.func_graph import dismantle_func_graph
    except ImportError:
        return
    functions, seen = [], set()

    def find(obj, depth=0):          # tf.functions in Keras' wrappers' closures
        if obj is None or depth > 4 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Function):
            functions.append(obj)
            obj = obj.python_function
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                find(cell.cell_contents, depth + 1)
            except ValueError:       # empty cell
                pass
        find(getattr(obj, "__wrapped__", None), depth + 1)

    try:
        for attr in attrs:
            find(getattr(model, attr, None))
            setattr(model, attr, None)
        graphs, todo = {}, [cf.graph for f in functions for cf in f._list_all_concrete_functions()]
        while todo:                  # and the functions they call (cond/while branches)
            graph = todo.pop()
            if id(graph) not in graphs:
                graphs[id(graph)] = graph
                todo += [g for af in list(getattr(graph, "_functions", {}).values())
                         if (g := getattr(af, "_cached_graph", None)) is not None]
        for graph in graphs.values():
            dismantle_func_graph(graph)
    except Exception:                # noqa: BLE001 - TensorFlow internals moved: skip
        pass
