"""CIFAR pickle readers on generated files in the real format, CIFAR-2, one-line errors, offline download."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gs_jax.data import cifar
from gs_jax.errors import GsJaxError


def plain_read(path: Path) -> dict:
    """The reference reader: the standard library unpickler as the CIFAR web page shows it."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def reference_nhwc(data: np.ndarray) -> np.ndarray:
    """Independent decoding by explicit indexing: pixel (h, w, c) = data[i, 1024c + 32h + w]."""
    n = data.shape[0]
    out = np.empty((n, 32, 32, 3), np.uint8)
    for c in range(3):
        for h in range(32):
            out[:, h, :, c] = data[:, 1024 * c + 32 * h : 1024 * c + 32 * h + 32]
    return out


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------------------------------


def test_cifar10_round_trip(tmp_path):
    folder = cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=12, seed=1)
    assert folder == tmp_path / "cifar-10-batches-py"
    train = cifar.load_split("cifar10", "train", tmp_path, verify=False)
    raw = [plain_read(folder / f"data_batch_{i}") for i in range(1, 6)]
    np.testing.assert_array_equal(train.images, reference_nhwc(np.concatenate([r[b"data"] for r in raw])))
    np.testing.assert_array_equal(train.labels, np.concatenate([r[b"labels"] for r in raw]))
    assert train.images.shape == (60, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int32 and train.name == "cifar10"
    assert train.class_names == cifar.CIFAR10_CLASSES
    test = cifar.load_split("cifar10", "test", folder, verify=False)  # the sub-folder itself works too
    np.testing.assert_array_equal(test.images, reference_nhwc(plain_read(folder / "test_batch")[b"data"]))
    assert sorted(np.bincount(test.labels, minlength=10)) == [1, 1, 1, 1, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "labels,key,n_classes", [("fine", b"fine_labels", 100), ("coarse", b"coarse_labels", 20)]
)
def test_cifar100_round_trip(tmp_path, labels, key, n_classes):
    folder = cifar.write_fake_cifar(tmp_path, "cifar100", n_per_batch=8, seed=2)
    train = cifar.load_split("cifar100", "train", tmp_path, labels=labels, verify=False)
    raw = plain_read(folder / "train")
    assert train.images.shape == (40, 32, 32, 3)
    np.testing.assert_array_equal(train.images, reference_nhwc(raw[b"data"]))
    np.testing.assert_array_equal(train.labels, raw[key])
    assert len(train.class_names) == n_classes
    assert cifar.load_split("cifar100", "test", tmp_path, labels=labels, verify=False).images.shape[0] == 8


def test_pixel_layout_and_float_scaling(tmp_path):
    data = np.zeros((2, 3072), np.uint8)
    data[1, 1024 * 2 + 32 * 3 + 17] = 200  # image 1, row h=3, column w=17, blue (c=2)
    data[0, 5] = 9  # image 0, h=0, w=5, red
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=2))
    images, labels = cifar.read_batch(path)
    assert images[1, 3, 17, 2] == 200 and images[0, 0, 5, 0] == 9 and images.sum() == 209
    np.testing.assert_array_equal(labels, [3, 4])
    np.testing.assert_array_equal(cifar.encode_images(images), data)
    unit = cifar.to_float(images)
    assert unit.dtype == np.float32 and unit[1, 3, 17, 2] == pytest.approx(200 / 255)
    sym = cifar.to_float(np.array([0, 255, 51], np.uint8), (-1.0, 1.0))
    np.testing.assert_allclose(sym, [-1.0, 1.0, 51 / 255 * 2 - 1], atol=1e-7)


def test_str_keys_and_latest_protocol(tmp_path):
    data = np.arange(3072, dtype=np.int64).astype(np.uint8)[None, :]
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": data, "labels": np.array([7])}, protocol=pickle.HIGHEST_PROTOCOL))
    images, labels = cifar.read_batch(path)
    np.testing.assert_array_equal(images, reference_nhwc(data))
    assert labels.tolist() == [7]


def test_cifar2_selection_relabelling_scaling(tmp_path):
    cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=20, seed=3)
    train, test = cifar.cifar2(tmp_path, verify=False)
    full = cifar.load_split("cifar10", "train", tmp_path, verify=False)
    keep = np.flatnonzero((full.labels == 0) | (full.labels == 7))
    assert len(keep) == 20  # 20 images per batch cycle through 10 classes: 2 airplanes + 2 horses per batch
    np.testing.assert_array_equal(train.labels, (full.labels[keep] == 7).astype(np.int32))
    want = (full.images[keep].astype(np.float64) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(train.images, want, atol=1e-6)
    assert train.images.dtype == np.float32 and train.images.min() >= -1 and train.images.max() <= 1
    assert train.class_names == ("airplane", "horse") and train.name == "cifar2"
    assert test.images.shape == (4, 32, 32, 3) and sorted(test.labels.tolist()) == [0, 0, 1, 1]
    with pytest.raises(GsJaxError, match="two different CIFAR-10 classes"):
        cifar.cifar2(tmp_path, verify=False, classes=(3, 3))


def test_gs_data_dir(tmp_path, monkeypatch):
    cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=2)
    monkeypatch.setenv("GS_DATA_DIR", str(tmp_path))
    assert cifar.load_split("cifar10", "test", verify=False).images.shape == (2, 32, 32, 3)
    monkeypatch.delenv("GS_DATA_DIR")
    with pytest.raises(GsJaxError, match="GS_DATA_DIR is not set") as err:
        cifar.load_split("cifar10", "test")
    assert "make data-cifar" in one_line(err)


# ----------------------------------------------------------------------------------------------------------------
# one-line errors
# ----------------------------------------------------------------------------------------------------------------


def test_missing_directory_and_batch(tmp_path):
    with pytest.raises(GsJaxError, match="does not exist") as err:
        cifar.load_split("cifar10", "train", tmp_path / "nope")
    assert "make data-cifar" in one_line(err)
    with pytest.raises(GsJaxError, match="holds no 'cifar-100-python' folder"):
        cifar.load_split("cifar100", "train", tmp_path)
    folder = cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=2)
    (folder / "data_batch_3").unlink()
    with pytest.raises(GsJaxError) as err:
        cifar.load_split("cifar10", "train", tmp_path, verify=False)
    assert "data_batch_3" in one_line(err) and "make data-cifar" in str(err.value)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "foreign"])
def test_corrupt_pickle_is_one_line(tmp_path, kind):
    folder = cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=3)
    path = folder / "test_batch"
    raw = path.read_bytes()
    path.write_bytes(
        {
            "truncated": raw[: len(raw) // 2],
            "garbage": b"\x80\x02not a pickle at all",
            "empty": b"",
            "foreign": pickle.dumps(collections.OrderedDict(a=1)),  # a global no CIFAR file refers to
        }[kind]
    )
    with pytest.raises(GsJaxError) as err:
        cifar.load_split("cifar10", "test", tmp_path, verify=False)
    msg = one_line(err)
    assert "test_batch" in msg and "truncated or corrupt" in msg


@pytest.mark.parametrize(
    "obj,match",
    [
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"expected uint8 \(n, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "expected uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, "2 images but"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"outside 0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' entry"),
        ([1, 2, 3], "not a CIFAR dict"),
    ],
)
def test_wrong_shapes_are_one_line(tmp_path, obj, match):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(GsJaxError, match=match) as err:
        cifar.read_batch(path)
    assert "data_batch_1" in one_line(err)


def test_verify_catches_checksum_mismatch(tmp_path):
    cifar.write_fake_cifar(tmp_path, "cifar10", n_per_batch=2)  # official names, other bytes
    with pytest.raises(GsJaxError, match="md5") as err:
        cifar.load_split("cifar10", "test", tmp_path, verify=True)
    assert "verify=False" in one_line(err)


# ----------------------------------------------------------------------------------------------------------------
# download: offline failure, and the extraction path on an in-memory archive
# ----------------------------------------------------------------------------------------------------------------


def test_download_without_internet_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    for dataset in ("cifar10", "cifar100"):
        with pytest.raises(GsJaxError, match="no internet") as err:
            cifar.download(tmp_path, dataset)
        assert cifar.URL_BASE in one_line(err)
    assert not list(tmp_path.glob("*.part"))
    assert cifar._main(["download", str(tmp_path), "--dataset", "cifar100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _serve(monkeypatch, payload: bytes):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))


def test_download_extracts_and_verifies(tmp_path, monkeypatch):
    src = cifar.write_fake_cifar(tmp_path / "src", "cifar100", n_per_batch=2)
    files = {f"cifar-100-python/{p.name}": p.read_bytes() for p in src.iterdir()}
    archive = _tarball(files)
    md5 = lambda b: hashlib.md5(b).hexdigest()
    monkeypatch.setitem(cifar.ARCHIVES, "cifar100", ("cifar-100-python.tar.gz", md5(archive)))
    monkeypatch.setitem(cifar.MD5, "cifar100", {Path(k).name: md5(v) for k, v in files.items()})
    _serve(monkeypatch, archive)
    out = tmp_path / "out"
    folder = cifar.download(out, "cifar100")
    assert folder == out / "cifar-100-python"
    assert cifar.load_split("cifar100", "train", out, verify=True).images.shape == (10, 32, 32, 3)
    _serve(monkeypatch, b"")  # a second call finds verified files and does not download
    assert cifar.download(out, "cifar100") == folder


def test_download_rejects_bad_checksum_and_unsafe_archive(tmp_path, monkeypatch):
    _serve(monkeypatch, b"not the archive")
    with pytest.raises(GsJaxError, match="md5") as err:
        cifar.download(tmp_path, "cifar10")
    one_line(err)
    evil = _tarball({"../evil": b"x"})
    monkeypatch.setitem(cifar.ARCHIVES, "cifar10", ("cifar-10-python.tar.gz", hashlib.md5(evil).hexdigest()))
    _serve(monkeypatch, evil)
    with pytest.raises(GsJaxError, match="unsafe member") as err:
        cifar.download(tmp_path / "d", "cifar10")
    one_line(err)
    assert not (tmp_path / "evil").exists()
