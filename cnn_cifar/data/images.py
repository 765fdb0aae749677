"""One image file as uint8 pixels: the decoder that image folders (training) and
`cnn-cifar predict` share, so the same file is the same array in both.

What it reads: still PNG and JPEG images, by their content (a multi-picture JPEG gives its
primary image). Everything else is refused in one line naming the file: GIF, WebP, TIFF,
BMP and the rest; an animated PNG (which frame would be meant is a guess); a mode without
an exact 8-bit grayscale or RGB form; transparent pixels.

Orientation: the pixels as stored. A JPEG's EXIF orientation tag is not applied, here or
anywhere else: image folders have always been read that way (as Keras' and TensorFlow's
own image loaders read them), and a model must be asked about the array it was trained on.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image

from .formats import DataError

READ = ("PNG", "JPEG", "MPO")  # Pillow's names; MPO is a JPEG with more pictures after the first
READ_EXTS = (".png", ".jpg", ".jpeg")
# File names an image folder looks at: the ones it reads and, so that they are refused by
# name instead of skipped without a word, the image formats it does not read.
IMAGE_LIKE_EXTS = (
    *READ_EXTS,
    *(".gif", ".webp", ".apng", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jp2", ".jxl"),
    *(".ico", ".ppm", ".pgm", ".pbm", ".pnm", ".tga"),
)

# How each mode Pillow reads from a PNG or JPEG becomes 8-bit grayscale (L) or RGB: exactly,
# or not at all. 16-bit samples keep their high byte (v // 256: libpng's strip-16, which is
# how Pillow itself reads 16-bit RGB); an alpha channel is dropped only where every pixel is
# opaque (a transparent pixel's colour would be a guess); a palette gives its colours.
EXACT = {"1": "L", "L": "L", "RGB": "RGB", "YCbCr": "RGB", "P": "RGB"}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
WITH_ALPHA = {"LA": "L", "RGBA": "RGB", "PA": "RGB"}
REFUSED = "its mode has no exact 8-bit grayscale or RGB form (CMYK, LAB, HSV, 32-bit or float)"


def decode_image(data: bytes, where: str, size: tuple[int, int] | None = None, like: str = "") -> np.ndarray:
    """(H, W) for grayscale, (H, W, 3) otherwise, uint8, or a one-line DataError naming
    `where`. The header is read first: an image that is not a still PNG or JPEG, one of
    another `size` (width, height) than the first one (`like`), and one too large to decode
    safely are refused before their pixels are decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb warning is two lines on the terminal: an error here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_format(im, where)
                if size is not None and im.size != size:
                    (w, h), (ew, eh) = im.size, size
                    raise DataError(f"{where}: image is {w}x{h}, expected {ew}x{eh} like {like}")
                return _as_8_bit(im, where)
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(pixels.group(1)):,} pixels, " if pixels else ""
        raise DataError(
            f"{where}: image too large to decode safely ({count}over Pillow's limit of "
            f"{Image.MAX_IMAGE_PIXELS:,})"
        ) from None
    except Exception as e:
        raise DataError(f"{where}: cannot decode image ({type(e).__name__}: {_reason(e)})") from None


def _check_format(im: Image.Image, where: str) -> None:
    if im.format not in READ:
        name = {"WEBP": "WebP", None: "this kind of"}.get(im.format, im.format)
        raise DataError(f"{where}: {name} images are not read, only PNG and JPEG (convert it to PNG)")
    frames = getattr(im, "n_frames", 1)
    if im.format == "PNG" and frames > 1:
        raise DataError(
            f"{where}: animated PNG ({frames} frames) is not read, only still images "
            "(save the frame you mean as a PNG of its own)"
        )


def _as_8_bit(im: Image.Image, where: str) -> np.ndarray:
    mode = original = im.mode
    if mode == "P" and "transparency" in im.info:  # a palette with a transparent entry
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in EXACT:
        return np.asarray(im if im.mode == EXACT[mode] else im.convert(EXACT[mode]))
    if mode in SIXTEEN_BIT:
        return (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
    if mode in WITH_ALPHA:
        pixels = np.asarray(im.convert("RGBA" if WITH_ALPHA[mode] == "RGB" else "LA"))
        if pixels[..., -1].min() < 255:
            raise DataError(
                f"{where}: image has transparent pixels (mode {original}); flatten it onto a background "
                "first (an opaque alpha channel is dropped, a transparent one cannot be)"
            )
        return pixels[..., :-1] if WITH_ALPHA[mode] == "RGB" else pixels[..., 0]
    raise DataError(f"{where}: image mode {mode} is refused: {REFUSED}")


def _reason(e: Exception) -> str:
    """Pillow's message without the repr of the in-memory file it read from."""
    text = " ".join(str(e).split())
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "the data", text) or "(no message)"


def as_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """`decode_image`'s array as (H, W, channels): grayscale repeated into RGB, as a data set
    that mixes grayscale and colour images stacks them; RGB to grayscale by Pillow's luma
    (ITU-R 601-2), which only `predict` needs (a grayscale data set holds no colour image)."""
    if channels == 1:
        gray = pixels if pixels.ndim == 2 else np.asarray(Image.fromarray(pixels).convert("L"))
        return gray[..., None]
    return pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
