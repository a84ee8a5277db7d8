"""CIFAR-10 / CIFAR-100 from the official python pickle batches, and CIFAR-2 (paper Table 1, Fig. 2; SPEC §5).

Nothing is downloaded here at import or run time. The readers take the directory from their argument, else the
environment variable ``GS_DATA_DIR``; it may be the folder that holds the extracted ``cifar-10-batches-py/`` /
``cifar-100-python/`` folders, or that folder itself.

File formats (https://www.cs.toronto.edu/~kriz/cifar.html). Each file is a pickled dict with bytes keys (written
by Python 2, so read with ``encoding="bytes"``):

- ``cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5`` (10,000 images each), ``test_batch`` (10,000),
  ``batches.meta`` (``b"label_names"``: the 10 class names). A batch holds ``b"data"``, a uint8 array
  (N, 3072) whose row is the 1024 red, then 1024 green, then 1024 blue values of a 32×32 image, each plane
  row-major; and ``b"labels"``, a list of N ints in 0..9.
- ``cifar-100-python/``: ``train`` (50,000), ``test`` (10,000), ``meta`` (``b"fine_label_names"``,
  ``b"coarse_label_names"``); batches hold ``b"data"`` as above, ``b"fine_labels"`` (0..99) and
  ``b"coarse_labels"`` (0..19).

Images come back NHWC, (N, 32, 32, 3), uint8, in file order; ``pixel_range=(lo, hi)`` gives float32 instead.
Pickles are read with an unpickler that only admits the numpy names these files use, so a foreign pickle cannot
run code. ``verify=True`` checks each file's md5 against the official one (generated files need
``verify=False``).

CIFAR-2 (:func:`cifar2`) is the authors' Fig. 2 set (SPEC §5.1): CIFAR-10 classes 0 (airplane) and 7 (horse),
relabelled 0 and 1, scaled to [-1, 1] (``ToTensor`` then ``Normalize(0.5, 0.5)``): 10,000 train and 2,000 test
images. The paper's text says cats vs dogs; their code uses airplane vs horse.

``python -m gs_jax.data.cifar download DIR --dataset cifar10|cifar100`` holds the real download code (official
archive, md5 checked, extracted in place); ``make data-cifar`` calls it. :func:`write_fake_cifar` writes tiny
files in the real format for tests and smoke runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from gs_jax.errors import GsJaxError, check

URL_BASE = "https://www.cs.toronto.edu/~kriz/"

SUBDIR = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

# Official archives (https://www.cs.toronto.edu/~kriz/cifar.html).
ARCHIVES = {
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}

# MD5 of the extracted files (the digests torchvision checks).
MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}

SPLITS = {
    "cifar10": {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    "cifar100": {"train": ("train",), "test": ("test",)},
}
META = {"cifar10": "batches.meta", "cifar100": "meta"}
# label key in the batches, key of the names in the meta file, number of classes
LABELS = {
    ("cifar10", "fine"): ("labels", "label_names", 10),
    ("cifar100", "fine"): ("fine_labels", "fine_label_names", 100),
    ("cifar100", "coarse"): ("coarse_labels", "coarse_label_names", 20),
}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR2_CLASSES = (0, 7)  # airplane vs horse: the authors' Fig. 2 code (SPEC §5.1)
IMAGE_SHAPE = (32, 32, 3)
ROW = 3 * 32 * 32

FIX = "run `make data-cifar`, or pass the directory (or set GS_DATA_DIR) that holds '{sub}'"


@dataclasses.dataclass(frozen=True)
class CifarSplit:
    """One split of a CIFAR dataset, in file order."""

    name: str  # "cifar10", "cifar100" (fine labels), "cifar100-coarse" or "cifar2"
    images: np.ndarray  # (n, 32, 32, 3) NHWC RGB: uint8 0..255, or float32 when a pixel range was asked for
    labels: np.ndarray  # (n,) int32
    class_names: tuple[str, ...]  # names of labels 0, 1, …
    source: str  # the directory the files came from


# ----------------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """Admit only the globals that pickled numpy arrays need (Python 2 and 3 pickles, numpy 1 and 2 names)."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which no CIFAR file contains")
        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core" + module[len("numpy.core") :]
        return getattr(importlib.import_module(module), name)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_pickle(path: str | Path, dataset: str = "cifar10", verify: bool = False) -> dict[str, object]:
    """Unpickle one CIFAR file into a dict with str keys; one-line GsJaxError if it is missing or unreadable.

    ``verify`` first compares the file's md5 with the official digest of its name (:data:`MD5`).
    """
    path = Path(path)
    fix = FIX.format(sub=SUBDIR.get(dataset, "the CIFAR folder"))
    check(path.is_file(), f"CIFAR file '{path}' not found; {fix}")
    if verify:
        known = MD5.get(dataset, {}).get(path.name)
        if known is not None:
            digest = _md5(path)
            check(
                digest == known,
                f"'{path}' has md5 {digest}, expected {known}; the file is corrupt or truncated: delete it and "
                "run `make data-cifar` (files you generated yourself need verify=False)",
            )
    try:
        raw = path.read_bytes()
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except OSError as err:
        raise GsJaxError(f"cannot read CIFAR file '{path}': {err.strerror}") from None
    except Exception as err:  # unpickling a truncated or foreign file fails in many ways
        raise GsJaxError(
            f"'{path}' is not a readable CIFAR pickle ({_one_line(err)}); the file is truncated or corrupt: "
            "delete it and run `make data-cifar`"
        ) from None
    check(
        isinstance(obj, dict),
        f"'{path}' holds a {type(obj).__name__}, not a CIFAR dict; is it the right file?",
    )
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def decode_images(data: np.ndarray) -> np.ndarray:
    """(n, 3072) rows of R, G, B planes (each 32×32 row-major) → (n, 32, 32, 3) NHWC: pixel (h, w, c) of image
    i is ``data[i, 1024·c + 32·h + w]``."""
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def encode_images(images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_images`: (n, 32, 32, 3) uint8 → (n, 3072) uint8 rows."""
    return np.ascontiguousarray(np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(-1, ROW))


def read_batch(
    path: str | Path, dataset: str = "cifar10", labels: str = "fine", verify: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels (n,) int32 of one batch file, with shape and range checks."""
    check(
        (dataset, labels) in LABELS,
        f"unknown dataset/labels {dataset!r}/{labels!r}; choose cifar10 (fine) or cifar100 (fine or coarse)",
    )
    path = Path(path)
    batch = read_pickle(path, dataset, verify)
    label_key, _, n_classes = LABELS[dataset, labels]
    for key in ("data", label_key):
        check(
            key in batch, f"'{path}' has no {key!r} entry (keys: {sorted(batch)}); is it a {dataset} batch?"
        )
    data = batch["data"]
    check(
        isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == ROW,
        f"'{path}' holds data of shape {getattr(data, 'shape', '?')} and dtype {getattr(data, 'dtype', '?')}; "
        f"expected uint8 (n, {ROW})",
    )
    try:
        y = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise GsJaxError(f"'{path}' holds {label_key!r} that are not integers ({_one_line(err)})") from None
    check(
        y.shape == (data.shape[0],),
        f"'{path}' holds {data.shape[0]} images but {label_key!r} has shape {y.shape}",
    )
    check(
        y.size == 0 or (y.min() >= 0 and y.max() < n_classes),
        f"'{path}' holds {label_key!r} outside 0..{n_classes - 1}",
    )
    return decode_images(data), y.astype(np.int32)


def resolve_dir(dataset: str = "cifar10", directory: str | Path = "") -> Path:
    """The folder holding the dataset's files: ``directory`` (else ``GS_DATA_DIR``), or its ``SUBDIR`` child."""
    check(dataset in SUBDIR, f"unknown dataset {dataset!r}; choose cifar10 or cifar100")
    sub = SUBDIR[dataset]
    directory = str(directory) or os.environ.get("GS_DATA_DIR", "")
    check(bool(directory), f"no CIFAR directory given and GS_DATA_DIR is not set; {FIX.format(sub=sub)}")
    root = Path(directory)
    check(root.is_dir(), f"CIFAR directory '{root}' does not exist; {FIX.format(sub=sub)}")
    if (root / sub).is_dir():
        return root / sub
    check(
        root.name == sub or (root / META[dataset]).is_file(),
        f"'{root}' holds no '{sub}' folder; {FIX.format(sub=sub)}",
    )
    return root


def to_float(images: np.ndarray, pixel_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """uint8 0..255 → float32 affinely onto ``pixel_range`` (0 ↦ low, 255 ↦ high)."""
    lo, hi = (float(v) for v in pixel_range)
    check(lo < hi, f"pixel_range must be (low, high) with low < high, got {pixel_range!r}")
    return (np.asarray(images, np.float32) / np.float32(255.0)) * np.float32(hi - lo) + np.float32(lo)


def class_names(
    dataset: str = "cifar10", directory: str | Path = "", labels: str = "fine", verify: bool = True
):
    """The class names stored in the meta file, as a tuple of str."""
    check((dataset, labels) in LABELS, f"unknown dataset/labels {dataset!r}/{labels!r}")
    path = resolve_dir(dataset, directory) / META[dataset]
    meta = read_pickle(path, dataset, verify)
    _, names_key, n_classes = LABELS[dataset, labels]
    check(names_key in meta, f"'{path}' has no {names_key!r} entry; is it the {dataset} meta file?")
    names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[names_key])
    check(len(names) == n_classes, f"'{path}' lists {len(names)} {names_key}, expected {n_classes}")
    return names


def load_split(
    dataset: str = "cifar10",
    split: str = "train",
    directory: str | Path = "",
    *,
    labels: str = "fine",
    verify: bool = True,
    pixel_range: tuple[float, float] | None = None,
) -> CifarSplit:
    """One split (``train``: 50,000 images, ``test``: 10,000) of CIFAR-10 or CIFAR-100, in file order.

    Args:
      dataset: ``"cifar10"`` or ``"cifar100"``.
      split: ``"train"`` or ``"test"``.
      directory: see the module docstring ('' = ``GS_DATA_DIR``).
      labels: CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
      verify: check each file's md5 against the official digest.
      pixel_range: ``None`` for uint8 images, else float32 images mapped onto (low, high).
    """
    check(split in ("train", "test"), f"split must be 'train' or 'test', got {split!r}")
    check(
        (dataset, labels) in LABELS,
        f"unknown dataset/labels {dataset!r}/{labels!r}; choose cifar10 (fine) or cifar100 (fine or coarse)",
    )
    folder = resolve_dir(dataset, directory)
    parts = [read_batch(folder / name, dataset, labels, verify) for name in SPLITS[dataset][split]]
    images = np.concatenate([p[0] for p in parts])
    ys = np.concatenate([p[1] for p in parts])
    return CifarSplit(
        name=dataset if labels == "fine" else f"{dataset}-{labels}",
        images=images if pixel_range is None else to_float(images, pixel_range),
        labels=ys,
        class_names=class_names(dataset, folder, labels, verify),
        source=str(folder.resolve()),
    )


def cifar2(
    directory: str | Path = "", *, verify: bool = True, classes: tuple[int, int] = CIFAR2_CLASSES
) -> tuple[CifarSplit, CifarSplit]:
    """The authors' Fig. 2 CIFAR-2 (SPEC §5.1): (train, test) with float32 images in [-1, 1] and labels {0, 1}.

    Keeps the CIFAR-10 images of ``classes`` (default airplane 0 → label 0, horse 7 → label 1) in file order;
    scales ``(x / 255 − 0.5) / 0.5`` as ``ToTensor`` + ``Normalize((0.5,)*3, (0.5,)*3)``. Full data: 10,000 train
    and 2,000 test images.
    """
    check(
        len(classes) == 2 and classes[0] != classes[1] and all(0 <= int(c) <= 9 for c in classes),
        f"classes must be two different CIFAR-10 classes in 0..9, got {classes!r}",
    )
    out = []
    for split in ("train", "test"):
        full = load_split("cifar10", split, directory, verify=verify)
        keep = (full.labels == classes[0]) | (full.labels == classes[1])
        images = (full.images[keep].astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(
            0.5
        )
        out.append(
            CifarSplit(
                name="cifar2",
                images=images,
                labels=(full.labels[keep] == classes[1]).astype(np.int32),
                class_names=(full.class_names[classes[0]], full.class_names[classes[1]]),
                source=full.source,
            )
        )
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------------------------
# generated files (tests, smoke runs)
# ----------------------------------------------------------------------------------------------------------------


def _dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_fake_cifar(
    directory: str | Path, dataset: str = "cifar10", n_per_batch: int = 20, seed: int = 0
) -> Path:
    """Write random images in the real file layout under ``directory/SUBDIR[dataset]``; return that folder.

    CIFAR-10: five training batches and a test batch of ``n_per_batch`` images each, plus ``batches.meta`` with
    the real class names. CIFAR-100: ``train`` with 5·n_per_batch images, ``test`` with n_per_batch, ``meta``
    with placeholder names; the fake coarse label is ``fine % 20`` (not the real superclass map). Labels cycle
    through all classes in a seeded random order, so every class appears once a file holds enough images.
    Load the result with ``verify=False`` (the md5s are those of the official files).
    """
    check(dataset in SUBDIR, f"unknown dataset {dataset!r}; choose cifar10 or cifar100")
    check(int(n_per_batch) >= 1, f"n_per_batch must be ≥ 1, got {n_per_batch!r}")
    rng = np.random.default_rng(seed)
    folder = Path(directory) / SUBDIR[dataset]
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, n_classes: int, label: str) -> tuple[np.ndarray, np.ndarray, dict]:
        data = rng.integers(0, 256, size=(n, ROW), dtype=np.uint8)
        y = rng.permutation(np.arange(n) % n_classes)
        names = [f"fake_{seed}_{label}_{i:05d}.png".encode() for i in range(n)]
        return data, y, {b"batch_label": label.encode(), b"data": data, b"filenames": names}

    if dataset == "cifar10":
        for name, label in [(f"data_batch_{i}", f"training batch {i} of 5") for i in range(1, 6)] + [
            ("test_batch", "testing batch 1 of 1")
        ]:
            _, y, obj = batch(int(n_per_batch), 10, label)
            _dump(folder / name, {**obj, b"labels": [int(v) for v in y]})
        _dump(
            folder / "batches.meta",
            {
                b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                b"num_cases_per_batch": int(n_per_batch),
                b"num_vis": ROW,
            },
        )
    else:
        for name, n in (("train", 5 * int(n_per_batch)), ("test", int(n_per_batch))):
            _, y, obj = batch(n, 100, name)
            _dump(
                folder / name,
                {**obj, b"fine_labels": [int(v) for v in y], b"coarse_labels": [int(v) % 20 for v in y]},
            )
        _dump(
            folder / "meta",
            {
                b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
                b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)],
            },
        )
    return folder


# ----------------------------------------------------------------------------------------------------------------
# download (the only code here that touches the network)
# ----------------------------------------------------------------------------------------------------------------


def _verified(folder: Path, dataset: str) -> bool:
    return all((folder / n).is_file() and _md5(folder / n) == d for n, d in MD5[dataset].items())


def _extract(archive: Path, directory: Path, dataset: str) -> None:
    """Extract the archive's ``SUBDIR`` members into ``directory``, refusing absolute or '..' paths and links."""
    sub = SUBDIR[dataset]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                check(
                    not Path(m.name).is_absolute() and ".." not in parts and (m.isfile() or m.isdir()),
                    f"'{archive}' holds an unsafe member {m.name!r}; delete the archive and download it again",
                )
                if parts and parts[0] == sub:
                    members.append(m)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(directory, members=members, **kwargs)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise GsJaxError(
            f"cannot extract '{archive}' ({_one_line(err)}); delete it and download it again"
        ) from None


def download(directory: str | Path, dataset: str = "cifar10") -> Path:
    """Fetch the official ``dataset`` archive into ``directory``, check its md5, extract it; return the folder.

    Skips the download when the extracted files (or the archive) are already there with the official md5s.
    Without network it fails with one GsJaxError line.
    """
    check(dataset in ARCHIVES, f"unknown dataset {dataset!r}; choose cifar10 or cifar100")
    directory = Path(directory)
    folder = directory / SUBDIR[dataset]
    if folder.is_dir() and _verified(folder, dataset):
        return folder
    directory.mkdir(parents=True, exist_ok=True)
    name, digest = ARCHIVES[dataset]
    archive = directory / name
    if not (archive.is_file() and _md5(archive) == digest):
        part = directory / (name + ".part")
        try:
            with urllib.request.urlopen(URL_BASE + name, timeout=60) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except OSError as err:
            part.unlink(missing_ok=True)
            raise GsJaxError(
                f"could not download {URL_BASE}{name} ({getattr(err, 'reason', None) or _one_line(err)}); "
                f"no internet? fetch it elsewhere and put it (or its extracted '{SUBDIR[dataset]}') into "
                f"'{directory}'"
            ) from None
        got = _md5(part)
        if got != digest:
            part.unlink(missing_ok=True)
            raise GsJaxError(f"downloaded {name} has md5 {got}, expected {digest}; try again later")
        part.replace(archive)
    _extract(archive, directory, dataset)
    bad = [n for n, d in MD5[dataset].items() if not (folder / n).is_file() or _md5(folder / n) != d]
    check(not bad, f"extracted files {bad} in '{folder}' fail their md5; delete '{folder}' and '{archive}'")
    return folder


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "download":
        print("usage: python -m gs_jax.data.cifar download DIR [--dataset cifar10|cifar100]", file=sys.stderr)
        return 2
    dataset = argv[argv.index("--dataset") + 1] if "--dataset" in argv[:-1] else "cifar10"
    try:
        folder = download(argv[1], dataset)
    except GsJaxError as err:
        print(f"data-cifar: error: {err}", file=sys.stderr)
        return 2
    print(f"data-cifar: {dataset} ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
