"""The config schema: what a YAML config may hold, with defaults and ranges (pydantic,
extra keys forbidden). The layer types' own fields are in `layers`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator

from .layers import LAYER_TYPES, LayerSpec, Strict, name_layers

if TYPE_CHECKING:
    Layer = LayerSpec  # what a type checker can know of a union built at run time
else:
    # one of the registered layer types, chosen by `type:`; `X | Y` cannot spell a union of a
    # registry's values, so this one stays Union[...]
    Layer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


class Augment(Strict):
    """Random training-time transforms, applied inside the model (inactive at inference)."""

    flip: bool = False  # horizontal flips
    translate: float = Field(0.0, ge=0.0, lt=0.5)  # fraction of height/width
    rotate: float = Field(0.0, ge=0.0, le=0.5)  # fraction of a full turn


class ModelSpec(Strict):
    layers: list[Layer] = Field(min_length=1)
    rescale: float = Field(1 / 255, gt=0.0)  # pixels are multiplied by this in the model
    augment: Augment | None = None

    @model_validator(mode="after")
    def _unique_names(self):
        name_layers(self.layers)
        seen: set[str | None] = set()
        for i, layer in enumerate(self.layers):
            if layer.name in seen:
                raise ValueError(f"layer name {layer.name!r} used twice (layers[{i}])")
            seen.add(layer.name)
        return self


class Optimizer(Strict):
    name: Literal["adadelta", "sgd", "adam", "adamw", "rmsprop"] = "adadelta"
    # Keras 3's Adadelta default is 0.001; Keras 1's was 1.0 (the tutorial relies on it).
    learning_rate: float = Field(1.0, gt=0.0)
    momentum: NonNegativeFloat = 0.0  # sgd / rmsprop only
    # None: Keras 3's default (1e-7). Keras 1's Adadelta used 1e-8, and Adadelta's first
    # steps scale with sqrt(epsilon): the tutorial's configs set 1e-8.
    epsilon: float | None = Field(None, gt=0.0)  # not for sgd
    weight_decay: NonNegativeFloat | None = None
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: decay to 0 over training
    warmup_epochs: NonNegativeFloat = 0.0  # linear warm-up, cosine schedule only


class EarlyStopping(Strict):
    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    # Keras 3 semantics: stop after `patience` epochs without improvement.
    # Keras 1's patience=p stopped after p+1 such epochs: the tutorial's patience=1 is 2 here.
    patience: PositiveInt = 2
    min_delta: NonNegativeFloat = 0.0
    restore_best_weights: bool = False


class Train(Strict):
    optimizer: Optimizer = Optimizer()
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 32
    validation_split: float = Field(0.2, ge=0.0, lt=1.0)
    early_stopping: EarlyStopping | None = None
    seed: int | None = 15
    # Speed settings (scripts/bench.py measures them; none changes what is learned beyond
    # float rounding). steps_per_execution: training steps per call into the compiled
    # graph, fewer Python round trips (batch-level callbacks then fire every N steps).
    steps_per_execution: PositiveInt = 16
    # precision: "auto" computes in bfloat16 (weights, loss and softmax stay float32) where
    # the CPU has native bf16 (avx512_bf16/amx_bf16) under TensorFlow, about 2x on the
    # conv layers; float32 elsewhere. "float32" reproduces the tutorial's arithmetic.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"

    @model_validator(mode="after")
    def _needs_validation(self):
        es = self.early_stopping
        if es is not None and es.monitor.startswith("val_") and self.validation_split == 0:
            raise ValueError(f"early_stopping monitors {es.monitor} but validation_split is 0")
        return self


class CV(Strict):
    n_splits: PositiveInt = 3
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    random_state: int | None = 15
    # n_repeats: the n_splits shuffle splits drawn again with seeds random_state + 1, + 2,
    # ... (experiment.cv_splits): n_splits * n_repeats folds, the first n_splits being the
    # unrepeated ones. More folds narrow the corrected confidence interval (cnn-cifar compare).
    n_repeats: PositiveInt = 1


class Data(Strict):
    source: Literal["cifar10", "image_folder", "npz", "auto"] = "cifar10"
    path: str | None = None
    subset: PositiveInt | None = None  # N training images (test set keeps the ratio)

    @model_validator(mode="after")
    def _path_needed(self):
        if self.path is None and self.source not in ("cifar10",):
            raise ValueError(f"source {self.source!r} needs a path")
        return self


class Prune(Strict):
    """Stopping a search's fits within their epochs (search.prune): each fit reports its
    validation score every epoch; `asha` stops a fit at epoch min_epochs * factor**k when it
    is not in the top 1/factor of the fits that reached that epoch (ASHA, as Ray Tune's
    ASHAScheduler stops trials), `median` stops it at any epoch >= min_epochs when its best
    so far is worse than the median of the other fits at that epoch (Optuna's MedianPruner).
    A fit is judged only once `min_fits` fits (itself included) reached the epoch."""

    rule: Literal["asha", "median", "none"] = "asha"
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    min_epochs: PositiveInt = 1
    factor: float = Field(3.0, gt=1.0)  # asha
    min_fits: PositiveInt = 3


class Search(Strict):
    strategy: Literal["racing", "random", "halving"] = "racing"
    n_iter: PositiveInt = 10
    cv: PositiveInt | None = None  # None: the config's cv block
    scoring: Literal["accuracy", "balanced_accuracy", "f1_macro", "neg_log_loss"] = "accuracy"
    random_state: int | None = 15
    factor: float = Field(3.0, gt=1.0)  # halving: keep 1/factor per rung
    min_resources: PositiveInt | None = None  # halving: training images in rung 0
    margin: float = Field(0.03, ge=0.0)  # racing: drop a candidate this far behind
    # within-epoch pruning; strategy random (RandomizedSearchCV exactly) never prunes
    prune: Prune = Prune()
    space: dict[str, Any] = Field(min_length=1)


class Track(Strict):
    """Where runs are tracked besides their folder (tracking.py): TensorBoard event files in
    <run>/tensorboard/ (on by default), and an MLflow store (a tracking URI; `--track mlflow`
    sets the default, sqlite:///<results dir>/mlflow.db)."""

    tensorboard: bool = True
    mlflow: str | None = None


class Config(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    data: Data = Data()
    model: ModelSpec
    train: Train = Train()
    cv: CV = CV()
    search: Search | None = None
    track: Track = Track()

    def search_block(self) -> Search:
        """The search: block, for the code that runs a search (the CLI has refused a config
        without one before it gets there)."""
        if self.search is None:
            raise ValueError(f"config {self.name} has no search: block")
        return self.search
