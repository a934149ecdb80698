"""NAS datasets: the digits split and the CIFAR-10 binary / MNIST IDX loaders on tiny files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from deepmorning.nas import data
from deepmorning.nas.data import Splits, load_cifar10, load_dataset, load_digits, load_mnist
from deepmorning.platform.errors import DeepmorningError

RECORDS = 12  # per CIFAR batch file


# --------------------------------------------------------------------------- file writers


def write_cifar(folder: Path, records: int = RECORDS, seed: int = 0) -> dict[str, tuple]:
    """Write data_batch_1..5.bin and test_batch.bin; return {file: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in (*data.CIFAR_TRAIN_FILES, data.CIFAR_TEST_FILE):
        labels = rng.integers(0, 10, records).astype(np.uint8)
        images = rng.integers(0, 256, (records, 3, 32, 32)).astype(np.uint8)
        rows = np.concatenate([labels[:, None], images.reshape(records, -1)], axis=1)
        (folder / name).write_bytes(rows.tobytes())
        written[name] = (images, labels)
    return written


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train=30, n_test=8, gz=False, seed=0, size=28) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, size, size)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, array in arrays.items():
        magic = data.IDX_IMAGES_MAGIC if "images" in key else data.IDX_LABELS_MAGIC
        payload = idx_bytes(magic, array)
        name = data.MNIST_FILES[key]
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return arrays


def raises(match: str):
    return pytest.raises(DeepmorningError, match=re.escape(match))


def check_normalised(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    assert np.allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    assert np.allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-3)


# --------------------------------------------------------------------------- spec


def test_parse_dataset_spec(tmp_path):
    assert data.parse_dataset_spec("digits") == ("digits", None)
    assert data.parse_dataset_spec("CIFAR10:/x/y") == ("cifar10", Path("/x/y"))
    assert data.parse_dataset_spec(f"mnist:{tmp_path}") == ("mnist", tmp_path)
    with raises("unknown dataset 'imagenet:/x'"):
        data.parse_dataset_spec("imagenet:/x")
    with raises("dataset 'cifar10' needs the path"):
        data.parse_dataset_spec("cifar10")
    with raises("dataset 'mnist' needs the path"):
        data.parse_dataset_spec("mnist:")
    with raises("'digits' is embedded and takes no path"):
        data.parse_dataset_spec("digits:/x")
    with raises("unknown dataset"):
        load_dataset("svhn")


# --------------------------------------------------------------------------- digits


def test_digits_fixed_disjoint_split():
    a = load_digits(seed=0)
    b = load_dataset("digits", seed=123)
    assert isinstance(a, Splits) and a.name == "digits"
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part)), part
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1079, 359, 359)
    assert a.y_train.dtype == np.int64 and set(a.y_val.tolist()) == set(range(10))
    check_normalised(a.x_train)
    train, val, test = data.digits_split_indices()
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted([*train, *val, *test]) == list(range(1797))
    from sklearn.datasets import load_digits as sk

    raw = sk()
    assert np.array_equal(a.y_val, raw.target[val])
    assert np.allclose(a.x_test[:, 0] * a.std[0] + a.mean[0], raw.images[test] / 16.0, atol=1e-5)
    # stratified: every class has about a fifth of its images in validation
    counts = np.bincount(a.y_val, minlength=10) / np.bincount(raw.target, minlength=10)
    assert np.all(np.abs(counts - 0.2) < 0.02)
    assert "digits: 1x8x8 images, 10 classes, train" in a.describe()


def test_digits_limit():
    s = load_dataset("digits", limit=100)
    assert len(s.y_train) == 100
    assert 1 <= len(s.y_val) < 100 and 1 <= len(s.y_test) < 100
    with raises("limit must be a positive number"):
        load_dataset("digits", limit=0)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_loads_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    written = write_cifar(folder)
    s = load_cifar10(folder, val_size=10)
    n_all = 5 * RECORDS
    assert s.name == "cifar10" and s.num_classes == 10
    assert s.input_shape == (3, 32, 32)
    assert s.x_train.shape == (n_all - 10, 3, 32, 32)
    assert (len(s.y_val), len(s.y_test)) == (10, RECORDS)
    assert s.x_train.dtype == s.x_val.dtype == s.x_test.dtype == np.float32
    assert s.y_train.dtype == s.y_val.dtype == s.y_test.dtype == np.int64
    train_labels = np.concatenate([written[n][1] for n in data.CIFAR_TRAIN_FILES])
    assert np.array_equal(np.concatenate([s.y_train, s.y_val]), train_labels)
    assert np.array_equal(s.y_val, train_labels[-10:])  # the *last* images are validation
    assert np.array_equal(s.y_test, written[data.CIFAR_TEST_FILE][1])
    check_normalised(s.x_train)
    # the pixels round-trip through the normalisation
    raw = (
        s.x_test * np.array(s.std, np.float32)[:, None, None]
        + np.array(s.mean, np.float32)[:, None, None]
    )
    assert np.allclose(raw * 255, written[data.CIFAR_TEST_FILE][0], atol=1e-2)
    # the parent directory is accepted too
    parent = load_cifar10(tmp_path, val_size=10)
    assert np.array_equal(parent.x_val, s.x_val)
    assert "cifar10: 3x32x32 images, 10 classes, train 50 / val 10 / test 12" == s.describe()


def test_cifar10_rgb_plane_order(tmp_path):
    folder = tmp_path / "c"
    write_cifar(folder)
    record = np.zeros(data.CIFAR_RECORD, np.uint8)
    record[0] = 7
    record[1 : 1 + 1024] = 255  # R plane all 255, G and B planes 0
    (folder / data.CIFAR_TEST_FILE).write_bytes(record.tobytes())
    s = load_cifar10(folder, val_size=5)
    assert s.y_test.tolist() == [7]
    img = s.x_test[0] * np.array(s.std, np.float32)[:, None, None]
    img += np.array(s.mean, np.float32)[:, None, None]
    assert np.allclose(img[0], 1.0, atol=1e-5) and np.allclose(img[1:], 0.0, atol=1e-5)
    assert s.x_test[0, 0].min() > s.x_test[0, 1:].max()


def test_cifar10_limit_and_load_dataset(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-bin", records=100)
    s = data.load_cifar10(tmp_path, limit=45, val_size=50)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (45, 5, 10)
    check_normalised(s.x_train)
    tiny = data.load_cifar10(tmp_path, limit=1, val_size=50)
    assert (len(tiny.y_train), len(tiny.y_val), len(tiny.y_test)) == (1, 1, 1)
    with raises("too few to hold out 5000 for validation"):
        load_dataset(f"cifar10:{tmp_path}", limit=10)


def test_cifar10_errors(tmp_path):
    with raises(f"CIFAR-10 path {tmp_path / 'nope'} does not exist"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}")
    with raises("CIFAR-10 file data_batch_1.bin not found in"):
        load_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar(folder)
    (folder / "data_batch_3.bin").unlink()
    with raises("CIFAR-10 file data_batch_3.bin is missing from"):
        load_cifar10(tmp_path, val_size=5)
    write_cifar(folder)
    blob = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(blob[:-100])
    with raises("test_batch.bin is truncated or malformed: its 36776 bytes are not a whole"):
        load_cifar10(folder, val_size=5)
    (folder / "test_batch.bin").write_bytes(b"")
    with raises("test_batch.bin is empty"):
        load_cifar10(folder, val_size=5)
    bad = bytearray(blob)
    bad[0] = 42
    (folder / "test_batch.bin").write_bytes(bytes(bad))
    with raises("is malformed: found label 42"):
        load_cifar10(folder, val_size=5)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(b"x")
    with raises("is a file, not the directory of the binary batches (extract it first)"):
        load_cifar10(archive)


# --------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loads_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    s = load_mnist(tmp_path, val_size=6)
    assert s.name == "mnist" and s.input_shape == (1, 28, 28) and s.num_classes == 10
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (24, 6, 8)
    assert s.x_train.dtype == np.float32 and s.y_test.dtype == np.int64
    assert np.array_equal(s.y_train, arrays["train_labels"][:24])
    assert np.array_equal(s.y_val, arrays["train_labels"][24:])
    assert np.array_equal(s.y_test, arrays["test_labels"])
    check_normalised(s.x_train)
    raw = s.x_test[:, 0] * s.std[0] + s.mean[0]  # back to [0, 1]
    assert 0.0 <= s.mean[0] <= 1.0
    assert np.allclose(raw * 255, arrays["test_images"], atol=1e-2)
    limited = load_mnist(tmp_path, limit=12, val_size=6)
    assert (len(limited.y_train), len(limited.y_val), len(limited.y_test)) == (12, 3, 4)
    check_normalised(limited.x_train)
    with raises("MNIST has only 30 training images, too few to hold out 5000 for validation"):
        load_dataset(f"mnist:{tmp_path}")


def test_mnist_errors(tmp_path):
    with raises(f"MNIST path {tmp_path / 'gone'} does not exist"):
        load_mnist(tmp_path / "gone")
    with raises("MNIST file train-images-idx3-ubyte (or train-images-idx3-ubyte.gz) is missing"):
        load_mnist(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with raises("MNIST file t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz) is missing"):
        load_mnist(tmp_path, val_size=5)
    write_mnist(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(good[:-1])
    with raises("train-images-idx3-ubyte is truncated: its header promises 30 x 28 x 28 = 23520"):
        load_mnist(tmp_path, val_size=5)
    images.write_bytes(good[:10])
    with raises("shorter than its 16-byte IDX header"):
        load_mnist(tmp_path, val_size=5)
    images.write_bytes(struct.pack(">I", 2049) + good[4:])
    with raises("train-images-idx3-ubyte has bad magic number 2049, expected 2051"):
        load_mnist(tmp_path, val_size=5)
    images.write_bytes(good)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(struct.pack(">I", 2051) + labels.read_bytes()[4:])
    with raises("train-labels-idx1-ubyte has bad magic number 2051, expected 2049"):
        load_mnist(tmp_path, val_size=5)
    write_mnist(tmp_path, n_train=30)
    labels.write_bytes(idx_bytes(data.IDX_LABELS_MAGIC, np.zeros(29)))
    with raises("disagree: 30 images but 29 labels"):
        load_mnist(tmp_path, val_size=5)


def test_mnist_gz_truncated(tmp_path):
    folder = tmp_path / "gz"
    write_mnist(folder, gz=True)
    target = folder / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:40])
    with raises("t10k-images-idx3-ubyte.gz cannot be decompressed: it is truncated or not valid"):
        load_mnist(folder, val_size=5)
    target.write_bytes(b"not gzip at all")
    with raises("t10k-images-idx3-ubyte.gz cannot be decompressed"):
        load_mnist(folder, val_size=5)


def test_every_error_is_one_line(tmp_path):
    specs = ["foo", "cifar10", f"cifar10:{tmp_path}", f"mnist:{tmp_path}", f"mnist:{tmp_path}/x"]
    for spec in specs:
        with pytest.raises(DeepmorningError) as info:
            load_dataset(spec)
        assert "\n" not in str(info.value) and str(info.value)


# --------------------------------------------------------------------------- strokes


def test_stroke_pixels_hand_built():
    assert data.stroke_pixels(0, 8, 8) == [(8, c) for c in range(3, 14)]  # horizontal
    assert data.stroke_pixels(2, 8, 8) == [(r, 8) for r in range(3, 14)]  # vertical
    assert data.stroke_pixels(1, 8, 8) == [(r, r) for r in range(3, 14)]  # diagonal
    assert data.stroke_pixels(3, 8, 8) == [(r, 16 - r) for r in range(3, 14)]  # anti-diagonal
    assert data.stroke_pixels(0, 4, 2) == [(4, c) for c in range(0, 8)]  # clipped at the border


def test_generate_strokes_deterministic_with_correct_labels():
    x, y = data.generate_strokes(40, seed=7)
    x2, y2 = data.generate_strokes(40, seed=7)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(data.generate_strokes(40, seed=8)[0], x)
    assert x.shape == (40, 1, 16, 16) and x.dtype == np.float32 and set(np.unique(x)) <= {0, 1}
    assert set(y.tolist()) == {0, 1, 2, 3}
    clean, labels = data.generate_strokes(40, seed=7, keep=1.0, noise=0.0)
    assert np.array_equal(labels, y)  # the noise settings do not change the classes
    for image, label in zip(clean[:, 0], labels, strict=True):
        rows, cols = np.nonzero(image)
        assert len(rows) >= 9  # a whole stroke, at most 2 pixels clipped at the border
        invariant = {0: rows, 1: rows - cols, 2: cols, 3: rows + cols}[int(label)]
        assert len(set(invariant.tolist())) == 1, (label, rows, cols)


def test_load_strokes_splits():
    a = load_dataset("strokes", seed=3)
    b = data.load_strokes()
    assert a.name == "strokes" and a.input_shape == (1, 16, 16) and a.num_classes == 4
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == data.STROKES_SPLIT
    for part in ("x_train", "y_val", "x_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part)), part
    assert min(np.bincount(a.y_train)) > 200  # four balanced classes
    check_normalised(a.x_train)
    with raises("'strokes' is embedded and takes no path"):
        data.parse_dataset_spec("strokes:/x")
