"""Tests for cnn_cifar.data on tiny generated data sets (no network, no keras)."""

import io
import os
import pickle
import struct
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cifar.data import formats, image_folders, sources as data
from cnn_cifar.data.sources import DataError, Dataset

CLASSES = ("cat", "dog", "frog")


# ---------------------------------------------------------------- helpers


def _images(n, size, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def make_image_folder(root, classes=CLASSES, n_train=4, n_test=2, size=8, gray=False, fmt="png"):
    """Write ROOT/{train,test}/<class>/NNNN.png; returns {(split, class): images}."""
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(classes):
            d = Path(root, split, cls)
            d.mkdir(parents=True)
            imgs = _images(n, size, 1 if gray else 3, seed=100 * (split == "test") + k)
            for i, a in enumerate(imgs):
                Image.fromarray(a).save(d / f"{i:04d}.{fmt}")
            made[split, cls] = imgs
    return made


def make_tar(src_dir, out, mode, top=None):
    """Tar the contents of src_dir, optionally below a top-level folder."""
    with tarfile.open(out, mode) as tf:
        for child in sorted(Path(src_dir).iterdir()):
            tf.add(child, arcname=f"{top}/{child.name}" if top else child.name)
    return out


class _Py2Pickler(pickle._Pickler):
    """Writes str/bytes as Python 2 str (BINSTRING), as in the official batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = _save_py2_str


def py2_dumps(obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x under Python 2 lived at numpy.core
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def make_cifar_dir(root, per_class=1, dumps=py2_dumps):
    """cifar-10-batches-py/ with tiny batches; returns (x_train, y_train, x_test, y_test) as HWC."""
    d = Path(root, "cifar-10-batches-py")
    d.mkdir(parents=True)
    y = np.repeat(np.arange(10), per_class)
    xs, ys = [], []
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        x = _images(len(y), 32, 3, seed=i)
        rows = x.transpose(0, 3, 1, 2).reshape(len(y), 3072)  # channel-first rows
        batch = {
            b"batch_label": b"batch %d" % i,
            b"labels": [int(v) for v in y],
            b"data": rows,
            b"filenames": [b"f%d.png" % k for k in range(len(y))],
        }
        (d / name).write_bytes(dumps(batch))
        xs.append(x)
        ys.append(y)
    meta = {
        b"num_cases_per_batch": len(y),
        b"num_vis": 3072,
        b"label_names": [n.encode() for n in data.CIFAR10_CLASSES],
    }
    (d / "batches.meta").write_bytes(dumps(meta))
    (d / "readme.html").write_text("<html></html>")
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def make_cifar_targz(root, out):
    d = Path(root, "cifar-10-batches-py")
    order = [
        "data_batch_4",
        "readme.html",
        "test_batch",
        "data_batch_3",
        "batches.meta",
        "data_batch_2",
        "data_batch_5",
        "data_batch_1",
    ]  # the official member order
    with tarfile.open(out, "w:gz") as tf:
        tf.add(d, arcname=d.name, recursive=False)
        for name in order:
            tf.add(d / name, arcname=f"{d.name}/{name}")
    return out


def save_npz(path, n_train=12, n_test=6, size=8, channels=3, labels=(0, 1, 2), **extra):
    y_tr = np.resize(np.array(labels), n_train)
    y_te = np.resize(np.array(labels), n_test)
    arrays = {
        "x_train": _images(n_train, size, channels, 1),
        "y_train": y_tr,
        "x_test": _images(n_test, size, channels, 2),
        "y_test": y_te,
    }
    arrays.update(extra)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = image_folders.decode_image

    def counting(raw, where, *size_and_like):
        calls.append(where)
        return real(raw, where, *size_and_like)

    monkeypatch.setattr(image_folders, "decode_image", counting)
    return calls


def one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert str(needle) in msg, msg
    return msg


# ---------------------------------------------------------------- image folders


def expected_arrays(made, split, classes=CLASSES):
    return np.concatenate([made[split, c] for c in classes])


def test_image_folder_dir(tmp_path, cache):
    made = make_image_folder(tmp_path / "imgs")
    ds = data.load_dataset("image_folder", str(tmp_path / "imgs"), cache_dir=cache)
    assert ds.class_names == CLASSES and ds.n_classes == 3
    assert ds.input_shape == (8, 8, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, expected_arrays(made, "train"))
    np.testing.assert_array_equal(ds.x_test, expected_arrays(made, "test"))
    np.testing.assert_array_equal(ds.y_train, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(ds.y_test, np.repeat([0, 1, 2], 2))
    assert ds.source == f"image_folder:{os.path.realpath(tmp_path / 'imgs')}"


@pytest.mark.parametrize(
    "mode,ext", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:gz", ".tgz"), ("w:xz", ".tar.xz")]
)
@pytest.mark.parametrize("top", [None, "cifar-mini"])
def test_image_folder_archives(tmp_path, cache, mode, ext, top):
    made = make_image_folder(tmp_path / "imgs")
    arc = make_tar(tmp_path / "imgs", tmp_path / f"imgs{ext}", mode, top)
    assert data.detect_source(str(arc)) == "image_folder"
    ds = data.load_dataset("image_folder", str(arc), cache_dir=cache)
    assert ds.class_names == CLASSES
    np.testing.assert_array_equal(ds.x_train, expected_arrays(made, "train"))
    np.testing.assert_array_equal(ds.y_test, np.repeat([0, 1, 2], 2))
    assert data.probe_source("image_folder", str(arc), cache_dir=tmp_path / "empty") == ((8, 8, 3), CLASSES)


def test_image_folder_dir_with_top_level_folder(tmp_path, cache):
    make_image_folder(tmp_path / "outer" / "cifar")
    assert data.detect_source(str(tmp_path / "outer")) == "image_folder"
    ds = data.load_dataset("image_folder", str(tmp_path / "outer"), cache_dir=cache)
    assert ds.class_names == CLASSES and len(ds.x_train) == 12


def test_image_folder_grayscale_and_jpeg(tmp_path, cache):
    make_image_folder(tmp_path / "g", gray=True, size=28, fmt="jpg")
    ds = data.load_dataset("image_folder", str(tmp_path / "g"), cache_dir=cache)
    assert ds.input_shape == (28, 28, 1) and ds.x_test.shape == (6, 28, 28, 1)
    assert data.probe_source("image_folder", str(tmp_path / "g"), cache_dir=tmp_path / "c2")[0] == (28, 28, 1)


def test_image_folder_mixed_gray_rgb_becomes_rgb(tmp_path, cache):
    make_image_folder(tmp_path / "m")
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "m/test/dog/0000.png")
    ds = data.load_dataset("image_folder", str(tmp_path / "m"), cache_dir=cache)
    assert ds.input_shape == (8, 8, 3)
    assert (ds.x_test[2] == 77).all()  # dog's first test image, gray replicated to RGB


def test_image_folder_size_mismatch_names_file(tmp_path, cache):
    make_image_folder(tmp_path / "s")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "s/test/frog/0001.png")
    with pytest.raises(DataError) as e:
        data.load_dataset("image_folder", str(tmp_path / "s"), cache_dir=cache)
    one_line_error(e, "frog", "0001.png", "16x16", "8x8")


def test_image_folder_class_mismatch(tmp_path, cache):
    make_image_folder(tmp_path / "c")
    (tmp_path / "c/test/frog").rename(tmp_path / "c/test/toad")
    with pytest.raises(DataError) as e:
        data.load_dataset("image_folder", str(tmp_path / "c"), cache_dir=cache)
    one_line_error(e, "toad", "frog")


def test_image_folder_undecodable_image(tmp_path, cache):
    make_image_folder(tmp_path / "b")
    (tmp_path / "b/train/cat/0002.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as e:
        data.load_dataset("image_folder", str(tmp_path / "b"), cache_dir=cache)
    one_line_error(e, "0002.png")


def test_refused_data_is_not_said_to_be_cached_nor_cached(tmp_path, cache, capsys):
    make_image_folder(tmp_path / "b")
    with pytest.raises(DataError):
        (tmp_path / "b/train/cat/0002.png").write_bytes(b"not a png")
        data.load_dataset("image_folder", str(tmp_path / "b"), cache_dir=cache)
    said = capsys.readouterr().err
    assert f"decoding {tmp_path / 'b'} ..." in said and "cached" not in said
    assert not cache.exists() or not any(cache.iterdir())
    (tmp_path / "b/train/cat/0002.png").unlink()
    data.load_dataset("image_folder", str(tmp_path / "b"), cache_dir=cache)
    assert f"the arrays are cached in {cache}" in capsys.readouterr().err
    assert len(list(cache.glob("*.npz"))) == 1


def test_truncated_archive(tmp_path, cache):
    make_image_folder(tmp_path / "imgs")
    arc = make_tar(tmp_path / "imgs", tmp_path / "imgs.tar.xz", "w:xz")
    raw = arc.read_bytes()
    arc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as e:
        data.load_dataset("image_folder", str(arc), cache_dir=cache)
    one_line_error(e, "imgs.tar.xz")


# ---------------------------------------------------------------- npz


def test_npz_rgb(tmp_path, cache):
    arrays = save_npz(tmp_path / "d.npz", size=32)
    ds = data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache)
    assert ds.input_shape == (32, 32, 3) and ds.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])


def test_npz_grayscale_28_and_labels_outside_0_to_k_minus_1(tmp_path, cache):
    save_npz(tmp_path / "g.npz", size=28, channels=1, labels=(0, 1, 2))
    ds = data.load_dataset("npz", str(tmp_path / "g.npz"), cache_dir=cache)
    assert ds.input_shape == (28, 28, 1) and ds.x_train.shape == (12, 28, 28, 1)
    assert ds.class_names == ("0", "1", "2") and ds.y_train.dtype == np.int64
    assert data.probe_source("npz", str(tmp_path / "g.npz"), cache_dir=tmp_path / "c2") == (
        (28, 28, 1),
        ("0", "1", "2"),
    )
    # labels 3, 7, 9 with no class_names: not 0..K-1, refused (they used to become classes 0..2)
    save_npz(tmp_path / "h.npz", size=28, channels=1, labels=(3, 7, 9))
    with pytest.raises(DataError, match=r"labels must be 0..K-1 .* hold 3 distinct values \(3, 7, 9\)"):
        data.probe_source("npz", str(tmp_path / "h.npz"), cache_dir=tmp_path / "c3")


def test_npz_class_names_and_int_pixels(tmp_path, cache):
    a = save_npz(tmp_path / "n.npz", class_names=np.array(["a", "b", "c", "d"]))
    np.savez(tmp_path / "n.npz", **{**a, "x_train": a["x_train"].astype(np.int32)})
    ds = data.load_dataset("npz", str(tmp_path / "n.npz"), cache_dir=cache)
    assert ds.class_names == ("a", "b", "c", "d") and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.y_train, a["y_train"])  # labels index class_names as given


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"y_test": None}, "y_test"),
        ({"x_train": np.full((12, 8, 8, 3), 300, np.int16)}, "0..255"),
        ({"x_train": np.zeros((12, 8, 8, 3), np.float32)}, "float32"),
        ({"y_train": np.zeros(5, np.int64)}, "x_train"),
        ({"y_train": np.zeros(12, np.float64)}, "y_train"),
        ({"x_test": np.zeros((6, 4, 4, 3), np.uint8)}, "x_test"),
    ],
)
def test_npz_malformed(tmp_path, cache, bad, needle):
    save_npz(tmp_path / "bad.npz", **bad)
    with pytest.raises(DataError) as e:
        data.load_dataset("npz", str(tmp_path / "bad.npz"), cache_dir=cache)
    one_line_error(e, "bad.npz", needle)


def test_npz_not_a_zip(tmp_path, cache):
    (tmp_path / "junk.npz").write_bytes(b"hello")
    with pytest.raises(DataError) as e:
        data.load_dataset("npz", str(tmp_path / "junk.npz"), cache_dir=cache)
    one_line_error(e, "junk.npz")


# ---------------------------------------------------------------- cifar10 batches


def test_cifar_batches_folder(tmp_path, cache):
    xtr, ytr, xte, yte = make_cifar_dir(tmp_path)
    for path in (tmp_path / "cifar-10-batches-py", tmp_path):  # the folder or its parent
        ds = data.load_dataset("cifar10", str(path), cache_dir=cache)
        assert ds.class_names == data.CIFAR10_CLASSES and ds.input_shape == (32, 32, 3)
        np.testing.assert_array_equal(ds.x_train, xtr)  # channel-first rows -> HWC
        np.testing.assert_array_equal(ds.y_train, ytr)
        np.testing.assert_array_equal(ds.x_test, xte)
        np.testing.assert_array_equal(ds.y_test, yte)


def test_cifar_official_style_pickle_globals(tmp_path):
    make_cifar_dir(tmp_path)
    raw = (tmp_path / "cifar-10-batches-py/data_batch_1").read_bytes()
    assert raw.startswith(b"\x80\x02}") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    assert b"_codecs" not in raw  # Python 2 style: bytes as BINSTRING


def test_cifar_python3_protocol2_pickles(tmp_path, cache):
    xtr, _, _, _ = make_cifar_dir(tmp_path, dumps=lambda o: pickle.dumps(o, protocol=2))
    ds = data.load_dataset("cifar10", str(tmp_path), cache_dir=cache)
    np.testing.assert_array_equal(ds.x_train, xtr)


def test_cifar_targz(tmp_path, cache):
    xtr, _ytr, _xte, yte = make_cifar_dir(tmp_path / "src")
    arc = make_cifar_targz(tmp_path / "src", tmp_path / "cifar-10-python.tar.gz")
    assert data.detect_source(str(arc)) == "cifar10"
    assert data.probe_source("cifar10", str(arc), cache_dir=cache) == ((32, 32, 3), data.CIFAR10_CLASSES)
    ds = data.load_dataset("cifar10", str(arc), cache_dir=cache)
    np.testing.assert_array_equal(ds.x_train, xtr)
    np.testing.assert_array_equal(ds.y_test, yte)
    assert ds.source == f"cifar10:{os.path.realpath(arc)}"


def test_cifar_missing_batch(tmp_path, cache):
    make_cifar_dir(tmp_path)
    (tmp_path / "cifar-10-batches-py/test_batch").unlink()
    with pytest.raises(DataError) as e:
        data.load_dataset("cifar10", str(tmp_path), cache_dir=cache)
    one_line_error(e, "test_batch")


def _tamper(tmp_path, name, payload):
    make_cifar_dir(tmp_path)
    (tmp_path / "cifar-10-batches-py" / name).write_bytes(payload)


@pytest.mark.parametrize(
    "name,payload,needle",
    [
        ("data_batch_2", py2_dumps({b"data": np.zeros((10, 3072), np.uint8)}), "b'labels'"),
        ("data_batch_3", py2_dumps({b"data": np.zeros((10, 1024), np.uint8), b"labels": [0] * 10}), "3072"),
        (
            "data_batch_3",
            py2_dumps({b"data": np.zeros((10, 3072), np.float32), b"labels": [0] * 10}),
            "uint8",
        ),
        ("data_batch_4", py2_dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [12] * 10}), "0..9"),
        ("data_batch_4", py2_dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [1] * 3}), "labels"),
        ("data_batch_5", py2_dumps([1, 2, 3]), "dict"),
        (
            "test_batch",
            py2_dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 10})[:200],
            "truncated",
        ),
        ("batches.meta", py2_dumps({b"num_vis": 3072}), "label_names"),
        ("data_batch_1", b"", "truncated"),
    ],
)
def test_cifar_malformed_batches(tmp_path, cache, name, payload, needle):
    _tamper(tmp_path, name, payload)
    with pytest.raises(DataError) as e:
        data.load_dataset("cifar10", str(tmp_path), cache_dir=cache)
    one_line_error(e, name, needle)


class _SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _ExecCall(_SystemCall):
    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _OpenCall(_SystemCall):
    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("evil", [_SystemCall, _ExecCall, _OpenCall])
@pytest.mark.parametrize("packed", [False, True])
def test_cifar_malicious_pickle_refused(tmp_path, cache, evil, packed):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({b"data": evil(marker), b"labels": [0]}, protocol=2)
    _tamper(tmp_path / "src", "data_batch_1", payload)
    path = tmp_path / "src"
    if packed:
        path = make_cifar_targz(tmp_path / "src", tmp_path / "evil.tar.gz")
    with pytest.raises(DataError) as e:
        data.load_dataset("cifar10", str(path), cache_dir=cache)
    one_line_error(e, "data_batch_1", "refusing to load global")
    assert not marker.exists()


class _Plain:
    pass


def test_cifar_unpickler_refuses_reconstructor():
    with pytest.raises(DataError, match=r"copy_?reg\._reconstructor"):
        formats._unpickle(pickle.dumps(_Plain(), protocol=0), "x")


# ---------------------------------------------------------------- keras source (faked)


def test_cifar10_keras_source_faked(monkeypatch):
    x = np.zeros((4, 32, 32, 3), np.uint8)
    y = np.array([[0], [1], [2], [9]], np.uint8)
    fake = types.SimpleNamespace(
        datasets=types.SimpleNamespace(
            cifar10=types.SimpleNamespace(load_data=lambda: ((x, y), (x[:2], y[:2])))
        )
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    ds = data.load_dataset("cifar10")
    assert ds.y_train.tolist() == [0, 1, 2, 9] and ds.y_train.dtype == np.int64
    assert ds.class_names == data.CIFAR10_CLASSES and ds.source == "cifar10:keras"
    assert data.probe_source("cifar10", None) == ((32, 32, 3), data.CIFAR10_CLASSES)


# ---------------------------------------------------------------- detect_source / errors


def test_detect_source(tmp_path):
    save_npz(tmp_path / "a.npz")
    make_cifar_dir(tmp_path / "cif")
    make_image_folder(tmp_path / "imgs")
    assert data.detect_source(str(tmp_path / "a.npz")) == "npz"
    assert data.detect_source(str(tmp_path / "cif")) == "cifar10"
    assert data.detect_source(str(tmp_path / "cif/cifar-10-batches-py")) == "cifar10"
    assert data.detect_source(str(tmp_path / "imgs")) == "image_folder"
    assert data.load_dataset("auto", str(tmp_path / "a.npz"), cache_dir=tmp_path / "c").n_classes == 3


def test_detect_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    with tarfile.open(tmp_path / "other.tar", "w") as tf:
        tf.add(tmp_path / "notes.txt", arcname="notes.txt")
    for name in ("missing", "empty", "notes.txt", "other.tar"):
        with pytest.raises(DataError) as e:
            data.detect_source(str(tmp_path / name))
        one_line_error(e, name)


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown data source"):
        data.load_dataset("mnist", str(tmp_path))
    with pytest.raises(DataError, match="needs a path"):
        data.load_dataset("npz")
    with pytest.raises(DataError, match="no such file"):
        data.probe_source("npz", str(tmp_path / "nope.npz"))


# ---------------------------------------------------------------- probe


def test_probe_decodes_one_image(tmp_path, count_decodes):
    make_image_folder(tmp_path / "imgs", size=32)
    arc = make_tar(tmp_path / "imgs", tmp_path / "i.tar.gz", "w:gz", top="x")
    for path in (tmp_path / "imgs", arc):
        count_decodes.clear()
        assert data.probe_source("image_folder", str(path), cache_dir=tmp_path / "c") == (
            (32, 32, 3),
            CLASSES,
        )
        assert len(count_decodes) == 1


def test_probe_uses_cache_metadata(tmp_path, cache, monkeypatch):
    make_image_folder(tmp_path / "imgs", gray=True)
    data.load_dataset("image_folder", str(tmp_path / "imgs"), cache_dir=cache)

    def boom(path):
        raise AssertionError("probe should have used the cache")

    monkeypatch.setitem(data.PROBES, "image_folder", boom)
    assert data.probe_source("image_folder", str(tmp_path / "imgs"), cache_dir=cache) == ((8, 8, 1), CLASSES)


# ---------------------------------------------------------------- subsets


def test_subset_stratified_and_seeded(tmp_path, cache):
    classes = ("a", "b", "c", "d")
    make_image_folder(tmp_path / "imgs", classes=classes, n_train=20, n_test=5, size=4)
    path = str(tmp_path / "imgs")
    ds = data.load_dataset("image_folder", path, subset=16, seed=3, cache_dir=cache)
    assert len(ds.y_train) == 16 and len(ds.y_test) == 4  # 16 * 20/80
    assert np.bincount(ds.y_train).tolist() == [4, 4, 4, 4]
    assert np.bincount(ds.y_test).tolist() == [1, 1, 1, 1]
    again = data.load_dataset("image_folder", path, subset=16, seed=3, cache_dir=cache)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    other = data.load_dataset("image_folder", path, subset=16, seed=4, cache_dir=cache)
    assert not np.array_equal(ds.x_train, other.x_train)
    full = data.load_dataset("image_folder", path, subset=80, cache_dir=cache)
    assert len(full.y_train) == 80 and len(full.y_test) == 20
    with pytest.raises(DataError, match="--subset 1000: the data set has only 80 training images"):
        data.load_dataset("image_folder", path, subset=1000, cache_dir=cache)


def test_stratified_subset_direct():
    x = np.arange(100)
    y = np.repeat([0, 1], [80, 20])
    xs, ys = data.stratified_subset(x, y, 10, seed=0)
    assert np.bincount(ys).tolist() == [8, 2]
    np.testing.assert_array_equal(y[xs], ys)  # x and y stay paired
    assert data.stratified_subset(x, y, 100, 0)[0] is x
    xs, ys = data.stratified_subset(x, y, 1, seed=0)  # fewer than classes: plain seeded pick
    assert len(ys) == 1
    with pytest.raises(DataError):
        data.load_dataset("npz", "x.npz", subset=0)


# ---------------------------------------------------------------- cache


def test_cache_second_load_does_not_decode(tmp_path, cache, count_decodes):
    made = make_image_folder(tmp_path / "imgs")
    arc = make_tar(tmp_path / "imgs", tmp_path / "i.tar", "w")
    first = data.load_dataset("image_folder", str(arc), cache_dir=cache)
    assert len(count_decodes) == 18
    second = data.load_dataset("image_folder", str(arc), cache_dir=cache)
    assert len(count_decodes) == 18
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(second.x_test, expected_arrays(made, "test"))
    assert second.class_names == CLASSES and second.source == first.source
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp files left behind


@pytest.mark.parametrize("kind", ["npz", "cifar10"])
def test_cache_used_for_npz_and_cifar(tmp_path, cache, monkeypatch, kind):
    path = tmp_path / "d.npz"
    if kind == "npz":
        save_npz(path)
    else:
        make_cifar_dir(tmp_path)
        path = tmp_path / "cifar-10-batches-py"
    first = data.load_dataset(kind, str(path), cache_dir=cache)
    monkeypatch.setitem(data.LOADERS, kind, lambda p: pytest.fail("decoded again"))
    second = data.load_dataset(kind, str(path), cache_dir=cache)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert second.class_names == first.class_names


def test_cache_invalidated_by_change(tmp_path, cache, count_decodes):
    make_image_folder(tmp_path / "imgs")
    path = str(tmp_path / "imgs")
    data.load_dataset("image_folder", path, cache_dir=cache)
    Image.fromarray(np.full((8, 8, 3), 5, np.uint8)).save(tmp_path / "imgs/train/cat/0000.png")
    ds = data.load_dataset("image_folder", path, cache_dir=cache)
    assert len(count_decodes) == 36 and (ds.x_train[0] == 5).all()
    # an archive rewritten in place gets a new key as well
    save_npz(tmp_path / "d.npz", labels=(0, 1))
    assert data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache).n_classes == 2
    save_npz(tmp_path / "d.npz", labels=(0, 1, 2, 3))
    st = os.stat(tmp_path / "d.npz")
    os.utime(tmp_path / "d.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache).n_classes == 4


def test_corrupt_cache_entry_is_redecoded(tmp_path, cache):
    save_npz(tmp_path / "d.npz")
    data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        ds = data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache)
    assert ds.n_classes == 3
    assert data.load_dataset("npz", str(tmp_path / "d.npz"), cache_dir=cache).n_classes == 3


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_CIFAR_CACHE", str(tmp_path / "x"))
    assert data.cache_dir_default() == tmp_path / "x"
    monkeypatch.delenv("CNN_CIFAR_CACHE")
    assert data.cache_dir_default() == Path.home() / ".cache" / "cnn-cifar"


def test_dataset_properties():
    ds = Dataset(
        np.zeros((2, 5, 6, 1), np.uint8),
        np.zeros(2, np.int64),
        np.zeros((1, 5, 6, 1), np.uint8),
        np.zeros(1, np.int64),
        ("a", "b"),
        "npz:x",
    )
    assert ds.input_shape == (5, 6, 1) and ds.n_classes == 2
    with pytest.raises(AttributeError):
        ds.source = "y"
