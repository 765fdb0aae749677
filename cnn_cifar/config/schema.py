"""The config schema: what a YAML config may hold, with defaults and ranges (pydantic,
extra keys forbidden). The layer types' own fields are in `layers`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator, model_validator

from ..core.vocabulary import ALPHA
from .layers import LAYER_TYPES, LayerSpec, Strict, name_layers

if TYPE_CHECKING:
    Layer = LayerSpec  # what a type checker can know of a union built at run time
else:
    # one of the registered layer types, chosen by `type:`; `X | Y` cannot spell a union of a
    # registry's values, so this one stays Union[...]
    Layer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


class Augment(Strict):
    """Random training-time transforms, applied inside the model (inactive at inference)."""

    # horizontal flips: true flips a random half of each batch; "alternate" is airbench's
    # alternating flip (a fixed half of the images flipped on even epochs, the other half on
    # odd ones: every image is seen both ways in any two epochs; augment.AlternatingFlip)
    flip: bool | Literal["alternate"] = False
    translate: float = Field(0.0, ge=0.0, lt=0.5)  # fraction of height/width (Keras, interpolated)
    # whole-pixel shifts of up to N pixels each way, drawn per image, reflect padding
    # (airbench's random crop of a padded image; augment.PixelTranslate)
    translate_pixels: int = Field(0, ge=0, le=8)
    rotate: float = Field(0.0, ge=0.0, le=0.5)  # fraction of a full turn


class ModelSpec(Strict):
    layers: list[Layer] = Field(min_length=1)
    rescale: float = Field(1 / 255, gt=0.0)  # pixels are multiplied by this in the model
    augment: Augment | None = None
    # The output layer (dense, then softmax): `output_scale` multiplies its logits (the
    # inverse of a softmax temperature; airbench's 1/9), `output_bias` false drops its bias.
    output_scale: float = Field(1.0, gt=0.0)
    output_bias: bool = True
    # Test-time augmentation in predict_proba / predict / evaluate / `cnn-cifar predict`:
    # "flip" averages the image and its mirror, "flip_translate" also the mirrored pair
    # shifted one pixel up-left and down-right (reflect padding), weighted as airbench's
    # tta_level 2. Averages are of log-probabilities, i.e. of logits (tta.py).
    tta: Literal["none", "flip", "flip_translate"] = "none"

    @model_validator(mode="after")
    def _unique_names(self):
        for i, layer in enumerate(self.layers):
            if layer.type == "whiten" and i != 0:
                raise ValueError(f"a whiten layer must be the first layer (it is layers[{i}])")
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
    # cosine: decay to 0 over training. triangular (airbench): linear from
    # start_factor x learning_rate up to learning_rate over warmup_epochs, then linear down
    # to end_factor x learning_rate at the last step (schedules.Triangular).
    schedule: Literal["constant", "cosine", "triangular"] = "constant"
    warmup_epochs: NonNegativeFloat = 0.0  # linear warm-up, cosine and triangular schedules
    start_factor: float = Field(0.2, ge=0.0)  # triangular only
    end_factor: float = Field(0.07, ge=0.0)  # triangular only
    # sgd: None = Nesterov momentum whenever momentum > 0 (the earlier behaviour)
    nesterov: bool | None = None
    # sgd: per-group learning rates as airbench: batchnorm offsets (beta) get this many times
    # the learning rate (their gradients are scaled; their weight decay is not)
    batchnorm_lr_scale: float = Field(1.0, gt=0.0)
    # sgd: L2 penalty coupled to the gradient (goes through momentum, as PyTorch SGD's
    # weight_decay), the same for every group; weight_decay stays Keras' decoupled decay
    l2: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _sgd_only(self):
        if self.name != "sgd":
            for key, default in (("nesterov", None), ("batchnorm_lr_scale", 1.0), ("l2", 0.0)):
                if getattr(self, key) != default:
                    raise ValueError(f"{key} is for sgd only (optimizer is {self.name})")
        return self


class EarlyStopping(Strict):
    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    # Keras 3 semantics: stop after `patience` epochs without improvement.
    # Keras 1's patience=p stopped after p+1 such epochs: the tutorial's patience=1 is 2 here.
    patience: PositiveInt = 2
    min_delta: NonNegativeFloat = 0.0
    restore_best_weights: bool = False


class Averaging(Strict):
    """Weight averaging (averaging.WeightAveraging): every `every` steps the average moves
    towards the weights, avg = d * avg + (1 - d) * w with d = decay**every * (t/T)**power
    (t the step, T the last: airbench's schedule, which starts as a copy and averages more
    as training ends). Lookahead then copies the average back into the weights; ema leaves
    the weights alone. Both end with the average as the model's weights, so evaluation
    and predictions use it (validation during training sees the raw weights for ema).
    Batchnorm statistics are averaged too."""

    kind: Literal["lookahead", "ema"] = "lookahead"
    every: PositiveInt = 5  # steps; steps_per_execution is lowered to it
    decay: float = Field(0.95, gt=0.0, lt=1.0)
    power: NonNegativeFloat = 3.0


class Train(Strict):
    optimizer: Optimizer = Optimizer()
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 32
    validation_split: float = Field(0.2, ge=0.0, lt=1.0)
    early_stopping: EarlyStopping | None = None
    seed: int | None = 15
    # Speed settings (python -m benchmarks measures them; none changes what is learned beyond
    # float rounding). steps_per_execution: training steps per call into the compiled
    # graph, fewer Python round trips (batch-level callbacks then fire every N steps).
    steps_per_execution: PositiveInt = 16
    # precision: "auto" computes in bfloat16 (weights, loss and softmax stay float32) where
    # the CPU has native bf16 (avx512_bf16/amx_bf16) under TensorFlow, about 2x on the
    # conv layers; float32 elsewhere. "float32" reproduces the tutorial's arithmetic.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # 0: plain cross-entropy; e.g. 0.2 (airbench): targets 1 - 0.2 + 0.2/K and 0.2/K
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    averaging: Averaging | None = None

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
    # ... (training.folds.cv_splits): n_splits * n_repeats folds, the first n_splits being the
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
    A fit is judged only once `min_fits` fits (itself included) reached the epoch.

    `probe` (asha with racing): before any first fold trains in full, every candidate's
    first fold trains min_epochs epochs and is scored on its test rows; only the best
    1/factor go on, best first, unpruned (ASHA's first rung taken in step, so that the fits
    that start first are not waved through for want of others to compare with)."""

    rule: Literal["asha", "median", "none"] = "asha"
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    min_epochs: PositiveInt = 1
    factor: float = Field(3.0, gt=1.0)  # asha
    min_fits: PositiveInt = 3
    probe: bool = True  # asha with racing


# The most candidates a search may draw. Each candidate is k folds of full training: the
# fastest fit measured (speedrun.yaml on an H200, docs/performance.md) takes 22-26 s, so
# 10,000 candidates x 3 folds is a week of one GPU, and planning them (each config and its
# shapes checked, docs/searching.md) takes seconds; a million would take years to run, and
# planning them took minutes and gigabytes before a line was printed.
MAX_N_ITER = 10_000


class Search(Strict):
    strategy: Literal["racing", "random", "halving"] = "racing"
    n_iter: PositiveInt = 10
    cv: PositiveInt | None = None  # None: the config's cv block
    scoring: Literal["accuracy", "balanced_accuracy", "f1_macro", "neg_log_loss"] = "accuracy"
    random_state: int | None = 15
    factor: float = Field(3.0, gt=1.0)  # halving: keep 1/factor per rung
    min_resources: PositiveInt | None = None  # halving: training images in rung 0
    margin: float = Field(0.03, ge=0.0)  # racing: drop a candidate this far behind
    # racing: when a candidate leaves the race. "margin": after any fold, when its mean so
    # far is more than `margin` below the leader's (fast, but a rule of thumb). "ttest": from
    # its second fold on, when the corrected resampled t-test against the leader on the folds
    # so far gives p < race_alpha, Bonferroni-corrected over the looks (oracles.RacingOracle)
    race_rule: Literal["margin", "ttest"] = "margin"
    race_alpha: float = Field(ALPHA, gt=0.0, lt=1.0)  # racing with race_rule ttest
    # within-epoch pruning; strategy random (RandomizedSearchCV exactly) never prunes
    prune: Prune = Prune()
    space: dict[str, Any] = Field(min_length=1)

    @field_validator("n_iter")
    @classmethod
    def _runnable_count(cls, n: int) -> int:
        if n > MAX_N_ITER:
            raise ValueError(
                f"{n:,} candidates is more than a search can run; at most {MAX_N_ITER:,} (each "
                f"candidate trains every fold in full: {MAX_N_ITER:,} x 3 folds is already a week of one GPU)"
            )
        return n


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
