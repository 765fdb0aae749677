"""`cnn-cifar predict` and training read an image file through one decoder: over a corpus of
generated files (every mode Pillow writes to PNG and JPEG, 8- and 16-bit PNGs, each EXIF
orientation, GIF, WebP, animated PNG, a multi-picture JPEG), the array predict feeds the
model is the array an image folder gives training, and a file one refuses the other
refuses with the same line naming it. Real files, real decoding, the real CLI."""

import io
import json
import tarfile

import numpy as np
import pytest
from conftest import invoke, png_48_bit
from PIL import Image

from cnn_cifar.commands.predict import PredictError, load_image
from cnn_cifar.data.formats import DataError
from cnn_cifar.data.image_folders import load_images
from cnn_cifar.data.sources import load_dataset

SIZE = 12  # every corpus file and the model's input: no resizing, so arrays compare exactly
NAMES = ["a", "b", "c"]
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
SIXTEEN = RNG.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)


def saved(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def with_alpha(mode: str, alpha: int) -> Image.Image:
    base = Image.fromarray(RGB) if mode == "RGBA" else Image.fromarray(GRAY)
    image = base.convert(mode)
    image.putalpha(alpha)
    return image


def palette(transparent: bool) -> Image.Image:
    image = Image.fromarray(RGB).quantize(16)
    if transparent:
        image.info["transparency"] = 0
    return image


def jpeg_oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return saved(Image.fromarray(RGB), "JPEG", quality=95, exif=exif)


def frames(fmt: str, **options) -> bytes:
    first, second = Image.fromarray(RGB), Image.fromarray(255 - RGB)
    return saved(first, fmt, save_all=True, append_images=[second], **options)


TRANSPARENT = "image has transparent pixels"
NOT_READ = "images are not read, only PNG and JPEG (convert it to PNG)"

# name -> (bytes, None if accepted, else the words of its refusal)
CORPUS = {
    "rgb.png": (saved(Image.fromarray(RGB), "PNG"), None),
    "rgba_opaque.png": (saved(with_alpha("RGBA", 255), "PNG"), None),
    "rgba_transparent.png": (saved(with_alpha("RGBA", 100), "PNG"), f"{TRANSPARENT} (mode RGBA)"),
    "la_opaque.png": (saved(with_alpha("LA", 255), "PNG"), None),
    "la_transparent.png": (saved(with_alpha("LA", 0), "PNG"), f"{TRANSPARENT} (mode LA)"),
    "l.png": (saved(Image.fromarray(GRAY), "PNG"), None),
    "p.png": (saved(palette(False), "PNG"), None),
    "p_transparent.png": (saved(palette(True), "PNG"), f"{TRANSPARENT} (mode P)"),
    "1bit.png": (saved(Image.fromarray(GRAY > 127), "PNG"), None),
    "i16.png": (saved(Image.fromarray(SIXTEEN), "PNG"), None),
    "rgb16.png": (png_48_bit(np.stack([SIXTEEN, SIXTEEN[::-1], SIXTEEN.T], axis=-1)), None),
    "rgb.jpg": (saved(Image.fromarray(RGB), "JPEG", quality=90), None),
    "l.jpeg": (saved(Image.fromarray(GRAY), "JPEG", quality=90), None),
    "cmyk.jpg": (saved(Image.fromarray(RGB).convert("CMYK"), "JPEG"), "image mode CMYK is refused"),
    **{f"exif{n}.jpg": (jpeg_oriented(n), None) for n in range(1, 9)},
    "multi_picture.jpg": (frames("MPO"), None),
    "still.gif": (saved(Image.fromarray(RGB), "GIF"), f"GIF {NOT_READ}"),
    "animated.gif": (frames("GIF"), f"GIF {NOT_READ}"),
    "still.webp": (saved(Image.fromarray(RGB), "WEBP", lossless=True), f"WebP {NOT_READ}"),
    "animated.webp": (frames("WEBP", lossless=True), f"WebP {NOT_READ}"),
    "animated.png": (frames("PNG"), "animated PNG (2 frames) is not read, only still images"),
    "bmp_named.png": (saved(Image.fromarray(RGB), "BMP"), f"BMP {NOT_READ}"),
}


def image_folder(root, name: str, data: bytes, plain_mode: str):
    """train/{a,b,c}/ and test/{a,b,c}/ of one plain SIZE x SIZE image each (RGB or L: a
    folder of grayscale images is a one-channel data set), and train/a/x_<name>: the file
    under test, second in its split's order."""
    plain = saved(Image.new(plain_mode, (SIZE, SIZE), 40), "PNG")
    for split in ("train", "test"):
        for cls in NAMES:
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "0.png").write_bytes(plain)
    path = root / "train" / "a" / f"x_{name}"
    path.write_bytes(data)
    return root, path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained tiny model of SIZE x SIZE x 3 inputs, saved as `evaluate` saves one."""
    from cnn_cifar.config.schema import ModelSpec
    from cnn_cifar.nn.model import build_model
    from cnn_cifar.training.model_file import save_model

    spec = ModelSpec.model_validate(
        {"layers": [{"name": "conv1", "type": "conv", "filters": 2, "kernel": 3, "activation": "relu"}]}
    )
    net = build_model(spec, (SIZE, SIZE, 3), len(NAMES), seed=1)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(net, path, {"class_names": NAMES, "input_shape": [SIZE, SIZE, 3]})
    return net, path


def training_view(root):
    """(training's array of train/a/x_*, the data set's input shape), or its DataError."""
    try:
        dataset = load_images(root)
    except DataError as e:
        return e
    return dataset.x_train[1], dataset.input_shape


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("plain_mode", ["RGB", "L"])
def test_predict_reads_a_file_as_training_does(tmp_path, name, plain_mode):
    data, refusal = CORPUS[name]
    root, path = image_folder(tmp_path / "d", name, data, plain_mode)
    training = training_view(root)
    if refusal is None:
        assert not isinstance(training, DataError), training
        array, shape = training
        np.testing.assert_array_equal(load_image(path, shape), array)
        assert load_image(path, shape).dtype == np.uint8
    else:
        assert isinstance(training, DataError), f"{name} was accepted by training"
        message = str(training)
        assert "\n" not in message and message.startswith(f"{path}: ") and refusal in message
        with pytest.raises(PredictError) as predicted:
            load_image(path, (SIZE, SIZE, 3))
        assert str(predicted.value) == message


def test_every_exif_orientation_is_the_pixels_as_stored(tmp_path):
    """Neither training nor predict rotates a JPEG by its EXIF tag: orientations 1 to 8 of
    the same pixels are one array (a JPEG's tag does not change its coded pixels)."""
    tagged = [load_image(_written(tmp_path, f"exif{n}.jpg"), (SIZE, SIZE, 3)) for n in range(1, 9)]
    untagged = saved(Image.fromarray(RGB), "JPEG", quality=95)
    untagged = load_image(_written(tmp_path, "untagged.jpg", untagged), (SIZE, SIZE, 3))
    for array in tagged:
        np.testing.assert_array_equal(array, untagged)


def _written(root, name, data=None):
    path = root / name
    path.write_bytes(CORPUS[name][0] if data is None else data)
    return path


def test_the_cli_classifies_what_training_accepts_and_refuses_the_rest_in_its_words(tmp_path, model):
    """One `cnn-cifar predict` over the whole corpus: the accepted files' probabilities are
    the model's on training's arrays, each refused file is one stderr line, word for word
    training's refusal, and the exit status is 1."""
    net, model_path = model
    expected_arrays, expected_errors, paths = {}, {}, []
    for name, (data, _) in sorted(CORPUS.items()):
        root, path = image_folder(tmp_path / name, name, data, "RGB")
        training = training_view(root)
        if isinstance(training, DataError):
            expected_errors[str(path)] = str(training)
        else:
            expected_arrays[str(path)] = training[0]
        paths.append(path)
    result = invoke("predict", model_path, *paths, "--json", "--top-k", len(NAMES))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert {e["image"]: e["error"] for e in doc["errors"]} == expected_errors
    assert result.stderr.strip().splitlines() == [f"Error: {e['error']}" for e in doc["errors"]]
    assert [p["image"] for p in doc["predictions"]] == list(expected_arrays)
    proba = net.predict(np.stack(list(expected_arrays.values())), verbose=0)
    for p, row in zip(doc["predictions"], proba, strict=True):
        got = {t["class"]: t["probability"] for t in p["top"]}
        assert [got[c] for c in NAMES] == pytest.approx(row.tolist(), rel=1e-5)


@pytest.mark.parametrize("name", ["still.gif", "still.webp", "animated.png"])
def test_an_image_folder_with_a_file_it_does_not_read_is_refused_naming_it(tmp_path, name):
    """A GIF or WebP among the images is named, not skipped; in an archive too."""
    root, path = image_folder(tmp_path / "d", name, CORPUS[name][0], "RGB")
    with pytest.raises(DataError) as e:
        load_dataset("image_folder", str(root), cache_dir=tmp_path / "cache")
    assert str(e.value).startswith(f"{path}: ")
    archive = tmp_path / "d.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="cifar")
    with pytest.raises(DataError) as e:
        load_dataset("image_folder", str(archive), cache_dir=tmp_path / "cache")
    assert str(e.value).startswith(f"{archive}:cifar/train/a/x_{name}: ")


def test_files_that_are_not_images_are_still_skipped(tmp_path):
    root, path = image_folder(tmp_path / "d", "rgb.png", CORPUS["rgb.png"][0], "RGB")
    (path.parent / "notes.txt").write_text("not an image")
    (path.parent / ".x.gif").write_bytes(CORPUS["still.gif"][0])  # hidden, as before
    assert len(load_images(root).x_train) == 4


def test_a_training_command_names_the_gif_in_its_image_folder(tmp_path):
    root, path = image_folder(tmp_path / "d", "still.gif", CORPUS["still.gif"][0], "RGB")
    result = invoke("cv", "two_conv", "--data", root, "--results-dir", tmp_path / "results")
    assert result.exit_code == 2
    # the last line: a "decoding ..." notice may come before it
    assert result.output.strip().splitlines()[-1] == f"Error: {path}: GIF {NOT_READ}"
    assert not (tmp_path / "results").exists()
