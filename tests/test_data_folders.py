"""Image-folder data: the layouts users have, decoding of odd files, and one clear line for bad input."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from imagefiles import rgb, write_domains, write_folder
from lit_gans.data.domains import DomainsDataModule
from lit_gans.data.images import read_image
from lit_gans.data.paired import PairedDataModule
from lit_gans.data.unpaired import UnpairedDataModule
from lit_gans.errors import DataError


def _dm(root, **kw):
    kw.setdefault("num_workers", 0)
    kw.setdefault("batch_size", 4)
    return DomainsDataModule(str(root), img_size=kw.pop("img_size", 32), latent_dim=kw.pop("latent_dim", 5), **kw)


# ---------------------------------------------------------------------------------------------- domains
def test_domains_items_splits_and_names(tmp_path):
    write_domains(tmp_path / "train", {"dog": 6, "cat": 5})
    write_domains(tmp_path / "val", {"cat": 2, "dog": 2}, seed=1)
    dm = _dm(tmp_path, with_ref2=True)
    assert dm.data_spec() == {"channels": 3, "img_size": 32, "num_domains": 2, "domain_names": ["cat", "dog"],
                              "layout": "domains"}
    dm.setup()
    assert len(dm.train_set) == 11 and len(dm.val_set) == 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["x_src"].shape == batch["x_ref"].shape == batch["x_ref2"].shape == (4, 3, 32, 32)
    without = _dm(tmp_path)  # no model reads x_ref2: it is not decoded
    without.setup()
    other = next(iter(without.train_dataloader()))
    assert "x_ref2" not in other and torch.equal(other["x_ref"], batch["x_ref"])
    assert batch["z1"].shape == (4, 5) and batch["x_src"].dtype == torch.float32
    assert batch["x_src"].min() >= -1 and batch["x_src"].max() <= 1
    # References come from the target domain: their labels match y_trg.
    item = dm.train_set[(3, 12345)]
    assert item["y_trg"].item() in (0, 1) and item["y_src"].item() == 0  # files sorted: cat first
    grid = dm.sample_batch(4)
    assert grid["y_src"].tolist() == [0, 0, 1, 1]  # the val split, spread over domains


def test_domain_balanced_sampling_weights_inverse_to_size(tmp_path):
    write_domains(tmp_path, {"a": 24, "b": 4}, size=(8, 8))
    dm = _dm(tmp_path, img_size=8)
    dm.setup()
    sampler = dm.train_dataloader().sampler
    counts = torch.zeros(2)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        for index, _seed in sampler:
            counts[dm.train_set.labels[index]] += 1
    share = (counts / counts.sum()).tolist()
    assert share[1] == pytest.approx(0.5, abs=0.05)  # 4 images but half the draws


def test_items_are_the_same_whatever_the_workers(tmp_path):
    write_domains(tmp_path, {"a": 6, "b": 6})
    batches = []
    for workers in (0, 2):
        dm = _dm(tmp_path, num_workers=workers)
        dm.setup()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(3)
        batches.append(next(iter(loader)))
    for k in batches[0]:
        assert torch.equal(batches[0][k], batches[1][k]), k


def test_odd_images_are_converted(tmp_path):
    Image.new("L", (10, 8), 100).save(tmp_path / "gray.png")
    Image.new("RGBA", (10, 8), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    Image.new("P", (10, 8), 3).save(tmp_path / "palette.png")
    Image.fromarray(np.full((8, 10), 51400, dtype=np.uint16)).save(tmp_path / "deep.png")
    rgb((10, 8), value=77).save(tmp_path / "plain.bmp")
    assert read_image(tmp_path / "gray.png").tolist() == torch.full((3, 8, 10), 100).tolist()
    assert read_image(tmp_path / "rgba.png")[:, 0, 0].tolist() == [10, 20, 30]
    assert read_image(tmp_path / "palette.png").shape == (3, 8, 10)
    deep = read_image(tmp_path / "deep.png")
    assert deep.dtype == torch.uint8 and deep.shape == (3, 8, 10) and int(deep[0, 0, 0]) == 51400 >> 8
    assert read_image(tmp_path / "plain.bmp")[:, 3, 3].tolist() == [77, 77, 77]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda r: None, ["does not exist", "nowhere"]),
        (lambda r: (r / "only").mkdir(parents=True) or write_domains(r, {"only": 3}), ["1 domain folder", "only", "at least 2"]),
        (lambda r: write_domains(r, {"cat": 3}) and (r / "dog").mkdir(), ["dog", "has no images"]),
        (lambda r: r.mkdir(parents=True) or (r / "x.txt").write_text("hi"), ["no domain sub-folders"]),
    ],
    ids=["missing-root", "one-domain", "empty-domain", "no-folders"],
)
def test_domains_bad_layouts_are_one_line(tmp_path, build, words):
    root = tmp_path / "nowhere"
    build(root)
    with pytest.raises(DataError) as err:
        _dm(root).data_spec()
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_missing_val_split_is_named(tmp_path):
    write_domains(tmp_path / "val", {"a": 2, "b": 2})
    with pytest.raises(DataError, match="has no train/ folder"):
        _dm(tmp_path).data_spec()


def test_unreadable_images_are_skipped_with_one_warning_or_rejected_when_strict(tmp_path, caplog):
    write_domains(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = tmp_path / "b" / "000.png"
    (tmp_path / "b" / "truncated.jpg").write_bytes(open(good, "rb").read()[:0] + b"\xff\xd8\xff\xe0" + b"\0" * 20)
    (tmp_path / "b" / "notes.png").write_text("not an image")
    (tmp_path / "b" / "empty.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        dm = _dm(tmp_path)
        dm.setup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipping 4 unreadable image file(s)" in warnings[0]
    for name in ("broken.png", "truncated.jpg", "notes.png", "empty.jpg"):
        assert name in warnings[0]
    assert len(dm.train_set) == 8
    with pytest.raises(DataError, match="4 unreadable image file.*data.strict=false"):
        _dm(tmp_path, strict=True).data_spec()


def test_a_file_that_breaks_after_setup_is_replaced_and_reported(tmp_path, caplog):
    write_domains(tmp_path, {"a": 3, "b": 3})
    dm = _dm(tmp_path, verify=False)
    dm.setup()
    (tmp_path / "a" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken later")
    with caplog.at_level(logging.WARNING):
        items = [dm.train_set[(i, i)] for i in range(3)]
    assert all(it["x_src"].shape == (3, 32, 32) for it in items)
    assert any("001.png" in r.getMessage() for r in caplog.records)


def test_small_images_are_upscaled_with_a_warning(tmp_path, caplog):
    write_domains(tmp_path, {"a": 2, "b": 2}, size=(12, 10))
    dm = _dm(tmp_path, img_size=32)
    dm.setup()
    with caplog.at_level(logging.WARNING):
        item = dm.train_set[(0, 0)]
    assert item["x_src"].shape == (3, 32, 32)
    assert any("(12x10) is smaller than 32 px and is upscaled" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- unpaired
def test_unpaired_items_with_masks_share_the_crop_and_flip(tmp_path):
    for side in "AB":
        folder = tmp_path / f"train{side}"
        folder.mkdir()
        (tmp_path / f"train{side}_masks").mkdir()
        for i in range(3):
            img = np.zeros((16, 16, 3), np.uint8)
            img[:, :8] = 255  # left half white, masked as class 2
            Image.fromarray(img).save(folder / f"{i}.png")
            mask = np.zeros((16, 16), np.uint8)
            mask[:, :8] = 2
            Image.fromarray(mask).save(tmp_path / f"train{side}_masks" / f"{i}.png")
    dm = UnpairedDataModule(str(tmp_path), load_size=20, crop_size=16, num_workers=0, batch_size=2)
    assert dm.data_spec()["num_classes"] == 3
    dm.setup()
    flips = set()
    for seed in range(12):
        it = dm.train_set[(0, seed)]
        white = it["A"][0] > 0
        assert torch.equal(white, it["A_mask"] == 2)  # the mask moved with the image
        flips.add(bool(white[:, 0].any()))
    assert flips == {True, False}  # both flipped and unflipped crops seen
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (2, 3, 16, 16) and batch["B_mask"].dtype == torch.long


def test_unpaired_bad_layouts(tmp_path):
    write_folder(tmp_path / "trainA", 2)
    with pytest.raises(DataError, match="trainB does not exist"):
        UnpairedDataModule(str(tmp_path), num_workers=0).data_spec()
    write_folder(tmp_path / "trainB", 2)
    (tmp_path / "trainA_masks").mkdir()
    with pytest.raises(DataError, match="trainA_masks has no mask for 2 image"):
        UnpairedDataModule(str(tmp_path), num_workers=0).data_spec()


# ---------------------------------------------------------------------------------------------- paired
def test_paired_folders_side_by_side_and_direction(tmp_path):
    # A|B side by side: A is flat 50, B flat 200 -> after the shared crop/flip, still flat.
    (tmp_path / "train").mkdir()
    for i in range(3):
        ab = np.concatenate([np.full((16, 16, 3), 50, np.uint8), np.full((16, 16, 3), 200, np.uint8)], axis=1)
        Image.fromarray(ab).save(tmp_path / "train" / f"{i}.jpg", quality=100)
    dm = PairedDataModule(str(tmp_path), load_size=18, crop_size=16, num_workers=0, batch_size=2)
    dm.setup()
    it = dm.train_set[(0, 3)]
    assert it["A"].mean().item() == pytest.approx(50 / 127.5 - 1, abs=0.02)
    assert it["B"].mean().item() == pytest.approx(200 / 127.5 - 1, abs=0.02)
    rev = PairedDataModule(str(tmp_path), direction="BtoA", load_size=18, crop_size=16, num_workers=0)
    rev.setup()
    it2 = rev.train_set[(0, 3)]
    assert torch.equal(it2["A"], it["B"]) and torch.equal(it2["B"], it["A"])


def test_paired_folders_get_the_same_crop(tmp_path):
    for side in "AB":
        write_folder(tmp_path / side, 3, size=(24, 24), seed=7)  # A and B identical
    dm = PairedDataModule(str(tmp_path), load_size=24, crop_size=16, num_workers=0)
    dm.setup()
    for seed in range(4):
        it = dm.train_set[(1, seed)]
        assert torch.equal(it["A"], it["B"])


def test_paired_mismatch_names_counts_and_stems(tmp_path):
    write_folder(tmp_path / "A", 3)
    write_folder(tmp_path / "B", 2)
    with pytest.raises(DataError) as err:
        PairedDataModule(str(tmp_path), num_workers=0).data_spec()
    msg = str(err.value)
    assert "3 images in" in msg and "but 2 in" in msg and "in A only: 002" in msg and "\n" not in msg
