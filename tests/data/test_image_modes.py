"""Every image mode Pillow reads from a PNG or JPEG is converted to 8-bit grayscale or RGB
exactly, or refused in one line naming the file and the mode; the header is checked
before the pixels are decoded; class folders without images are named as such."""

import io
import warnings

import numpy as np
import pytest
from conftest import png_48_bit
from PIL import Image

from cnn_cifar.data.formats import DataError
from cnn_cifar.data.image_folders import load_images


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def folder_of(root, train_image: bytes, ext="png", size=4):
    """train/{a,b}/ and test/{a,b}/: one plain RGB image each, and train/a/x.<ext> as given."""
    plain = png_bytes(Image.new("RGB", (size, size), (10, 20, 30)))
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "0.png").write_bytes(plain)
    (root / "train" / "a" / f"x.{ext}").write_bytes(train_image)
    return root


def image_of(dataset, index=1) -> np.ndarray:
    return dataset.x_train[index]  # train/a/0.png first, then train/a/x.png


SIXTEEN = np.array([[0, 255, 256, 40000], [65535, 1, 32768, 65280]] * 2, dtype=np.uint16)


@pytest.mark.parametrize(
    "make, expected",
    [
        # 16-bit grayscale: the high byte of every sample (was clipped to 255 by convert("RGB"))
        (
            lambda: png_bytes(Image.fromarray(SIXTEEN)),
            np.repeat((SIXTEEN >> 8).astype(np.uint8)[..., None], 3, 2),
        ),
        # 16-bit RGB: Pillow keeps the high byte itself
        (
            lambda: png_48_bit(np.stack([SIXTEEN] * 3, axis=-1)),
            np.stack([(SIXTEEN >> 8).astype(np.uint8)] * 3, -1),
        ),
        # 1-bit: 0 and 255
        (
            lambda: png_bytes(Image.fromarray(np.eye(4, dtype=bool))),
            np.repeat((np.eye(4) * 255).astype(np.uint8)[..., None], 3, 2),
        ),
        # a palette: its colours
        (lambda: png_bytes(_palette([200, 100, 50])), np.full((4, 4, 3), (200, 100, 50), np.uint8)),
        # an opaque alpha channel is dropped
        (
            lambda: png_bytes(Image.new("RGBA", (4, 4), (5, 6, 7, 255))),
            np.full((4, 4, 3), (5, 6, 7), np.uint8),
        ),
        (lambda: png_bytes(Image.new("LA", (4, 4), (90, 255))), np.full((4, 4, 3), 90, np.uint8)),
    ],
    ids=["I;16", "RGB 16-bit", "1", "P", "RGBA opaque", "LA opaque"],
)
def test_modes_converted_exactly(tmp_path, make, expected):
    dataset = load_images(folder_of(tmp_path / "d", make()))
    np.testing.assert_array_equal(image_of(dataset), expected)
    assert dataset.x_train.dtype == np.uint8


@pytest.mark.parametrize(
    "make, ext, words",
    [
        (
            lambda: png_bytes(Image.new("RGBA", (4, 4), (5, 6, 7, 128))),
            "png",
            "transparent pixels (mode RGBA)",
        ),
        (lambda: png_bytes(Image.new("LA", (4, 4), (90, 0))), "png", "transparent pixels (mode LA)"),
        (
            lambda: png_bytes(_palette_with_transparency()),
            "png",
            "transparent pixels (mode P)",  # a palette with a transparent entry
        ),
        (lambda: _jpeg(Image.new("CMYK", (4, 4))), "jpg", "image mode CMYK is refused"),
    ],
    ids=["RGBA", "LA", "P transparent", "CMYK"],
)
def test_modes_without_an_exact_form_are_refused_naming_the_file(tmp_path, make, ext, words):
    with pytest.raises(DataError) as e:
        load_images(folder_of(tmp_path / "d", make(), ext=ext))
    message = str(e.value)
    assert "\n" not in message and f"train/a/x.{ext}" in message and words in message


def _palette(colours: list[int]) -> Image.Image:
    image = Image.new("P", (4, 4), 0)
    image.putpalette(colours)
    return image


def _palette_with_transparency() -> Image.Image:
    image = _palette([0, 0, 0, 255, 255, 255])
    image.info["transparency"] = 0
    return image


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


def test_an_image_of_another_size_is_refused_from_its_header(tmp_path, monkeypatch):
    big = png_bytes(Image.new("RGB", (64, 48)))
    decoded = []
    real_asarray = np.asarray

    def watch(a, *args, **kwargs):
        if isinstance(a, Image.Image):
            decoded.append(a.size)
        return real_asarray(a, *args, **kwargs)

    monkeypatch.setattr(np, "asarray", watch)
    with pytest.raises(DataError, match=r"train/a/x\.png: image is 64x48, expected 4x4 like .*0\.png"):
        load_images(folder_of(tmp_path / "d", big))
    assert (64, 48) not in decoded  # refused before its pixels were read


def test_an_image_too_large_to_decode_is_refused_without_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4x4 passes; 40x30 is a "bomb"
    root = tmp_path / "d"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "0.png").write_bytes(png_bytes(Image.new("RGB", (40, 30))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(
            DataError, match=r"too large to decode safely \(1,200 pixels, over Pillow's limit of 1,000\)"
        ):
            load_images(root)


def test_a_corrupt_image_is_named_without_the_repr_of_a_buffer(tmp_path):
    with pytest.raises(DataError) as e:
        load_images(folder_of(tmp_path / "d", b"\x89PNG\r\n\x1a\n broken"))
    assert "train/a/x.png: cannot decode image (UnidentifiedImageError" in str(e.value)
    assert "BytesIO" not in str(e.value) and "0x" not in str(e.value)


@pytest.mark.parametrize(
    "emptied, words",
    [
        ("train/b", "b has no training images (train/<class>/ missing or empty)"),
        ("test/a", "a has no test images (test/<class>/ missing or empty)"),
    ],
)
def test_a_class_folder_without_images_is_named_as_such(tmp_path, emptied, words):
    root = folder_of(tmp_path / "d", png_bytes(Image.new("RGB", (4, 4))))
    for f in (root / emptied).iterdir():
        f.unlink()
    with pytest.raises(DataError) as e:
        load_images(root)
    assert str(e.value) == f"{root}: {words}"
