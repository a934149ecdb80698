"""Datasets for the architecture search: train / validation / test splits as normalised arrays.

Three sources, chosen by a spec string (``--dataset``):

``digits``
    scikit-learn's 8x8 grey digits (1,797 images, shipped with scikit-learn, no download): the
    embedded default that lets a search run on a laptop in minutes. A *fixed* stratified 60/20/20
    train/validation/test split (its own constant seed, not the search seed) so that results of
    different searches are comparable.
``strokes``
    a generated task on which architectures differ (issue 11): 16x16 images of one dotted line
    through the image (11 pixels long, each pixel kept with probability 0.5) in one of four
    orientations (the class: horizontal, diagonal, vertical, anti-diagonal) on salt noise (8 % of
    pixels). A single pixel says nothing about the class and a 3x3 window little (two neighbouring
    dots occur in every direction in the noise too), so accuracy grows with the receptive field
    and with filters shaped like the strokes; an architecture of 1x1 filters is at chance (25 %).
    1,000 / 500 / 500 images for train / validation / test from a fixed seed.
``cifar10:PATH``
    CIFAR-10 from the standard *binary* distribution (``cifar-10-batches-bin``:
    ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``; each record is one label
    byte followed by 3,072 bytes, the R, G and B planes of a 32x32 image, row-major). PATH is the
    directory holding the ``.bin`` files or its parent. The pickled "python version" is never read.
``mnist:PATH``
    MNIST from the IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped) in PATH.

Data handling, following Zoph & Le (ICLR 2017), Sec. 4.1: on CIFAR-10 the paper keeps 5,000 of
the 50,000 training images for validation (the reward signal) and trains children on the other
45,000; we hold out the *last* 5,000 training images (MNIST: likewise the last 5,000 of 60,000).
The paper whitens the images; we implement that as per-channel standardisation (subtract the
mean and divide by the standard deviation of each colour channel, both measured on the training
split only and applied unchanged to validation and test), not ZCA whitening. The paper also
upsamples each image, takes a random 32x32 crop and applies random horizontal flips; this module
does no augmentation: it returns the fixed, normalised arrays, and any augmentation belongs to
the child-training loop.

Everything a user can get wrong (an unknown dataset name, a missing path or file, a truncated or
malformed file, a bad IDX magic number) raises :class:`DeepmorningError` with one sentence naming
the problem. Nothing here uses ``pickle``.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmorning.platform.errors import DeepmorningError

DATASETS = ("digits", "strokes", "cifar10", "mnist")
DEFAULT_VAL_SIZE = 5000  # Zoph & Le 2017, Sec. 4.1: 45,000 train / 5,000 validation on CIFAR-10

DIGITS_SPLIT_SEED = 20170424  # fixed: the digits split never depends on the search seed
DIGITS_VAL_FRACTION = 0.2
STROKES_SEED = 20170426  # fixed: like digits, the strokes data never depends on the search seed
STROKES_SPLIT = (1000, 500, 500)  # train / validation / test images
STROKES_SIZE = 16
STROKES_LENGTH = 11
STROKES_KEEP = 0.5
STROKES_NOISE = 0.08
# (row step, column step) of each class: horizontal, diagonal, vertical, anti-diagonal
STROKES_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))
DIGITS_TEST_FRACTION = 0.2

CIFAR_DIR = "cifar-10-batches-bin"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_RECORD = 1 + 3 * 32 * 32

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset split three ways; images are float32 N x C x H x W, normalised; labels int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...] = ()  # per-channel statistics of the raw training split ...
    std: tuple[float, ...] = ()  # ... (after scaling to [0, 1]) used for normalisation

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
                raise ValueError(
                    f"{part} split needs N x C x H x W images and N labels, "
                    f"got {x.shape} and {y.shape}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(f"{part} images are {x.shape[1:]}, train {self.x_train.shape[1:]}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def describe(self) -> str:
        """One line: name, image shape, classes and split sizes."""
        c, h, w = self.input_shape
        return (
            f"{self.name}: {c}x{h}x{w} images, {self.num_classes} classes, "
            f"train {len(self.y_train)} / val {len(self.y_val)} / test {len(self.y_test)}"
        )


# --------------------------------------------------------------------------- spec and dispatch


def parse_dataset_spec(spec: str) -> tuple[str, Path | None]:
    """Split ``digits`` | ``cifar10:PATH`` | ``mnist:PATH`` into (name, path or None)."""
    text = (spec or "").strip()
    name, sep, raw_path = text.partition(":")
    name = name.strip().lower()
    if name not in DATASETS:
        raise DeepmorningError(
            f"unknown dataset {spec!r}: expected 'digits', 'strokes', 'cifar10:PATH' or "
            "'mnist:PATH'"
        )
    raw_path = raw_path.strip()
    if name in ("digits", "strokes"):
        if sep:
            raise DeepmorningError(
                f"dataset '{name}' is embedded and takes no path, got {spec!r}")
        return name, None
    if not raw_path:
        raise DeepmorningError(
            f"dataset {name!r} needs the path to its files, e.g. '{name}:/data/{name}'"
        )
    return name, Path(raw_path).expanduser()


def load_dataset(spec: str, *, seed: int = 0, limit: int | None = None) -> Splits:
    """Load the dataset a spec string names.

    ``limit`` keeps the first ``limit`` training examples and proportionally many (at least one)
    validation and test examples; the normalisation statistics come from the kept training set.

    ``seed`` is passed to the digits loader for a uniform interface; no split depends on it.
    """
    name, path = parse_dataset_spec(spec)
    if name == "digits":
        return load_digits(seed=seed, limit=limit)
    if name == "strokes":
        return load_strokes(limit=limit)
    if name == "cifar10":
        return load_cifar10(path, limit=limit)
    return load_mnist(path, limit=limit)


# --------------------------------------------------------------------------- digits


def load_digits(seed: int = 0, limit: int | None = None) -> Splits:
    """scikit-learn's 8x8 digits with a fixed stratified 60/20/20 split, standardised.

    ``seed`` is accepted for a uniform interface and deliberately ignored: the split uses the
    constant :data:`DIGITS_SPLIT_SEED` so that searches with different seeds see the same data.
    """
    del seed
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :] / 16.0  # grey levels 0..16
    labels = bunch.target.astype(np.int64)
    train, val, test = digits_split_indices()
    return _finish(
        "digits",
        (images[train], labels[train]),
        (images[val], labels[val]),
        (images[test], labels[test]),
        num_classes=10,
        limit=limit,
    )


def digits_split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed stratified (train, validation, test) indices into scikit-learn's digits."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    labels = sk_load_digits().target
    index = np.arange(len(labels))
    n_test = round(len(labels) * DIGITS_TEST_FRACTION)
    n_val = round(len(labels) * DIGITS_VAL_FRACTION)
    rest, test = train_test_split(
        index, test_size=n_test, stratify=labels, random_state=DIGITS_SPLIT_SEED
    )
    train, val = train_test_split(
        rest, test_size=n_val, stratify=labels[rest], random_state=DIGITS_SPLIT_SEED
    )
    return train, val, test


# --------------------------------------------------------------------------- strokes


def stroke_pixels(label: int, row: int, col: int, size: int = STROKES_SIZE,
                  length: int = STROKES_LENGTH) -> list[tuple[int, int]]:
    """The pixels of a full (undotted) stroke of class ``label`` centred at (row, col).

    The stroke runs ``length // 2`` steps either side of the centre in the class's direction
    (:data:`STROKES_DIRECTIONS`); pixels outside the image are dropped.
    """
    dr, dc = STROKES_DIRECTIONS[label]
    half = length // 2
    points = [(row + t * dr, col + t * dc) for t in range(-half, half + 1)]
    return [(r, c) for r, c in points if 0 <= r < size and 0 <= c < size]


def generate_strokes(count: int, seed: int, size: int = STROKES_SIZE,
                     keep: float = STROKES_KEEP, noise: float = STROKES_NOISE
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` stroke images (N x 1 x size x size, 0/1 float32) and their classes (0..3).

    Deterministic in ``seed``. Each image: a class, a centre at least 4 pixels from the border,
    the stroke's pixels each kept with probability ``keep`` (at least two), salt noise.
    """
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, size, size), dtype=np.float32)
    labels = rng.integers(0, len(STROKES_DIRECTIONS), size=count).astype(np.int64)
    for i, label in enumerate(labels):
        row, col = rng.integers(4, size - 4, size=2)
        pixels = stroke_pixels(int(label), int(row), int(col), size)
        kept = rng.random(len(pixels)) < keep
        kept[rng.choice(len(pixels), size=2, replace=False)] = True
        images[i, 0] = rng.random((size, size)) < noise
        for (r, c), on in zip(pixels, kept, strict=True):
            if on:
                images[i, 0, r, c] = 1.0
    return images, labels


def load_strokes(limit: int | None = None) -> Splits:
    """The generated strokes task (see the module docstring), standardised like the others."""
    n_train, n_val, n_test = STROKES_SPLIT
    x, y = generate_strokes(n_train + n_val + n_test, STROKES_SEED)
    a, b = n_train, n_train + n_val
    return _finish("strokes", (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:]),
                   num_classes=len(STROKES_DIRECTIONS), limit=limit)


# --------------------------------------------------------------------------- CIFAR-10


def _cifar_dir(path: Path | str | None) -> Path:
    if path is None:
        raise DeepmorningError("dataset 'cifar10' needs the path to its binary files")
    path = Path(path).expanduser()
    if not path.exists():
        raise DeepmorningError(f"CIFAR-10 path {path} does not exist")
    if not path.is_dir():
        hint = " (extract it first)" if path.name.endswith((".tar.gz", ".tgz")) else ""
        raise DeepmorningError(
            f"CIFAR-10 path {path} is a file, not the directory of the binary batches{hint}"
        )
    for candidate in (path, path / CIFAR_DIR):
        if any((candidate / name).is_file() for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)):
            return candidate
    if (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py").is_dir():
        raise DeepmorningError(
            f"CIFAR-10 path {path} holds the pickled python version; "
            f"use the binary version ({CIFAR_DIR}) instead"
        )
    raise DeepmorningError(
        f"CIFAR-10 file {CIFAR_TRAIN_FILES[0]} not found in {path} or {path / CIFAR_DIR}"
    )


def _read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    if not file.is_file():
        raise DeepmorningError(f"CIFAR-10 file {file.name} is missing from {file.parent}")
    try:
        raw = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise DeepmorningError(
            f"CIFAR-10 file {file} cannot be read: {exc.strerror or exc}"
        ) from None
    if raw.size == 0:
        raise DeepmorningError(f"CIFAR-10 file {file} is empty")
    if raw.size % CIFAR_RECORD:
        raise DeepmorningError(
            f"CIFAR-10 file {file} is truncated or malformed: its {raw.size} bytes are not a "
            f"whole number of {CIFAR_RECORD}-byte records (1 label byte + 3072 pixel bytes)"
        )
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DeepmorningError(
            f"CIFAR-10 file {file} is malformed: found label {int(labels.max())}, "
            f"expected 0..9 in the first byte of each record"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32)  # R, G, B planes, each 32x32 row-major
    return images, labels


def load_cifar10(
    path: Path | str | None, limit: int | None = None, *, val_size: int = DEFAULT_VAL_SIZE
) -> Splits:
    """CIFAR-10 from the binary batches: the paper's split (last ``val_size`` training images
    held out for validation, 45,000 / 5,000 by default), per-channel standardisation."""
    folder = _cifar_dir(path)
    batches = [_read_cifar_batch(folder / name) for name in CIFAR_TRAIN_FILES]
    x_all = np.concatenate([b[0] for b in batches])
    y_all = np.concatenate([b[1] for b in batches])
    x_test, y_test = _read_cifar_batch(folder / CIFAR_TEST_FILE)
    (x_tr, y_tr), (x_val, y_val) = _hold_out(x_all, y_all, val_size, "CIFAR-10")
    return _finish(
        "cifar10",
        (x_tr, y_tr),
        (x_val, y_val),
        (x_test, y_test),
        num_classes=10,
        limit=limit,
        scale=255.0,
    )


# --------------------------------------------------------------------------- MNIST


def _mnist_file(folder: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DeepmorningError(f"MNIST file {stem} (or {stem}.gz) is missing from {folder}")


def _mnist_dir(path: Path | str | None) -> Path:
    if path is None:
        raise DeepmorningError("dataset 'mnist' needs the path to its IDX files")
    path = Path(path).expanduser()
    if not path.exists():
        raise DeepmorningError(f"MNIST path {path} does not exist")
    if not path.is_dir():
        raise DeepmorningError(f"MNIST path {path} is a file, not the directory of the IDX files")
    stem = MNIST_FILES["train_images"]
    dotted = stem.replace("-idx", ".idx")
    for candidate in (path, path / "raw", path / "MNIST" / "raw"):  # also torchvision's layout
        if any((candidate / n).is_file() for n in (stem, stem + ".gz", dotted, dotted + ".gz")):
            return candidate
    return path


def _read_idx(file: Path, magic: int, ndim: int) -> np.ndarray:
    try:
        if file.name.endswith(".gz"):
            with gzip.open(file, "rb") as fh:
                data = fh.read()
        else:
            data = file.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DeepmorningError(
            f"MNIST file {file} cannot be decompressed: it is truncated or not valid gzip ({exc})"
        ) from None
    except OSError as exc:
        raise DeepmorningError(f"MNIST file {file} cannot be read: {exc.strerror or exc}") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DeepmorningError(
            f"MNIST file {file} is truncated: {len(data)} bytes, shorter than its "
            f"{header}-byte IDX header"
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DeepmorningError(
            f"MNIST file {file} has bad magic number {found}, expected {magic} "
            f"({'images' if magic == IDX_IMAGES_MAGIC else 'labels'}, unsigned bytes, "
            f"{ndim} dimension{'s' if ndim > 1 else ''})"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    body = len(data) - header
    if body != expected:
        what = "truncated" if body < expected else "malformed"
        raise DeepmorningError(
            f"MNIST file {file} is {what}: its header promises {' x '.join(map(str, dims))} = "
            f"{expected} bytes of data but it holds {body}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_mnist_pair(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    images_file = _mnist_file(folder, MNIST_FILES[f"{part}_images"])
    labels_file = _mnist_file(folder, MNIST_FILES[f"{part}_labels"])
    images = _read_idx(images_file, IDX_IMAGES_MAGIC, 3)
    labels = _read_idx(labels_file, IDX_LABELS_MAGIC, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DeepmorningError(
            f"MNIST files {images_file.name} and {labels_file.name} disagree: "
            f"{len(images)} images but {len(labels)} labels"
        )
    if len(labels) == 0:
        raise DeepmorningError(f"MNIST file {labels_file} holds no examples")
    if labels.max() > 9:
        raise DeepmorningError(
            f"MNIST file {labels_file} is malformed: found label {int(labels.max())}, expected 0..9"
        )
    return images[:, None, :, :], labels


def load_mnist(
    path: Path | str | None, limit: int | None = None, *, val_size: int = DEFAULT_VAL_SIZE
) -> Splits:
    """MNIST from IDX files (plain or .gz): last ``val_size`` training images held out for
    validation, pixels scaled to [0, 1] then standardised with training statistics."""
    folder = _mnist_dir(path)
    x_all, y_all = _read_mnist_pair(folder, "train")
    x_test, y_test = _read_mnist_pair(folder, "test")
    if x_test.shape[1:] != x_all.shape[1:]:
        raise DeepmorningError(
            f"MNIST test images are {x_test.shape[2]}x{x_test.shape[3]} but training images "
            f"are {x_all.shape[2]}x{x_all.shape[3]}"
        )
    (x_tr, y_tr), (x_val, y_val) = _hold_out(x_all, y_all, val_size, "MNIST")
    return _finish(
        "mnist",
        (x_tr, y_tr),
        (x_val, y_val),
        (x_test, y_test),
        num_classes=10,
        limit=limit,
        scale=255.0,
    )


# --------------------------------------------------------------------------- shared steps


def _hold_out(x: np.ndarray, y: np.ndarray, val_size: int, label: str):
    """The paper's split: the last ``val_size`` training examples become the validation set."""
    if not isinstance(val_size, int) or val_size < 1:
        raise DeepmorningError(f"validation size must be a positive integer, got {val_size!r}")
    if val_size >= len(y):
        raise DeepmorningError(
            f"{label} has only {len(y)} training images, too few to hold out {val_size} "
            f"for validation"
        )
    return (x[:-val_size], y[:-val_size]), (x[-val_size:], y[-val_size:])


def _caps(n_train: int, n_val: int, n_test: int, limit: int | None) -> tuple[int, int, int]:
    if limit is None:
        return n_train, n_val, n_test
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DeepmorningError(f"limit must be a positive number of examples, got {limit!r}")
    if limit >= n_train:
        return n_train, n_val, n_test
    share = limit / n_train
    return (
        limit,
        min(n_val, max(1, round(n_val * share))),
        min(n_test, max(1, round(n_test * share))),
    )


def _finish(
    name, train, val, test, *, num_classes: int, limit: int | None, scale: float = 1.0
) -> Splits:
    """Cap the splits, scale pixels by 1/scale, standardise per channel with train statistics."""
    n_tr, n_val, n_te = _caps(len(train[1]), len(val[1]), len(test[1]), limit)
    x_tr = train[0][:n_tr].astype(np.float32) / np.float32(scale)
    # channel by channel, so the float64 temporaries stay at one channel's size
    mean = np.array([x_tr[:, c].mean(dtype=np.float64) for c in range(x_tr.shape[1])])
    std = np.array([x_tr[:, c].std(dtype=np.float64) for c in range(x_tr.shape[1])])
    std = np.where(std > 1e-8, std, 1.0)  # a constant channel is only centred
    m = mean.astype(np.float32)[None, :, None, None]
    s = std.astype(np.float32)[None, :, None, None]

    def norm(x: np.ndarray) -> np.ndarray:
        out = x.astype(np.float32) / np.float32(scale)  # always a fresh array
        out -= m
        out /= s
        return np.ascontiguousarray(out)

    x_tr -= m
    x_tr /= s
    return Splits(
        name=name,
        x_train=np.ascontiguousarray(x_tr),
        y_train=np.ascontiguousarray(train[1][:n_tr], dtype=np.int64),
        x_val=norm(val[0][:n_val]),
        y_val=np.ascontiguousarray(val[1][:n_val], dtype=np.int64),
        x_test=norm(test[0][:n_te]),
        y_test=np.ascontiguousarray(test[1][:n_te], dtype=np.int64),
        num_classes=num_classes,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
