"""The data layer: layout, validator, datasets and the DOLOS-mini builder."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
import torch
from PIL import Image

from dolos_core.config import get_profile
from dolos_core.data import (DatasetError, DatasetKey, DolosDataset, EpochSampler, mask_to_fake,
                             read_mask, validate_root)
from dolos_core.data.mini import build_mini

from .conftest import make_layout, write_png


def test_mask_convention_grayscale_rgb_and_bool():
    gray = np.array([[255, 0], [128, 255]], np.uint8)
    np.testing.assert_array_equal(mask_to_fake(gray), [[0, 1], [1, 0]])
    rgb = np.stack([gray, np.zeros_like(gray), np.full_like(gray, 255)], -1)
    np.testing.assert_array_equal(mask_to_fake(rgb), [[0, 1], [1, 0]])  # channel 0 only
    np.testing.assert_array_equal(mask_to_fake(np.array([[True, False]])), [[0, 1]])


def test_read_mask_files_rgb_and_gray(tmp_path):
    m = np.full((8, 8), 255, np.uint8)
    m[2:4, 2:4] = 0
    write_png(tmp_path / "g.png", m)
    write_png(tmp_path / "c.png", np.stack([m, 255 - m, m], -1))
    for name in ("g.png", "c.png"):
        out = read_mask(tmp_path / name)
        assert out.shape == (8, 8) and out.sum() == 4 and out[2, 2] == 1 and out[0, 0] == 0


def test_validator_counts_a_clean_layout(tiny_root):
    report = validate_root(tiny_root)
    counts = report.counts()
    assert counts["celebahq/real/train"] == 3
    assert counts["celebahq/repaint-p2/test"] == 3
    assert not report.problems
    assert "ffhq/real/test" in report.missing()  # absent datasets are reported, not fatal
    table = report.table()
    row = table[(table.generator == "repaint-p2") & (table.split == "test")].iloc[0]
    assert row["masks"] == 3 and row["size"] == "32x32" and row["status"] == "ok"
    report.raise_for_problems()  # no exception


def test_validator_names_every_broken_file(tmp_path):
    root = make_layout(tmp_path / "d", rgb_masks=True)
    key = DatasetKey("celebahq", "repaint-p2")
    (key.images_dir(root, "train") / "000.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (key.masks_dir(root, "valid") / "001.png").unlink()                       # image without mask
    write_png(key.masks_dir(root, "test") / "999.png", np.zeros((32, 32), np.uint8))  # orphan mask
    write_png(key.masks_dir(root, "test") / "002.png", np.zeros((16, 16), np.uint8))  # wrong size
    import shutil
    shutil.rmtree(DatasetKey("celebahq", "p2").images_dir(root, "test"))      # missing split
    report = validate_root(root)
    text = "\n".join(report.problems)
    assert f"{key.images_dir(root, 'train') / '000.png'}: unreadable image" in text
    assert f"{key.images_dir(root, 'valid') / '001.png'}: image has no mask" in text
    assert f"{key.masks_dir(root, 'test') / '999.png'}: mask has no image" in text
    assert f"{key.masks_dir(root, 'test') / '002.png'}: mask is 16x16 but its image is 32x32" in text
    assert len(report.problems) == 4
    assert "celebahq/p2/test" in report.missing()
    with pytest.raises(DatasetError, match="4 problem"):
        report.raise_for_problems()


def test_validator_names_masks_with_gray_values_and_their_share(tmp_path):
    root = make_layout(tmp_path / "d")
    key = DatasetKey("celebahq", "repaint-p2")
    m = np.full((32, 32), 255, np.uint8)
    m[:8, :16] = 0
    m[8, :16] = 128                        # an antialiased edge: 16 of 1,024 pixels
    write_png(key.masks_dir(root, "test") / "001.png", m)
    write_png(key.masks_dir(root, "valid") / "002.png", np.stack([m, m, m], -1))  # RGB, channel 0 read
    report = validate_root(root)
    assert len(report.problems) == 2
    for split, name in (("test", "001.png"), ("valid", "002.png")):
        assert any(p.startswith(f"{key.masks_dir(root, split) / name}: mask holds values other than 0 and 255 "
                                "in 1.56% of its pixels") for p in report.problems), report.problems


def test_validator_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        validate_root(tmp_path / "nope")


def test_dataset_items_mask_convention_and_resize(tiny_root):
    ds = DolosDataset(tiny_root, "celebahq/repaint-p2", "train", input_size=48)
    assert ds.names == ["000.png", "001.png", "002.png"]  # sorted
    item = ds[1]
    assert item["image"].shape == (3, 48, 48) and item["label"] == 1 and item["has_mask"]
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    mask = item["mask"]
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}       # nearest keeps it binary
    assert abs(float(mask.mean()) - (8 * 12) / 32**2) < 0.02     # the 8x12 fake square
    flipped = ds[(1, True)]
    assert torch.equal(flipped["mask"], mask.flip(-1))
    assert torch.equal(flipped["image"], item["image"].flip(-1))
    real = DolosDataset(tiny_root, "celebahq/real", "test", 32)[0]
    assert real["label"] == 0 and not real["has_mask"] and float(real["mask"].sum()) == 0
    full = DolosDataset(tiny_root, "celebahq/p2", "test", 32)[0]
    assert full["label"] == 1 and float(full["mask"].mean()) == 1.0


def test_dataset_errors_name_the_file(tiny_root):
    with pytest.raises(DatasetError, match="ffhq/real/test.*missing"):
        DolosDataset(tiny_root, "ffhq/real", "test", 32)
    key = DatasetKey("celebahq", "real")
    bad = key.images_dir(tiny_root, "test") / "001.png"
    bad.write_bytes(b"garbage")
    ds = DolosDataset(tiny_root, key, "test", 32)
    with pytest.raises(DatasetError, match=str(bad)):
        ds[1]


def test_epoch_sampler_is_deterministic_and_covers_the_data():
    a = list(EpochSampler(10, 4, 5, seed=3, epoch=1, flip=True))
    b = list(EpochSampler(10, 4, 5, seed=3, epoch=1, flip=True))
    c = list(EpochSampler(10, 4, 5, seed=3, epoch=2, flip=True))
    assert a == b and a != c
    idx = [i for batch in a for i, _ in batch]
    assert len(idx) == 20 and sorted(idx[:10]) == list(range(10))  # a permutation per pass
    assert not any(f for batch in EpochSampler(10, 4, 5, 3, 1, flip=False) for _, f in batch)


def test_mini_builder_is_deterministic(tmp_path):
    prof = get_profile("smoke")
    a = build_mini(tmp_path / "a", prof, seed=1, workers=2, progress=False)
    build_mini(tmp_path / "b", prof, seed=1, workers=1, progress=False)
    build_mini(tmp_path / "c", prof, seed=2, workers=1, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) > 100
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    differ = [rel for rel in files if not filecmp.cmp(tmp_path / "a" / rel, tmp_path / "c" / rel, shallow=False)]
    assert len(differ) > 0.9 * len(files)
    assert a["counts"]["ffhq/real"]["test"] == 0  # like the real FFHQ: no test split


def test_mini_builder_layout_validates_and_masks_are_plausible(tmp_path):
    root = tmp_path / "m"
    build_mini(root, get_profile("smoke"), seed=0, progress=False)
    report = validate_root(root)
    assert not report.problems
    counts = report.counts()
    for gen in ("real", "p2", "repaint-p2", "repaint-p2-9k", "ldm", "lama", "pluralistic"):
        assert counts[f"celebahq/{gen}/train"] > 0, gen
    assert counts["celebahq/repaint-p2/train"] > counts["celebahq/repaint-p2-9k/train"]
    assert "ffhq/real/test" in report.missing()
    key = DatasetKey("celebahq", "lama")
    masks = [read_mask(key.masks_dir(root, "train") / n) for n in sorted(
        p.name for p in key.masks_dir(root, "train").iterdir())]
    areas = [m.mean() for m in masks]
    assert all(0 < a < 0.6 for a in areas)
    # 9k subset: same files as the start of repaint-p2
    k9 = DatasetKey("celebahq", "repaint-p2-9k")
    first = sorted(p.name for p in k9.images_dir(root, "train").iterdir())[0]
    assert filecmp.cmp(k9.images_dir(root, "train") / first,
                       DatasetKey("celebahq", "repaint-p2").images_dir(root, "train") / first, shallow=False)


def test_inpainting_masks_are_exactly_the_changed_pixels():
    """Outside the mask an inpainted image is its real image, byte for byte; inside, (nearly)
    every pixel was regenerated. Measured on 8 samples per generator at the mini size."""
    from dolos_core.data.mini import make_sample

    for gen in ("repaint-p2", "ldm", "lama", "pluralistic"):
        changed = []
        for i in range(8):
            base_seed = [0, 3, i]
            real, _ = make_sample("celebahq", "real", 96, base_seed)
            img, mask = make_sample("celebahq", gen, 96, [0, 7, i], base_seed)
            assert 0 < mask.mean() < 0.6
            outside = mask == 0
            np.testing.assert_array_equal(img[outside], real[outside])   # real pixels stay real
            changed.append((img != real).any(-1)[~outside].mean())
        assert np.mean(changed) > 0.97, (gen, changed)


def _noise_level(img: np.ndarray, region: np.ndarray) -> float:
    """Median |grey - 3x3 median| over ``region``: the fine texture a camera's noise leaves
    (the median ignores the few edge pixels)."""
    import cv2

    g = img.astype(np.float32).mean(-1)
    return float(np.median(np.abs(g - cv2.medianBlur(g, 3))[region]))


@pytest.mark.parametrize("gen", ["repaint-p2", "ldm"])
def test_generator_traces_survive_flips_and_resizing(gen):
    """The trace is a texture statistic, not a pixel-locked pattern: inside the mask a fake is
    smoother than its real image there, unflipped, flipped, and after the Lanczos resize the
    weak trainings apply (96 -> 112 px, the paper's 256 -> 299 ratio)."""
    import cv2

    from dolos_core.data.mini import make_sample

    ratios = {"plain": [], "flip": [], "resize": []}
    for i in range(8):
        real, _ = make_sample("celebahq", "real", 96, [0, 3, i])
        fake, mask = make_sample("celebahq", gen, 96, [0, 7, i], [0, 3, i])
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0     # away from the seam
        if inner.sum() < 20:
            continue
        ratios["plain"].append(_noise_level(fake, inner) / max(_noise_level(real, inner), 1e-3))
        ratios["flip"].append(_noise_level(fake[:, ::-1], inner[:, ::-1])
                              / _noise_level(real[:, ::-1], inner[:, ::-1]))
        big = lambda a: np.asarray(Image.fromarray(a).resize((112, 112), Image.LANCZOS))  # noqa: E731
        region = np.asarray(Image.fromarray(inner.astype(np.uint8)).resize((112, 112), Image.NEAREST)) > 0
        ratios["resize"].append(_noise_level(big(fake), region) / _noise_level(big(real), region))
    assert len(ratios["plain"]) >= 3
    for kind, limit in (("plain", 0.75), ("flip", 0.75), ("resize", 0.9)):
        assert np.median(ratios[kind]) < limit, (gen, kind, ratios[kind])
    assert np.median(ratios["flip"]) == pytest.approx(np.median(ratios["plain"]), rel=0.05)


def test_inpainted_sets_are_made_from_the_real_split(tmp_path):
    """As in DOLOS: the inpainted images of a split start from that split's real images."""
    root = tmp_path / "m"
    build_mini(root, get_profile("smoke"), seed=0, progress=False)
    real = np.asarray(Image.open(DatasetKey("celebahq", "real").images_dir(root, "test") / "000001.png"))
    key = DatasetKey("celebahq", "lama")
    fake = np.asarray(Image.open(key.images_dir(root, "test") / "000001.png"))
    mask = read_mask(key.masks_dir(root, "test") / "000001.png")
    np.testing.assert_array_equal(fake[mask == 0], real[mask == 0])


@pytest.mark.parametrize("method,sup,resize,flip,mask_resize", [
    ("patches", "weak", "lanczos", True, "nearest"),
    ("gradcam", "weak", "lanczos", True, "nearest"),
    ("attention", "weak", "bilinear", False, "bilinear"),
    ("patches", "full", "bilinear", False, "nearest"),
    ("gradcam", "full", "bilinear", False, "nearest"),
    ("attention", "full", "bilinear", False, "bilinear"),
])
def test_transform_per_method_and_supervision_is_the_authors(method, sup, resize, flip, mask_resize):
    """Patches weak and Grad-CAM weak: Lanczos, flips in training; Attention and every full
    supervision: bilinear (torchvision's default Resize), no flip. Masks: nearest to the map,
    bilinear for Attention. Validation and test never flip."""
    from dolos_core.data import transform_for

    t = transform_for(method, sup, 299, map_size=19)
    assert (t.resize, t.flip, t.mask_resize) == (resize, flip, mask_resize)
    assert t.mask_size == (19 if sup == "full" else None)
    assert transform_for(method, sup, 299, map_size=19, train=False).flip is False


def test_transform_resamples_as_pillow_and_binarises_bilinear_masks():
    from dolos_core.data import Transform

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for name, f in (("lanczos", Image.LANCZOS), ("bilinear", Image.BILINEAR)):
        out = Transform(299, resize=name).image(img)
        assert np.array_equal(out, np.asarray(Image.fromarray(img).resize((299, 299), f)))
    mask = np.zeros((256, 256), np.uint8)
    mask[:, :100] = 1                                        # 1 = fake, left 100 columns
    soft = Transform(299, mask_size=19, mask_resize="bilinear").mask(mask)
    assert soft.shape == (19, 19) and set(np.unique(soft)) <= {0, 1}
    # the authors: bilinear on the 255-is-real file, then fake where < 0.5
    ref = np.asarray(Image.fromarray((255 * (1 - mask)).astype(np.uint8)).resize((19, 19), Image.BILINEAR)) / 255 < 0.5
    assert np.array_equal(soft, ref.astype(np.uint8))
    near = Transform(299, mask_size=37).mask(mask)
    assert np.array_equal(near, np.asarray(Image.fromarray(mask).resize((37, 37), Image.NEAREST)))


def test_dataset_applies_the_transform_to_image_and_mask(tiny_root):
    from dolos_core.data import transform_for

    ds = DolosDataset(tiny_root, "celebahq/repaint-p2", "train", 40,
                      transform=transform_for("attention", "full", 40, map_size=5))
    item = ds[0]
    assert item["image"].shape == (3, 40, 40) and item["mask"].shape == (5, 5)
    real = DolosDataset(tiny_root, "celebahq/real", "train", 40, transform=transform_for("patches", "full", 40, 7))
    assert real[0]["mask"].shape == (7, 7) and real[0]["mask"].sum() == 0


@pytest.mark.parametrize("method,sup,map_size", [("patches", "weak", None), ("patches", "full", 8),
                                                 ("attention", "full", 4), ("gradcam", "weak", None)])
def test_decoded_split_gives_the_per_item_batches_bit_for_bit(tmp_path, method, sup, map_size):
    """Decoding once into uint8 and normalising and flipping on the device gives exactly the
    batches the per-item dataset and ``collate`` give; the cache file is written once and
    reused; weak runs carry no mask."""
    from dolos_core.data.datasets import ConcatDolos, DecodedSplit, collate, transform_for

    root = make_layout(tmp_path / "d", size=40, n=4)
    tf = transform_for(method, sup, 32, map_size, train=True)
    ds = ConcatDolos([DolosDataset(root, k, "train", 32, transform=tf)
                      for k in ("celebahq/real", "celebahq/repaint-p2")])
    dec = DecodedSplit(ds, with_masks=sup == "full", cache_dir=tmp_path / "cache")
    items = [(0, True), (5, False), (7, True), (2, False), (6, False)]
    ref = collate([ds[i] for i in items])
    got = DecodedSplit.on_device(dec.batch(items), torch.device("cpu"))
    assert got["image"].dtype == torch.float32 and torch.equal(got["image"], ref["image"])
    assert got["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got["label"], ref["label"]) and torch.equal(got["has_mask"], ref["has_mask"])
    if sup == "full":
        assert torch.equal(got["mask"], ref["mask"])
    else:
        assert "mask" not in got and dec.masks is None
    assert dec.batch(items)["image"].dtype == torch.uint8          # uint8 over the bus
    (cached,) = (tmp_path / "cache").iterdir()
    stamp = cached.stat().st_mtime_ns
    again = DecodedSplit(ds, with_masks=sup == "full", cache_dir=tmp_path / "cache")
    assert np.array_equal(again.images, dec.images) and cached.stat().st_mtime_ns == stamp


def test_atomic_writes_get_a_plain_files_mode(tmp_path):
    """A file written through ``atomic_path`` is readable as any file the user writes (the
    temporary file it starts from is private, 0600)."""
    import os

    from dolos_core.io import atomic_path

    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_path(tmp_path / "table.csv") as tmp:
        tmp.write_text("a,b\n1,2\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n")
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~umask


def test_lama_and_pluralistic_differ_in_kind():
    """Pluralistic's fill is real texture copied from elsewhere in the same image (plus a 2x2
    block noise of sigma 2.5, mean |noise| 2.0): some shift of the real image matches it to ~2
    grey levels; LaMa's is a smooth fill from the mask's border, which no shift of the real
    image matches (nor do the re-rendered fills of Repaint-P2 and LDM)."""
    from dolos_core.data.mini import make_sample

    def best_copy(fake, real, mask):
        sel, h = mask > 0, mask.shape[0]
        return min(np.abs(fake.astype(float) - np.roll(real, (dy, dx), (0, 1)))[sel].mean()
                   for dy in range(-h // 3, h // 3 + 1) for dx in range(-h // 3, h // 3 + 1) if abs(dy) + abs(dx) >= 2)

    for i in range(3):
        real, _ = make_sample("celebahq", "real", 96, [0, 3, i])
        fits = {}
        for g in ("pluralistic", "lama", "ldm"):
            fake, mask = make_sample("celebahq", g, 96, [0, 7, i], [0, 3, i])
            fits[g] = best_copy(fake, real, mask)
        assert fits["pluralistic"] < 2.5, fits
        assert fits["lama"] > 5 and fits["ldm"] > 5, fits
