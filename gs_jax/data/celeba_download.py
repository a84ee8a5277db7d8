"""``make data-celeba``: fetch the official CelebA files (the only code that downloads CelebA).

The aligned-and-cropped images and the two lists come from the authors' Google Drive folder (the file ids and md5s
torchvision's ``CelebA`` uses); the result is the original layout :func:`gs_jax.data.celeba.load_celeba` reads::

    DIR/img_align_celeba/000001.jpg … 202599.jpg     (1.4 GB zip, extracted)
    DIR/Anno/list_attr_celeba.txt
    DIR/Eval/list_eval_partition.txt

Files already present with the right md5 are not fetched again; a failed or interrupted transfer leaves only a
``.part`` file. Google Drive rate-limits large files: when it answers with a page instead of the file, the error
says so — download the three files with a browser and put them where the layout above says.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

from gs_jax.errors import GsJaxError, check

URL = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
FILES = (  # (Drive id, md5, path under DIR)
    ("0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb", "img_align_celeba.zip"),
    ("0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c", "Anno/list_attr_celeba.txt"),
    ("0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668", "Eval/list_eval_partition.txt"),
)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, target: Path, md5: str) -> Path:
    """``url`` → ``target`` through ``target.part``, checked against ``md5``; one GsJaxError line on failure."""
    if target.is_file() and _md5(target) == md5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except OSError as err:
        part.unlink(missing_ok=True)
        raise GsJaxError(
            f"could not download {target.name} ({getattr(err, 'reason', None) or type(err).__name__}); no internet? "
            f"fetch it with a browser from the CelebA page and put it at '{target}'"
        ) from None
    got = _md5(part)
    if got != md5:
        head = part.read_bytes()[:200].lower()
        part.unlink(missing_ok=True)
        why = "Google Drive answered with a web page (quota or sign-in)" if b"<html" in head else f"md5 {got}"
        raise GsJaxError(f"downloaded {target.name} is not the official file ({why}, expected md5 {md5}); "
                         f"fetch it with a browser and put it at '{target}'")  # fmt: skip
    part.replace(target)
    return target


def download(directory: str | Path, url: str = URL) -> Path:
    """The three files into ``directory`` (images extracted); returns ``directory``."""
    directory = Path(directory)
    for file_id, md5, rel in FILES:
        if rel.endswith(".zip") and (directory / "img_align_celeba" / "202599.jpg").is_file():
            continue  # already extracted
        fetch(url.format(file_id), directory / rel, md5)
    archive = directory / "img_align_celeba.zip"
    if archive.is_file():
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if n.startswith("/") or ".." in Path(n).parts]
            check(not bad, f"'{archive}' holds unsafe paths (first: {bad[:1]}); delete it")
            z.extractall(directory)
        archive.unlink()
    return directory


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "download":
        print("usage: python -m gs_jax.data.celeba_download download DIR", file=sys.stderr)
        return 2
    try:
        folder = download(argv[1])
    except GsJaxError as err:
        print(f"data-celeba: error: {err}", file=sys.stderr)
        return 2
    print(f"data-celeba: CelebA ready in {folder}; run make worst-group ARGS=\"--config "
          f"configs/worst_group.py:celeba --config.data.dir={folder}\"")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
