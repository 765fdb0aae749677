"""The saved model file and `cnn-cifar predict`: an untrained tiny model is enough."""

import json
import zipfile

import numpy as np
import pytest
from conftest import invoke
from PIL import Image

from cnn_cifar.commands.predict import PredictError, load_image, top_k
from cnn_cifar.config.schema import ModelSpec
from cnn_cifar.training.model_file import META_MEMBER, load_model, read_meta, save_model

NAMES = ["cat", "dog", "ship"]


def tiny_model(channels=3):
    from cnn_cifar.nn.model import build_model

    spec = ModelSpec.model_validate(
        {
            "layers": [
                {"name": "conv1", "type": "conv", "filters": 2, "kernel": 3, "activation": "relu"},
                {"name": "pool1", "type": "pool", "size": 2},
            ]
        }
    )
    return build_model(spec, (12, 12, channels), len(NAMES), seed=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = tiny_model()
    save_model(model, root / "model.keras", {"class_names": NAMES, "input_shape": [12, 12, 3]})
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(root / "wide.png")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(root / "gray.jpg")
    opaque = rng.integers(0, 256, (17, 33, 4), dtype=np.uint8)
    opaque[..., 3] = 255  # an opaque alpha channel is dropped; a transparent image is refused
    Image.fromarray(opaque, "RGBA").save(root / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / "exact.jpeg")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root, model


def test_saved_file_is_a_plain_keras_model_with_metadata(saved):
    import keras

    root, model = saved
    reloaded = keras.models.load_model(root / "model.keras", safe_mode=True)
    x = np.random.default_rng(1).integers(0, 256, (4, 12, 12, 3)).astype("uint8")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert META_MEMBER in zipfile.ZipFile(root / "model.keras").namelist()
    assert read_meta(root / "model.keras") == {"class_names": NAMES, "input_shape": [12, 12, 3]}
    assert sorted(p.name for p in root.iterdir() if p.suffix == ".keras") == ["model.keras"]


def test_images_of_any_size_are_resized_and_converted(saved):
    root, _ = saved
    for name in ("wide.png", "gray.jpg", "alpha.png", "exact.jpeg"):
        arr = load_image(root / name, (12, 12, 3))
        assert arr.shape == (12, 12, 3) and arr.dtype == np.uint8
    assert load_image(root / "wide.png", (12, 12, 1)).shape == (12, 12, 1)


def test_predict_prints_top_k_per_image(saved):
    root, _ = saved
    result = invoke("predict", root / "model.keras", root / "wide.png", root / "gray.jpg", root / "alpha.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{root / 'wide.png'}: ")
    assert all(sum(n in line for n in NAMES) == 3 for line in lines)


def test_predict_json_matches_the_model(saved):
    root, model = saved
    result = invoke(
        "predict", root / "model.keras", root / "wide.png", root / "exact.jpeg", "--json", "--top-k", 2
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["errors"] == [] and len(doc["predictions"]) == 2
    for p in doc["predictions"]:
        proba = model.predict(load_image(p["image"], (12, 12, 3))[None], verbose=0)[0]
        best = np.argsort(-proba)[:2]
        assert [t["class"] for t in p["top"]] == [NAMES[i] for i in best]
        assert [t["probability"] for t in p["top"]] == pytest.approx(proba[best].tolist(), rel=1e-5)


def test_bad_images_are_named_and_the_rest_classified(saved):
    root, _ = saved
    result = invoke(
        "predict", root / "model.keras", root / "broken.png", root / "wide.png", root / "nope.jpg"
    )
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "broken.png" in errors[0] and "nope.jpg" in errors[1]
    assert "wide.png" in result.stdout and "broken.png" not in result.stdout


@pytest.mark.parametrize("make", ["missing", "not_zip", "bad_zip"])
def test_missing_or_invalid_model_is_one_line_exit_2(saved, tmp_path, make):
    root, _ = saved
    path = tmp_path / "model.keras"
    if make == "not_zip":
        path.write_text("hello")
    elif make == "bad_zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("config.json", "{not json")
    result = invoke("predict", path, root / "wide.png")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and str(path) in result.output


def test_model_without_metadata_uses_class_indices(tmp_path):
    model = tiny_model(channels=1)
    model.save(tmp_path / "plain.keras")
    _, meta = load_model(tmp_path / "plain.keras")
    assert meta == {"input_shape": [12, 12, 1], "class_names": ["0", "1", "2"]}


def test_top_k_is_sorted_and_clipped():
    proba = np.array([[0.1, 0.7, 0.2]])
    assert top_k(proba, NAMES, 10) == [
        [
            {"class": "dog", "probability": 0.7},
            {"class": "ship", "probability": 0.2},
            {"class": "cat", "probability": 0.1},
        ]
    ]


def test_load_image_errors_are_predict_errors(tmp_path):
    with pytest.raises(PredictError, match="no such file"):
        load_image(tmp_path / "x.png", (12, 12, 3))


def test_an_evaluate_run_folder_stands_for_its_model(saved, tmp_path):
    root, _ = saved
    by_file = invoke("predict", root / "model.keras", root / "wide.png", "--json")
    by_folder = invoke("predict", root, root / "wide.png", "--json")
    assert by_folder.exit_code == 0, by_folder.output
    assert json.loads(by_folder.output)["predictions"] == json.loads(by_file.output)["predictions"]
    result = invoke("predict", tmp_path, root / "wide.png")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {tmp_path}: no model.keras here (an evaluate run folder has one)"
