"""CelebA for the worst-group benchmark (paper §4.4 and Table 3; SPEC §4.1): list files, groups, image cache.

Layout. A CelebA directory holds the aligned-and-cropped JPEGs (``000001.jpg`` … ``202599.jpg``, 178×218) and two
list files, in either of the two published formats (each file is looked for in the places listed, first hit wins,
``.csv`` before ``.txt``):

- **original** (``Anno/list_attr_celeba.txt``, ``Eval/list_eval_partition.txt``, ``img_align_celeba/``): the
  attribute file's first line is the image count, the second the 40 attribute names, then one line per image
  ``000001.jpg -1  1  1 -1 …`` (values ±1, whitespace-separated); the partition file has ``000001.jpg 0`` lines.
- **Kaggle** (``list_attr_celeba.csv`` with header ``image_id,5_o_Clock_Shadow,…``, ``list_eval_partition.csv``
  with header ``image_id,partition``, images in ``img_align_celeba/img_align_celeba/``): what the authors' upstream
  code (Sagawa et al.'s ``CelebADataset``) reads, also found under ``data/``.

Task (SPEC §4.1). Attributes ±1 → {0, 1}; target ``y = Blond_Hair``, confounder ``Male``,
``group = 2·y + male`` (0 dark female, 1 dark male, 2 blond female, 3 blond male — the worst group); partition
0/1/2 = train/val/test (the official split). Group counts are computed from the list files, never by loading
images.

Images (torchvision pipeline of the upstream code, ``augment_data=False``): ``CenterCrop(178)`` → ``Resize((224,
224))`` (PIL bilinear) → ``ToTensor`` ([0, 1]) → ``Normalize(ImageNet mean, std)``. :func:`decode_image` does the
crop and resize and returns uint8, exactly the bytes ToTensor would see; :func:`normalize` does the rest (numpy or
jax, jit-compatible). :func:`preprocess_split` decodes a whole split once into an ``.npy`` cache outside the
training loop. Sizes: uint8 at 224 px is 150,528 bytes per image (train split ≈ 24.5 GB; float32 4× that).

Every user-fixable problem (missing directory, list file or image, malformed list line, undecodable JPEG) raises
a one-line :class:`~gs_jax.errors.GsJaxError`. Nothing is downloaded; CelebA has no offline copy, so the tests use
:func:`write_fake_celeba`, which writes tiny datasets in both formats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gs_jax.errors import GsJaxError, check
from gs_jax.models import IMAGENET_MEAN, IMAGENET_STD

ATTR_NAMES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
SPLITS = ("train", "val", "test")  # partition values 0, 1, 2
N_GROUPS = 4
CROP = 178
SIZE = 224

# Group counts (dark F, dark M, blond F, blond M) of the official splits as Sagawa et al. (2020) report them; their
# sums are the official split sizes 162,770 / 19,867 / 19,962. For comparison with :attr:`CelebA.group_counts`.
REFERENCE_GROUP_COUNTS = {
    "train": (71629, 66874, 22880, 1387),
    "val": (8535, 8276, 2874, 182),
    "test": (9767, 7535, 2480, 180),
}

# Where each file is looked for, relative to the directory given, in order.
_ATTR_CANDIDATES = (
    "list_attr_celeba.csv",
    "data/list_attr_celeba.csv",
    "list_attr_celeba.txt",
    "Anno/list_attr_celeba.txt",
    "data/list_attr_celeba.txt",
)
_PARTITION_CANDIDATES = (
    "list_eval_partition.csv",
    "data/list_eval_partition.csv",
    "list_eval_partition.txt",
    "Eval/list_eval_partition.txt",
    "data/list_eval_partition.txt",
)
_IMAGE_DIR_CANDIDATES = (
    "img_align_celeba/img_align_celeba",
    "img_align_celeba",
    "Img/img_align_celeba",
    "data/img_align_celeba/img_align_celeba",
    "data/img_align_celeba",
)


# ----------------------------------------------------------------------------------------------------------------
# List files
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CelebATable:
    """The two list files, aligned by file name."""

    filenames: np.ndarray  # (n,) str, e.g. "000001.jpg"
    attributes: np.ndarray  # (n, n_attr) int8 in {0, 1} (the files' -1 -> 0)
    attr_names: tuple[str, ...]
    partition: np.ndarray  # (n,) int8 in {0, 1, 2}
    attr_path: Path
    partition_path: Path

    def column(self, name: str) -> np.ndarray:
        """One attribute as int32 ``(n,)`` in {0, 1}."""
        check(
            name in self.attr_names,
            f"'{name}' is not an attribute in '{self.attr_path}'; choose from {', '.join(self.attr_names)}",
        )
        return self.attributes[:, self.attr_names.index(name)].astype(np.int32)


def _lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of a text file with their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise GsJaxError(f"cannot read list file '{path}': {err.strerror}") from None
    except UnicodeDecodeError:
        raise GsJaxError(f"list file '{path}' is not text; is it the right file?") from None
    return [(k, line) for k, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _pm1_to_01(tokens: list[str], rows: list[int], n_attr: int, path: Path) -> np.ndarray:
    """Flat '1'/'-1' tokens -> int8 {1, 0} of shape (len(rows), n_attr); a one-line error naming the first bad
    line otherwise."""
    try:
        values = np.array(list(map(int, tokens)), dtype=np.int64).reshape(len(rows), n_attr)
    except ValueError:
        values = None
    if values is not None:
        bad = np.flatnonzero((values != 1) & (values != -1))
        if bad.size == 0:
            return (values == 1).astype(np.int8)
        first_bad = int(bad[0])
    else:
        first_bad = next(i for i, t in enumerate(tokens) if t.strip() not in ("1", "-1"))
    raise GsJaxError(
        f"line {rows[first_bad // n_attr]} of '{path}' has attribute value {tokens[first_bad].strip()!r}; "
        "expected 1 or -1 (malformed file)"
    )


def parse_attr_file(path: str | Path) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Read ``list_attr_celeba.txt`` or ``.csv`` (by suffix): (filenames (n,), names, attributes (n, k) int8 0/1)."""
    path = Path(path)
    lines = _lines(path)
    if path.suffix == ".csv":
        check(len(lines) >= 1, f"attribute file '{path}' is empty")
        header = [h.strip() for h in lines[0][1].split(",")]
        check(
            header[0] == "image_id" and len(header) > 1,
            f"attribute file '{path}' must start with the header 'image_id,<attribute names>', "
            f"got {lines[0][1][:60]!r}",
        )
        names, first, sep = tuple(header[1:]), 1, ","
    else:
        check(
            len(lines) >= 2, f"attribute file '{path}' needs a count line and a names line (malformed file)"
        )
        try:
            count = int(lines[0][1].strip())
        except ValueError:
            raise GsJaxError(
                f"line {lines[0][0]} of '{path}' should be the number of images, got {lines[0][1][:40]!r} "
                "(malformed file)"
            ) from None
        names, first, sep = tuple(lines[1][1].split()), 2, None
        check(
            count == len(lines) - 2,
            f"'{path}' announces {count} images on line 1 but lists {len(lines) - 2} (truncated or malformed file)",
        )
    check(len(set(names)) == len(names), f"attribute file '{path}' repeats an attribute name")
    rows, filenames, tokens = [], [], []
    for k, line in lines[first:]:
        parts = line.split(sep)  # int() below ignores the spaces a CSV field may carry
        if len(parts) != len(names) + 1:
            raise GsJaxError(
                f"line {k} of '{path}' has {len(parts) - 1} values, expected {len(names)} (malformed file)"
            )
        rows.append(k)
        filenames.append(parts[0].strip())
        tokens.extend(parts[1:])
    return np.array(filenames, dtype=str), names, _pm1_to_01(tokens, rows, len(names), path)


def parse_partition_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``list_eval_partition.txt`` or ``.csv`` (by suffix): (filenames (n,), partition (n,) int8 in 0..2)."""
    path = Path(path)
    lines = _lines(path)
    first, sep = 0, None
    if path.suffix == ".csv":
        check(len(lines) >= 1, f"partition file '{path}' is empty")
        header = [h.strip() for h in lines[0][1].split(",")]
        check(
            header == ["image_id", "partition"],
            f"partition file '{path}' must start with the header 'image_id,partition', got {lines[0][1][:60]!r}",
        )
        first, sep = 1, ","
    names, parts_out = [], []
    for k, line in lines[first:]:
        parts = [p.strip() for p in line.split(sep)] if sep else line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise GsJaxError(
                f"line {k} of '{path}' should be '<file> <0|1|2>', got {line.strip()[:60]!r} (malformed file)"
            )
        names.append(parts[0])
        parts_out.append(int(parts[1]))
    return np.array(names, dtype=str), np.array(parts_out, dtype=np.int8)


def _find(directory: Path, candidates: tuple[str, ...], what: str, is_dir: bool = False) -> Path:
    for rel in candidates:
        path = directory / rel
        if path.is_dir() if is_dir else path.is_file():
            return path
    raise GsJaxError(
        f"no {what} in '{directory}' (looked for {', '.join(candidates)}); download CelebA (aligned & cropped "
        "images + list files) and point the data directory at it"
    )


def read_celeba_lists(directory: str | Path) -> CelebATable:
    """Find and parse the attribute and partition lists of a CelebA directory; align them by file name."""
    directory = Path(directory)
    check(
        directory.is_dir(),
        f"CelebA directory '{directory}' does not exist; point the data directory at CelebA",
    )
    attr_path = _find(directory, _ATTR_CANDIDATES, "attribute list (list_attr_celeba.csv/.txt)")
    part_path = _find(directory, _PARTITION_CANDIDATES, "partition list (list_eval_partition.csv/.txt)")
    filenames, names, attributes = parse_attr_file(attr_path)
    part_names, partition = parse_partition_file(part_path)
    check(
        len(np.unique(filenames)) == len(filenames),
        f"'{attr_path}' lists some image twice (malformed file)",
    )
    if not np.array_equal(part_names, filenames):
        order = {name: i for i, name in enumerate(part_names)}
        missing = [f for f in filenames if f not in order]
        if len(part_names) != len(filenames) or missing:
            example = (missing or sorted(set(part_names) - set(filenames)) or ["(a repeated name)"])[0]
            raise GsJaxError(
                f"'{attr_path}' and '{part_path}' list different images ({len(filenames)} vs {len(part_names)}; "
                f"e.g. '{example}' is in only one)"
            )
        partition = partition[[order[f] for f in filenames]]
    return CelebATable(filenames, attributes, names, partition, attr_path, part_path)


# ----------------------------------------------------------------------------------------------------------------
# Splits and groups
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CelebASplit:
    """One official split: file names, target, confounder and group per image."""

    filenames: np.ndarray  # (n,) str
    y: np.ndarray  # (n,) int32: target (Blond_Hair)
    confounder: np.ndarray  # (n,) int32: confounder (Male)
    groups: np.ndarray  # (n,) int32: 2·y + confounder
    group_counts: np.ndarray  # (4,) int64


@dataclasses.dataclass(frozen=True)
class CelebA:
    """CelebA metadata for the worst-group task: the three splits and where the images are."""

    train: CelebASplit
    val: CelebASplit
    test: CelebASplit
    image_dir: Path
    table: CelebATable
    target: str
    confounder: str

    def split(self, name: str) -> CelebASplit:
        check(name in SPLITS, f"unknown CelebA split {name!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, name)

    @property
    def group_counts(self) -> np.ndarray:
        """``(3, 4)`` int64: rows train/val/test, columns the groups 2·y + confounder."""
        return np.stack([self.train.group_counts, self.val.group_counts, self.test.group_counts])


def load_celeba(
    directory: str | Path,
    *,
    target: str = "Blond_Hair",
    confounder: str = "Male",
    check_files: bool = True,
) -> CelebA:
    """Read the list files of a CelebA directory and build the train/val/test splits with their groups.

    ``check_files`` (default on) checks that every listed image exists, with one directory listing (fast: no image
    is opened). Group counts come from the lists.
    """
    directory = Path(directory)
    table = read_celeba_lists(directory)
    image_dir = _find(directory, _IMAGE_DIR_CANDIDATES, "image folder (img_align_celeba/)", is_dir=True)
    if check_files:
        present = set(os.listdir(image_dir))
        missing = [f for f in table.filenames if f not in present]
        check(
            not missing,
            f"{len(missing)} of the {len(table.filenames)} images listed in '{table.attr_path}' are missing from "
            f"'{image_dir}' (first: '{missing[0] if missing else ''}'); re-extract img_align_celeba",
        )
    y, conf = table.column(target), table.column(confounder)
    groups = (2 * y + conf).astype(np.int32)
    splits = {}
    for value, name in enumerate(SPLITS):
        m = table.partition == value
        splits[name] = CelebASplit(
            filenames=table.filenames[m],
            y=y[m],
            confounder=conf[m],
            groups=groups[m],
            group_counts=np.bincount(groups[m], minlength=N_GROUPS).astype(np.int64),
        )
    return CelebA(**splits, image_dir=image_dir, table=table, target=target, confounder=confounder)


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


def center_crop_box(width: int, height: int, crop: int = CROP) -> tuple[int, int, int, int]:
    """PIL box (left, top, right, bottom) of torchvision's ``CenterCrop(crop)``: offsets ``round((dim − crop)/2)``.

    For a 178×218 CelebA image and crop 178: (0, 20, 178, 198).
    """
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


def decode_image(path: str | Path, *, size: int = SIZE, crop: int = CROP) -> np.ndarray:
    """One image as uint8 ``(size, size, 3)``: RGB, center crop ``crop``, PIL bilinear resize to ``size``.

    These are exactly the bytes torchvision's ``ToTensor`` receives in the upstream pipeline (PIL's resize output
    is uint8), so caching them loses nothing. ``size == crop`` skips the resize.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except FileNotFoundError:
        raise GsJaxError(f"image '{path}' is listed but missing; re-extract img_align_celeba") from None
    except (OSError, UnidentifiedImageError) as err:
        raise GsJaxError(
            f"cannot decode image '{path}' ({err}); the file is corrupt, re-extract it"
        ) from None
    width, height = image.size
    check(
        width >= crop and height >= crop,
        f"image '{path}' is {width}×{height}, smaller than the {crop}-pixel center crop",
    )
    image = image.crop(center_crop_box(width, height, crop))
    if size != crop:
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def normalize(images):
    """uint8 images ``(..., 3)`` → float32 ``(x/255 − mean)/std`` with the ImageNet statistics (ToTensor +
    Normalize). Works on numpy arrays on the host and on jax arrays under jit (channel-last)."""
    shape = (1,) * (images.ndim - 1) + (3,)  # explicit broadcast: fine under jax_numpy_rank_promotion="raise"
    mean, std = IMAGENET_MEAN.reshape(shape), IMAGENET_STD.reshape(shape)
    return (images.astype(np.float32) / np.float32(255.0) - mean) / std


def load_image(path: str | Path, *, size: int = SIZE, crop: int = CROP) -> np.ndarray:
    """One image through the whole upstream pipeline: float32 ``(size, size, 3)``, ImageNet-normalised."""
    return normalize(decode_image(path, size=size, crop=crop))


def cache_path(
    data: CelebA,
    split: str,
    cache_dir: str | Path,
    *,
    size: int = SIZE,
    crop: int = CROP,
    dtype: str = "uint8",
) -> Path:
    """The ``.npy`` cache file of a split; its name carries the size, crop, dtype and a digest of the file list."""
    names = data.split(split).filenames
    digest = hashlib.sha1("\n".join(names.tolist()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"celeba_{split}_{len(names)}_{size}px_crop{crop}_{dtype}_{digest}.npy"


def preprocess_split(
    data: CelebA,
    split: str,
    cache_dir: str | Path,
    *,
    size: int = SIZE,
    crop: int = CROP,
    dtype: str = "uint8",
    progress: Callable[[Iterable], Iterable] | None = None,
) -> np.ndarray:
    """Decode every image of a split once into ``cache_dir`` and return the cache, memory-mapped read-only.

    ``dtype="uint8"``: ``(n, size, size, 3)`` crop-and-resize bytes (apply :func:`normalize` on the device);
    ``dtype="float32"``: already normalised (4× the disk). A finished cache is reused as is (its name pins the
    file list, size, crop and dtype); a run interrupted midway leaves only a ``.partial`` file, never a cache.
    ``progress`` wraps the image iterator (e.g. ``tqdm``) if given.
    """
    check(dtype in ("uint8", "float32"), f"cache dtype must be 'uint8' or 'float32', got {dtype!r}")
    target = cache_path(data, split, cache_dir, size=size, crop=crop, dtype=dtype)
    names = data.split(split).filenames
    shape = (len(names), size, size, 3)
    if target.is_file():
        cached = np.load(target, mmap_mode="r")
        check(
            cached.shape == shape and cached.dtype == np.dtype(dtype),
            f"cache '{target}' holds {cached.shape} {cached.dtype}, expected {shape} {dtype}; delete it",
        )
        return cached
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.dtype(dtype), shape=shape)
    items: Iterable = enumerate(names)
    if progress is not None:
        items = progress(items)
    for i, name in items:
        pixels = decode_image(data.image_dir / name, size=size, crop=crop)
        out[i] = pixels if dtype == "uint8" else normalize(pixels)
    out.flush()
    del out
    os.replace(partial, target)
    return np.load(target, mmap_mode="r")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures for tests
# ----------------------------------------------------------------------------------------------------------------


def write_fake_celeba(
    directory: str | Path,
    n: int = 12,
    fmt: str = "txt",
    seed: int = 0,
    image_size: tuple[int, int] = (178, 218),
) -> Path:
    """Write a tiny CelebA in one of the two layouts; return ``directory``.

    ``fmt="txt"``: the original layout (``Anno/list_attr_celeba.txt``, ``Eval/list_eval_partition.txt``,
    ``img_align_celeba/``); ``fmt="csv"``: the Kaggle layout (top-level CSVs, ``img_align_celeba/img_align_celeba/``).
    Image i (1-based name ``%06d.jpg``) is a smooth random RGB JPEG of ``image_size`` (width, height); its split
    is ``i % 3`` and its group ``(i // 3) % 4`` (0-based i), so any n ≥ 12 has every (split, group) pair; the other
    38 attributes are random ±1. The same ``(n, seed)`` gives the same table and images in both formats.
    """
    check(fmt in ("txt", "csv"), f"fmt must be 'txt' or 'csv', got {fmt!r}")
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    attrs = rng.choice(np.array([-1, 1], np.int8), size=(n, len(ATTR_NAMES)))
    index = np.arange(n)
    group = (index // 3) % N_GROUPS
    attrs[:, ATTR_NAMES.index("Blond_Hair")] = np.where(group // 2 == 1, 1, -1)
    attrs[:, ATTR_NAMES.index("Male")] = np.where(group % 2 == 1, 1, -1)
    partition = index % 3
    names = [f"{i + 1:06d}.jpg" for i in range(n)]

    image_dir = directory / ("img_align_celeba" if fmt == "txt" else "img_align_celeba/img_align_celeba")
    image_dir.mkdir(parents=True, exist_ok=True)
    width, height = image_size
    for name in names:
        coarse = rng.integers(0, 256, size=(max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((width, height), Image.BILINEAR).save(image_dir / name, quality=90)

    if fmt == "txt":
        (directory / "Anno").mkdir(exist_ok=True)
        (directory / "Eval").mkdir(exist_ok=True)
        rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attrs, strict=True)]
        (directory / "Anno" / "list_attr_celeba.txt").write_text(
            f"{n}\n" + " ".join(ATTR_NAMES) + " \n" + "\n".join(rows) + "\n"
        )
        (directory / "Eval" / "list_eval_partition.txt").write_text(
            "".join(f"{name} {p}\n" for name, p in zip(names, partition, strict=True))
        )
    else:
        rows = [f"{name}," + ",".join(str(v) for v in row) for name, row in zip(names, attrs, strict=True)]
        (directory / "list_attr_celeba.csv").write_text(
            "image_id," + ",".join(ATTR_NAMES) + "\n" + "\n".join(rows) + "\n"
        )
        (directory / "list_eval_partition.csv").write_text(
            "image_id,partition\n"
            + "".join(f"{name},{p}\n" for name, p in zip(names, partition, strict=True))
        )
    return directory
