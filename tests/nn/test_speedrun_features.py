"""The airbench features of configs/speedrun.yaml, one test each on small generated data with real Keras:
whitening, dirac init, batchnorm options, label smoothing, weight averaging, alternating
flip, pixel translation, TTA, Nesterov / per-group SGD, the triangular schedule, the
output scale, their YAML errors, and the speedrun preset itself."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest
from conftest import make_images

from cnn_cifar.config import shapes
from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config, validate
from cnn_cifar.nn import averaging, tta, whitening
from cnn_cifar.nn.augment import AlternatingFlip, PixelTranslate
from cnn_cifar.nn.optim import GroupSGD, Triangular
from cnn_cifar.training.estimator import CNNClassifier, from_config
from cnn_cifar.training.model_file import load_model, save_model

CONV = {"name": "conv1", "type": "conv", "filters": 4, "kernel": 3, "activation": "relu"}
SGD = {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9}


def fit(model=None, train=None, n=60, size=8, seed=3):
    model = {"layers": [CONV, {"type": "global_pool"}], **(model or {})}
    train = {"epochs": 2, "batch_size": 10, "validation_split": 0.0, **(train or {})}
    x, y = make_images(n, size=size)
    return CNNClassifier(model=model, train=train, random_state=seed).fit(x, y), x, y


def correlated_images(n=200, size=12, seed=0):
    """Smooth, channel-correlated images: neighbouring pixels and channels are far from
    independent, so whitening has work to do."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, size + 1, size + 1, 1))
    smooth = (base[:, 1:, 1:] + base[:, :-1, 1:] + base[:, 1:, :-1] + base[:, :-1, :-1]) / 4
    return smooth * np.array([1.0, 0.8, 0.5]) + 0.1 * rng.normal(size=(n, size, size, 3))


# --------------------------------------------------------------------------- whitening


def test_whitening_filters_whiten_the_patches():
    images = correlated_images()
    filters = whitening.whitening_filters(images, kernel=2, eps=1e-8)
    assert filters.shape == (2, 2, 3, 24)
    rows = whitening.patches(images, 2)
    out = rows @ filters.reshape(12, 24)[:, :12]  # the first half; the rest are negatives
    cov = out.T @ out / len(out)
    np.testing.assert_allclose(cov, np.eye(12), atol=1e-3)
    raw_cov = rows.T @ rows / len(rows)
    assert np.abs(raw_cov - np.diag(np.diag(raw_cov))).max() > 0.1  # it was not white before
    np.testing.assert_allclose(filters[..., 12:], -filters[..., :12])


def test_whiten_layer_is_set_in_fit_from_training_images_and_stays_frozen():
    kept = []

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kept.append(self.model.get_layer("whiten").bias.numpy().copy())

    layers = [
        {"name": "whiten", "type": "whiten", "images": 40, "bias_epochs": 1},
        CONV,
        {"type": "global_pool"},
    ]
    x, y = make_images(60, size=8)
    est = CNNClassifier(
        model={"layers": layers},
        train={"epochs": 3, "batch_size": 10, "validation_split": 0.0, "optimizer": SGD},
        random_state=3,
    )
    est.fit(x, y, callbacks=[Keep()])
    layer = est.model_.get_layer("whiten")
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    sample = x[np.sort(np.random.default_rng(3).permutation(60)[:40])].astype(np.float32) / 255
    mean, std = sample.mean(axis=(0, 1, 2)), sample.std(axis=(0, 1, 2))
    np.testing.assert_allclose(layer.mean.numpy(), mean, rtol=1e-5)
    expected = whitening.whitening_filters((sample - mean) / (std + 1e-8), 2, 5e-4)
    np.testing.assert_allclose(kernel, expected, rtol=1e-4, atol=1e-4)  # set from the data, untrained
    assert np.abs(kept[0]).max() > 0  # the bias trained in epoch 1 ...
    np.testing.assert_allclose(kept[2], kept[0], atol=1e-5)  # ... and was frozen after it
    np.testing.assert_array_equal(bias, kept[2])
    assert est.model_.get_layer("whiten").output.shape[1:] == (7, 7, 24)


def test_dirac_init_keeps_identity_filters():
    w = keras.ops.convert_to_numpy(whitening.Dirac(seed=1)((3, 3, 4, 6)))
    for o in range(4):
        expected = np.zeros((3, 3, 4))
        expected[1, 1, o] = 1
        np.testing.assert_array_equal(w[..., o], expected)
    assert np.abs(w[..., 4:]).max() <= 1 / np.sqrt(36) and np.abs(w[..., 4:]).max() > 0


# --------------------------------------------------------------------------- layers


def test_batchnorm_options_and_gelu_reach_the_keras_layers():
    bn = {"name": "bn", "type": "batchnorm", "momentum": 0.6, "epsilon": 1e-12, "scale": False}
    layers = [CONV, bn, {"name": "act", "type": "activation", "function": "gelu"}, {"type": "global_pool"}]
    est, _, _ = fit({"layers": layers})
    layer = est.model_.get_layer("bn")
    assert (layer.momentum, layer.epsilon, layer.scale, layer.center) == (0.6, 1e-12, False, True)
    assert [w.name for w in layer.weights] == ["beta", "moving_mean", "moving_variance"]
    assert est.model_.get_layer("act").activation.__name__ == "gelu"


def test_output_scale_and_no_bias():
    est, x, _ = fit({"output_scale": 0.25, "output_bias": False})
    assert est.model_.get_layer("logits").bias is None
    logits_model = keras.Model(est.model_.inputs, est.model_.get_layer("logits").output)
    logits = logits_model.predict(x, verbose=0) * 0.25
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(x), expected, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- training


def test_label_smoothing_changes_the_loss():
    est, _, _ = fit({}, {"label_smoothing": 0.2})
    assert est.model_.loss.label_smoothing == 0.2
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.7, 0.2]], np.float32)
    onehot = np.eye(3, dtype=np.float32)[[0, 1]]
    smooth = onehot * 0.8 + 0.2 / 3
    smoothed = float(est.model_.loss(onehot, proba))  # the loss smooths the one-hot targets
    plain = float(-(onehot * np.log(proba)).sum(axis=1).mean())
    assert smoothed == pytest.approx(float(-(smooth * np.log(proba)).sum(axis=1).mean()), rel=1e-4)
    assert smoothed > plain + 0.1


def test_nesterov_flag_and_groups_reach_the_optimizer():
    est, _, _ = fit({}, {"optimizer": {**SGD, "nesterov": False}})
    assert est.model_.optimizer.nesterov is False
    est, _, _ = fit({}, {"optimizer": {**SGD, "batchnorm_lr_scale": 8.0, "l2": 0.01}})
    opt = est.model_.optimizer
    assert isinstance(opt, GroupSGD) and opt.nesterov and (opt.batchnorm_lr_scale, opt.l2) == (8.0, 0.01)


def test_group_sgd_scales_offsets_gradients_and_adds_coupled_l2():
    beta = keras.Variable(np.ones(3, np.float32), name="beta")
    kernel = keras.Variable(np.ones(3, np.float32), name="kernel")
    opt = GroupSGD(batchnorm_lr_scale=64.0, l2=0.5, learning_rate=0.01, momentum=0.0)
    g = np.full(3, 0.1, np.float32)
    opt.apply([g, g], [beta, kernel])
    # lr * (scale * g + l2 * w): the scale is the gradient's, not the decay's
    np.testing.assert_allclose(beta.numpy(), 1 - 0.01 * (64 * 0.1 + 0.5), rtol=1e-6)
    np.testing.assert_allclose(kernel.numpy(), 1 - 0.01 * (0.1 + 0.5), rtol=1e-6)


def test_triangular_schedule_values():
    s = Triangular(peak=2.0, total_steps=100, warmup_steps=23, start_factor=0.2, end_factor=0.07)
    lr = {t: float(s(t)) for t in (0, 23, 100, 200)}
    assert lr == pytest.approx({0: 0.4, 23: 2.0, 100: 0.14, 200: 0.14})
    assert float(s(10)) == pytest.approx(2 * (0.2 + 0.8 * 10 / 23))
    assert float(s(60)) == pytest.approx(2 * (1 - 0.93 * 37 / 77))
    est, _, _ = fit({}, {"optimizer": {**SGD, "schedule": "triangular", "warmup_epochs": 1}})
    sched = est.model_.optimizer._learning_rate
    assert isinstance(sched, Triangular) and (sched.warmup_steps, sched.total_steps) == (6, 12)


@pytest.mark.parametrize("kind", ["ema", "lookahead"])
def test_weight_averaging_replaces_the_weights_at_the_end(kind):
    raw = {}

    class Raw(keras.callbacks.Callback):  # runs before the averaging's on_train_end
        def on_train_end(self, logs=None):
            raw["w"] = [w.copy() for w in self.model.get_weights()]

    avg = {"kind": kind, "every": 2, "decay": 0.9, "power": 0.0}
    x, y = make_images(60, size=8)
    est = CNNClassifier(
        model={"layers": [CONV, {"type": "global_pool"}]},
        train={"epochs": 3, "batch_size": 10, "validation_split": 0.0, "optimizer": SGD, "averaging": avg},
        random_state=3,
    )
    cb = averaging.WeightAveraging(kind, 2, 0.9, 0.0, 18)
    est.fit(x, y, callbacks=[])  # the estimator's own averaging
    assert est.model_.steps_per_execution == 2
    # the same run, watched: the final weights are the average, not what SGD left
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", steps_per_execution=2
    )
    model.fit(x / 255, y, batch_size=10, epochs=3, verbose=0, callbacks=[Raw(), cb])
    assert cb.n_updates == 9
    final = model.get_weights()
    for w, a in zip(final, cb.average, strict=True):
        np.testing.assert_allclose(w, a, rtol=1e-6)
    if kind == "ema":  # raw weights kept training apart from the average
        assert any(not np.allclose(w, r) for w, r in zip(final, raw["w"], strict=True))
    else:  # lookahead had pulled the weights back at the last update (step 18, the end)
        for w, r in zip(final, raw["w"], strict=True):
            np.testing.assert_allclose(w, r, rtol=1e-6)
    # and the estimator predicts with its averaged model
    assert est.predict_proba(x).shape == (60, 3)


@pytest.mark.parametrize("every, spe", [(20, 10), (16, 16), (7, 7), (12, 12), (5, 5)])
def test_averaging_runs_every_every_steps_whatever_steps_per_execution(every, spe):
    # the callback sees the weights once per call into the graph (steps_per_execution steps)
    avg = {"kind": "lookahead", "every": every, "decay": 0.9, "power": 0.0}
    x, y = make_images(200, size=8)
    est = CNNClassifier(
        model={"layers": [CONV, {"type": "global_pool"}]},
        train={"epochs": 4, "batch_size": 2, "validation_split": 0.0, "optimizer": SGD, "averaging": avg},
        random_state=3,
    )
    est.fit(x, y)
    assert est.model_.steps_per_execution == spe
    cb = averaging.WeightAveraging("lookahead", every, 0.9, 0.0, 400)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.01), "mse", steps_per_execution=spe)
    model.fit(x[:200] / 255, np.eye(3)[y[:200]], batch_size=2, epochs=4, verbose=0, callbacks=[cb])
    # 100 steps an epoch: an epoch's last call may be short, so up to one update an epoch
    # comes late (spe 16 with every 20, as before the fix, gave one update in 32 steps: 12)
    assert 400 // every - 4 <= cb.n_updates <= 400 // every


def test_the_whitening_gate_is_not_averaged():
    x, y = make_images(60, size=8)
    layers = [{"type": "whiten", "kernel": 2, "images": 60, "bias_epochs": 1}, CONV, {"type": "global_pool"}]
    avg = {"kind": "lookahead", "every": 2, "decay": 0.9, "power": 0.0}
    train = {"epochs": 3, "batch_size": 10, "validation_split": 0.0, "optimizer": SGD, "averaging": avg}
    est = CNNClassifier(model={"layers": layers}, train=train, random_state=3).fit(x, y)
    (whiten,) = [layer for layer in est.model_.layers if hasattr(layer, "gate")]
    assert float(whiten.gate.numpy()) == 0.0  # frozen after epoch 1, and left so


def test_averaging_decay_schedule():
    assert averaging.decay_at(0, 100, 0.95, 5, 3) == 0.0
    assert averaging.decay_at(100, 100, 0.95, 5, 3) == pytest.approx(0.95**5)
    assert averaging.decay_at(50, 100, 0.95, 5, 3) == pytest.approx(0.95**5 / 8)


# --------------------------------------------------------------------------- augmentation


def test_alternating_flip_flips_each_image_in_every_other_epoch():
    x, _ = make_images(64, size=8)
    layer = AlternatingFlip(1 / 255)
    xf = x.astype("float32") / 255
    layer.build(xf.shape)
    seen = []
    for epoch in (0, 1, 2):
        layer.epoch.assign(epoch)
        out = keras.ops.convert_to_numpy(layer(xf, training=True))
        flipped = np.all(out == xf[:, :, ::-1], axis=(1, 2, 3)) & ~np.all(
            xf == xf[:, :, ::-1], axis=(1, 2, 3)
        )
        assert np.all(flipped | np.all(out == xf, axis=(1, 2, 3)))
        seen.append(flipped)
    assert np.all(seen[0] != seen[1]) and np.all(seen[0] == seen[2])
    assert 0.2 < seen[0].mean() < 0.8  # about half of them each epoch
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(xf, training=False)), xf)


def test_pixel_translate_shifts_whole_pixels_with_reflection():
    x = np.random.default_rng(0).random((32, 8, 8, 3)).astype("float32")
    layer = PixelTranslate(2, seed=1)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    shifts = []
    for i in range(len(x)):
        match = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(out[i], padded[i, dy : dy + 8, dx : dx + 8])
        ]
        assert len(match) == 1
        shifts.append(match[0])
    assert len(set(shifts)) > 5  # drawn per image
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)


def test_augment_yaml_builds_the_layers():
    est, _, _ = fit({"augment": {"flip": "alternate", "translate_pixels": 1}})
    assert isinstance(est.model_.get_layer("aug_flip"), AlternatingFlip)
    assert est.model_.get_layer("aug_translate_pixels").pixels == 1


# --------------------------------------------------------------------------- TTA


def test_tta_views_and_weights():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    for level, n in (("none", 1), ("flip", 2), ("flip_translate", 6)):
        v = tta.views(x, level)
        assert len(v) == n and sum(w for w, _ in v) == pytest.approx(1.0)
    v = tta.views(x, "flip_translate")
    np.testing.assert_array_equal(v[1][1], x[:, :, ::-1])
    np.testing.assert_array_equal(v[2][1][:, 1:, 1:], x[:, :3, :3])  # shifted down-right by one


def test_tta_averages_the_log_probabilities_of_flipped_views():
    x = np.random.default_rng(0).random((5, 4, 4, 3)).astype("float32")

    def predict(v):  # depends on orientation: the left column's mean
        z = np.stack([v[:, :, 0].mean(axis=(1, 2)), np.zeros(len(v))], axis=1) * 5
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    logits = np.stack(
        [(x[:, :, 0].mean(axis=(1, 2)) + x[:, :, -1].mean(axis=(1, 2))) / 2 * 5, np.zeros(5)], 1
    )
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tta.predict_proba(predict, x, "flip"), expected, rtol=1e-5)


def test_estimator_tta_is_used_by_predict_and_in_saved_models(tmp_path):
    est, x, _ = fit({"tta": "flip"})
    p = est.predict_proba(x)
    np.testing.assert_allclose(p, est.predict_proba(x[:, :, ::-1]), rtol=1e-5, atol=1e-6)  # flip-invariant
    plain = est.model_.predict(x, verbose=0)
    assert not np.allclose(p, plain)
    save_model(est.model_, tmp_path / "m.keras", {"class_names": ["a", "b", "c"], "tta": "flip"})
    model, meta = load_model(tmp_path / "m.keras")
    assert meta["tta"] == "flip"
    np.testing.assert_allclose(model.predict(x, verbose=0), plain, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- YAML


BASE = {"name": "t", "model": {"layers": [CONV]}}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": {"layers": [CONV, {"type": "whiten"}]}}, "whiten layer must be the first"),
        ({"train": {"optimizer": {"name": "adam", "l2": 0.1}}}, "l2 is for sgd only"),
        ({"model": {"layers": [CONV], "augment": {"flip": "sometimes"}}}, "model.augment.flip"),
        ({"model": {"layers": [CONV], "tta": "all"}}, "model.tta"),
        ({"train": {"label_smoothing": 1.5}}, "train.label_smoothing"),
        ({"train": {"averaging": {"kind": "swa"}}}, "train.averaging.kind"),
    ],
)
def test_bad_values_are_one_line_errors(change, words):
    raw = {**copy.deepcopy(BASE), **change}
    with pytest.raises(ConfigError) as e:
        validate(raw, "x.yaml")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_speedrun_preset_builds_and_trains_a_step():
    cfg = load_config(
        "speedrun",
        ["train.epochs=1", "train.batch_size=16", "whiten.images=20", "train.optimizer.warmup_epochs=0.3"],
    )
    est = from_config(cfg)
    x, y = make_images(48, size=32, n_classes=10)
    est.fit(x, y)
    assert est.model_.get_layer("pool4").output.shape[1:] == (1, 1, 256)
    assert est.predict_proba(x[:8]).shape == (8, 10) and est.tta_ == "flip_translate"


def test_speedrun_shapes_agree_with_keras():
    from cnn_cifar.nn.model import build_model

    cfg = load_config("speedrun")
    inferred = shapes.infer(cfg.model, (32, 32, 3), 10)
    # without the augmentation layers, whose epoch counter Keras counts as a parameter
    model = build_model(cfg.model.model_copy(update={"augment": None}), (32, 32, 3), 10)
    assert shapes.totals(inferred)[0] == model.count_params()
    for s in inferred[:-1]:
        assert tuple(model.get_layer(s.name).output.shape[1:]) == s.output_shape


def test_cnn_cifar_predict_applies_the_saved_tta(tmp_path):
    from PIL import Image

    from cnn_cifar.commands.predict import predict_files

    est, x, _ = fit({"tta": "flip"})
    save_model(est.model_, tmp_path / "m.keras", {"class_names": ["a", "b", "c"], "tta": "flip"})
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(x[i]).save(paths[-1])
    result = predict_files(tmp_path / "m.keras", paths, k=3)
    got = [{t["class"]: t["probability"] for t in p["top"]} for p in result["predictions"]]
    expected = est.predict_proba(x[:2])
    for row, probs in zip(expected, got, strict=True):
        np.testing.assert_allclose([probs[c] for c in "abc"], row, rtol=1e-4, atol=1e-6)
