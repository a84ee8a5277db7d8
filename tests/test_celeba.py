"""CelebA reader on generated datasets in both published layouts: parsing, groups, decoding, cache, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from gs_jax.data import celeba
from gs_jax.errors import GsJaxError


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    return {fmt: celeba.write_fake_celeba(root / fmt, n=15, fmt=fmt, seed=3) for fmt in ("txt", "csv")}


def test_both_formats_parse_to_the_same_table(fake):
    a, b = celeba.read_celeba_lists(fake["txt"]), celeba.read_celeba_lists(fake["csv"])
    assert a.attr_path.suffix == ".txt" and b.attr_path.suffix == ".csv"
    np.testing.assert_array_equal(a.filenames, b.filenames)
    np.testing.assert_array_equal(a.attributes, b.attributes)
    np.testing.assert_array_equal(a.partition, b.partition)
    assert a.attr_names == b.attr_names == celeba.ATTR_NAMES
    assert a.attributes.shape == (15, 40) and set(np.unique(a.attributes)) == {0, 1}


def independent_parse(attr_txt: Path, part_txt: Path):
    """Plain-Python reading of the original .txt files: {name: (blond, male, split)} with -1 -> 0."""
    lines = attr_txt.read_text().splitlines()
    names = lines[1].split()
    out = {}
    for line in lines[2:]:
        parts = line.split()
        values = dict(zip(names, parts[1:], strict=True))
        out[parts[0]] = [int(values["Blond_Hair"] == "1"), int(values["Male"] == "1")]
    for line in part_txt.read_text().splitlines():
        name, split = line.split()
        out[name].append(int(split))
    return out


def test_groups_and_counts(fake):
    data = celeba.load_celeba(fake["txt"])
    ref = independent_parse(
        fake["txt"] / "Anno/list_attr_celeba.txt", fake["txt"] / "Eval/list_eval_partition.txt"
    )
    for s, name in enumerate(celeba.SPLITS):
        split = data.split(name)
        want = {f: v for f, v in ref.items() if v[2] == s}
        assert sorted(split.filenames) == sorted(want)
        for f, y, male, g in zip(split.filenames, split.y, split.confounder, split.groups, strict=True):
            assert (y, male, g) == (want[f][0], want[f][1], 2 * want[f][0] + want[f][1])
        np.testing.assert_array_equal(split.group_counts, np.bincount(split.groups, minlength=4))
    # images 0..14: split i % 3, group (i // 3) % 4 -> groups 0,1,2,3,0 in each split, 5 images per split
    np.testing.assert_array_equal(data.group_counts, [[2, 1, 1, 1]] * 3)
    np.testing.assert_array_equal(celeba.load_celeba(fake["csv"]).group_counts, data.group_counts)
    assert data.image_dir.name == "img_align_celeba"
    assert celeba.load_celeba(fake["csv"]).image_dir == fake["csv"] / "img_align_celeba/img_align_celeba"


def test_reference_counts_sum_to_the_official_split_sizes():
    sums = {k: sum(v) for k, v in celeba.REFERENCE_GROUP_COUNTS.items()}
    assert sums == {"train": 162770, "val": 19867, "test": 19962}
    assert sum(sums.values()) == 202599


def test_center_crop_box_is_torchvisions():
    assert celeba.center_crop_box(178, 218) == (0, 20, 178, 198)
    assert celeba.center_crop_box(200, 219, crop=178) == (
        11,
        20,
        189,
        198,
    )  # round(20.5) = 20, round(11.0) = 11


def test_decoding_against_pil(fake):
    path = fake["txt"] / "img_align_celeba" / "000007.jpg"
    with Image.open(path) as im:
        raw = np.asarray(im.convert("RGB"))  # (218, 178, 3): PIL's own decode of the same file
    # no resize: the crop is rows 20..197 of the decoded image
    crop = celeba.decode_image(path, size=178)
    np.testing.assert_array_equal(crop, raw[20:198])
    # the full pipeline at 224 px, one pixel by hand
    x = celeba.load_image(path)
    assert x.shape == (224, 224, 3) and x.dtype == np.float32
    with Image.open(path) as im:
        resized = np.asarray(im.convert("RGB").crop((0, 20, 178, 198)).resize((224, 224), Image.BILINEAR))
    r, c = 101, 57
    for ch, (mean, std) in enumerate(((0.485, 0.229), (0.456, 0.224), (0.406, 0.225))):
        assert x[r, c, ch] == pytest.approx((resized[r, c, ch] / 255.0 - mean) / std, abs=1e-6)
    # normalize is jit-compatible and agrees with the host version
    u8 = celeba.decode_image(path, size=32)
    np.testing.assert_allclose(jax.jit(celeba.normalize)(u8), celeba.normalize(u8), atol=1e-6)


def test_preprocess_split_cache(fake, tmp_path):
    data = celeba.load_celeba(fake["csv"])
    seen = []

    def progress(items):
        for item in items:
            seen.append(item[0])
            yield item

    arr = celeba.preprocess_split(data, "val", tmp_path, size=24, progress=progress)
    assert arr.shape == (5, 24, 24, 3) and arr.dtype == np.uint8 and seen == list(range(5))
    np.testing.assert_array_equal(
        arr[2], celeba.decode_image(data.image_dir / data.val.filenames[2], size=24)
    )
    files = sorted(p.name for p in tmp_path.iterdir())  # one finished cache, no .partial left behind
    assert files == [celeba.cache_path(data, "val", tmp_path, size=24).name]
    assert files[0].startswith("celeba_val_5_24px_crop178_uint8_") and files[0].endswith(".npy")
    # a second call reads the cache without decoding
    again = celeba.preprocess_split(
        data, "val", tmp_path, size=24, progress=lambda it: pytest.fail("re-decoded")
    )
    np.testing.assert_array_equal(again, arr)
    f32 = celeba.preprocess_split(data, "val", tmp_path, size=24, dtype="float32")
    np.testing.assert_allclose(f32, celeba.normalize(np.asarray(arr)), atol=1e-6)
    with pytest.raises(GsJaxError, match="uint8"):
        celeba.preprocess_split(data, "val", tmp_path, dtype="float16")


# ------------------------------------------------------------------------------------------------ errors


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture
def copy(fake, tmp_path):
    def make(fmt):
        dst = tmp_path / fmt
        shutil.copytree(fake[fmt], dst)
        return dst

    return make


def test_missing_directory_and_lists(copy, tmp_path):
    with pytest.raises(GsJaxError, match="does not exist") as err:
        celeba.load_celeba(tmp_path / "nowhere")
    one_line(err)
    d = copy("txt")
    (d / "Eval/list_eval_partition.txt").unlink()
    with pytest.raises(GsJaxError, match="partition list") as err:
        celeba.load_celeba(d)
    one_line(err)
    (d / "Anno/list_attr_celeba.txt").unlink()
    with pytest.raises(GsJaxError, match="attribute list") as err:
        celeba.load_celeba(d)
    one_line(err)
    shutil.rmtree(copy("csv") / "img_align_celeba")
    with pytest.raises(GsJaxError, match="image folder") as err:
        celeba.load_celeba(tmp_path / "csv")
    one_line(err)


def test_listed_image_absent(copy):
    d = copy("csv")
    (d / "img_align_celeba/img_align_celeba/000004.jpg").unlink()
    with pytest.raises(GsJaxError, match=r"1 of the 15 images .* \(first: '000004.jpg'\)") as err:
        celeba.load_celeba(d)
    one_line(err)
    data = celeba.load_celeba(
        d, check_files=False
    )  # the fast check can be skipped; decoding still reports it
    with pytest.raises(GsJaxError, match="listed but missing") as err:
        celeba.load_image(data.image_dir / "000004.jpg")
    one_line(err)


def test_corrupt_jpeg(copy):
    d = copy("txt")
    (d / "img_align_celeba/000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(GsJaxError, match="cannot decode") as err:
        celeba.decode_image(d / "img_align_celeba/000002.jpg")
    one_line(err)


def _edit(path: Path, line_no: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "fmt,file,line,new,match",
    [
        ("txt", "Anno/list_attr_celeba.txt", 1, "fifteen", "number of images"),
        ("txt", "Anno/list_attr_celeba.txt", 1, "16", "announces 16 images"),
        ("txt", "Anno/list_attr_celeba.txt", 4, "000002.jpg 1 -1", "has 2 values, expected 40"),
        ("txt", "Anno/list_attr_celeba.txt", 5, "000003.jpg" + " 0" * 40, "value '0'"),
        ("txt", "Eval/list_eval_partition.txt", 2, "000002.jpg 5", "<0|1|2>"),
        ("txt", "Eval/list_eval_partition.txt", 2, "000099.jpg 1", "list different images"),
        ("txt", "Eval/list_eval_partition.txt", 2, None, "list different images"),
        ("csv", "list_attr_celeba.csv", 1, "name," + ",".join(celeba.ATTR_NAMES), "header 'image_id"),
        ("csv", "list_attr_celeba.csv", 3, "000002.jpg,1,-1,1", "has 3 values"),
        ("csv", "list_eval_partition.csv", 1, "image_id,split", "header 'image_id,partition'"),
    ],
)
def test_malformed_list_files(copy, fmt, file, line, new, match):
    d = copy(fmt)
    _edit(d / file, line, new)
    with pytest.raises(GsJaxError, match=match) as err:
        celeba.load_celeba(d)
    text = one_line(err)
    assert Path(file).name in text


def test_unknown_attribute_and_split(fake):
    with pytest.raises(GsJaxError, match="not an attribute") as err:
        celeba.load_celeba(fake["txt"], target="Blonde")
    one_line(err)
    with pytest.raises(GsJaxError, match="unknown CelebA split"):
        celeba.load_celeba(fake["txt"]).split("dev")


def test_partition_order_may_differ(copy):
    d = copy("csv")
    path = d / "list_eval_partition.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    np.testing.assert_array_equal(celeba.load_celeba(d).group_counts, [[2, 1, 1, 1]] * 3)
