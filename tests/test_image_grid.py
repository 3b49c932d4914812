"""Sample grids: StarGAN v2 columns titled and rows labelled with the target domain, tiles enlarged to 128 px,
latents decoded by a configured VAE or previewed without one, a grid at every epoch's end by default."""

import os

import pytest
import torch
import torchvision
from PIL import Image

from lit_gans.callbacks import ImageGrid
from lit_gans.callbacks.image_grid import domain_labels
from lit_gans.train import build
from lit_gans.utils.view import labelled_grid, latent_preview, to_rgb01, upscale


def tiny_vae_dir(path) -> str:
    """A small AutoencoderKL with the SD layout (4 latent channels, downscale 8), saved like a real one."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, sample_size=64)
    vae.save_pretrained(str(path))
    return str(path)


def _grid_png(tmp_path):
    files = sorted((tmp_path / "tensorboard" / "samples").glob("*.png"))
    assert files, "no grid written"
    return Image.open(files[-1])


def _tensor(img: Image.Image) -> torch.Tensor:
    return torchvision.transforms.functional.pil_to_tensor(img.convert("RGB")).float() / 255


def _grid_callback(trainer) -> ImageGrid:
    return next(c for c in trainer.callbacks if isinstance(c, ImageGrid))


def _dark(region: torch.Tensor) -> bool:
    """Whether a region holds text (black pixels)."""
    return bool((region.amax(dim=0) < 0.3).any())


COLUMNS = ["source", "reference", "ref_guided", "latent_guided"]


@pytest.mark.parametrize("with_vae", [False, True])
def test_latent_grid_is_decoded_with_the_configured_vae(make_cfg, tmp_path, with_vae):
    vae = f"model.vae={{path: '{tiny_vae_dir(tmp_path / 'vae')}'}}" if with_vae else "model.vae=null"
    cfg = make_cfg("model=stargan_latent", vae, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "callbacks.image_grid.num_samples=3", "callbacks.image_grid.min_tile=0")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    img = _grid_png(tmp_path)
    side = 16 * 8 if with_vae else 16  # latents are 4x16x16 here; the VAE upsamples 8x
    # 4 columns (source | reference | ref-guided | latent-guided) of side x side tiles, 3 rows, titles and labels.
    labels = domain_labels(trainer, _grid_callback(trainer)._batch)
    expected = labelled_grid({n: torch.zeros(3, 3, side, side) for n in COLUMNS}, labels, row_title="target",
                             min_tile=0)
    assert img.size == (expected.shape[-1], expected.shape[-2])


def test_pixel_grid_columns_are_the_visuals(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=1", "callbacks.image_grid.num_samples=2")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    grid = _tensor(_grid_png(tmp_path))
    batch = datamodule.sample_batch(2)
    # 16 px images become 128 px tiles (8x nearest); the tiles are the bottom-right block, as make_grid lays them.
    tile, body_w, body_h = 128, 4 * 130 + 2, 2 * 130 + 2
    header, label_w = grid.shape[1] - body_h, grid.shape[2] - body_w
    assert header > 8 and label_w > 8
    body = grid[:, header:, label_w:]
    src = upscale((batch["x_src"][:1] * 0.5 + 0.5).clamp(0, 1), tile)[0]
    assert torch.allclose(body[:, 2:130, 2:130], src, atol=1 / 255 + 1e-6)
    ref = upscale((batch["x_ref"][1:2] * 0.5 + 0.5).clamp(0, 1), tile)[0]
    assert torch.allclose(body[:, 132:260, 132:260], ref, atol=1 / 255 + 1e-6)
    # A title above every column, the target domain left of every row, and a title over the labels.
    assert all(_dark(grid[:, :header, label_w + 2 + c * 130: label_w + 130 + c * 130]) for c in range(4))
    assert all(_dark(grid[:, header + 2 + r * 130: header + 130 + r * 130, :label_w]) for r in range(2))
    assert _dark(grid[:, :header, :label_w])
    names = datamodule.data_spec()["domain_names"]
    assert domain_labels(trainer, batch) == [names[i] for i in batch["y_trg"].tolist()]


def test_labelled_grid_titles_enlarged_tiles_and_row_labels():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32)
    grid = labelled_grid({"source": x, "seed 0": x.flip(-1)}, min_tile=128)
    plain = torchvision.utils.make_grid(torch.stack([upscale(x, 128), upscale(x.flip(-1), 128)], 1).flatten(0, 1),
                                        nrow=2, padding=2, pad_value=1.0)
    assert plain.shape[-2:] == (3 * 130 + 2, 2 * 130 + 2)  # tiles of 128 px from 32 px inputs
    header = grid.shape[1] - plain.shape[1]
    assert header > 8 and grid.shape[2] == plain.shape[2]  # a header row; no label column without labels
    assert torch.allclose(grid[:, header:], plain, atol=0.5 / 255 + 1e-6)  # the tiles as make_grid lays them
    assert not torch.equal(grid[:, :header], torch.ones(3, header, grid.shape[2]))  # titles drawn
    other = labelled_grid({"reference": x, "seed 0": x.flip(-1)}, min_tile=128)
    assert not torch.equal(other[:, :header, :130], grid[:, :header, :130])  # the title is the column's key
    assert torch.equal(other[:, :header, 132:], grid[:, :header, 132:])
    labelled = labelled_grid({"source": x, "seed 0": x}, ["cat", "dog", "a very long domain name"], row_title="to")
    assert labelled.shape[1] == grid.shape[1] and labelled.shape[2] > grid.shape[2]
    assert labelled.min() >= 0 and labelled.max() <= 1 and labelled.dtype == torch.float32
    with pytest.raises(ValueError, match="row labels"):
        labelled_grid({"a": x}, ["one"])
    with pytest.raises(ValueError, match="same number of rows"):
        labelled_grid({"a": x, "b": x[:2]})


def test_upscale_is_an_integer_nearest_enlargement():
    x = torch.rand(2, 3, 16, 24)
    y = upscale(x, 128)
    assert y.shape == (2, 3, 128, 192)  # factor 8 from the shorter side
    assert torch.equal(y, x.repeat_interleave(8, -2).repeat_interleave(8, -1))  # crisp 8x8 blocks
    assert upscale(torch.rand(1, 3, 48, 48), 128).shape[-1] == 144
    big = torch.rand(1, 3, 200, 200)
    assert upscale(big, 128) is big and upscale(x, 0) is x
    grey = labelled_grid({"map": torch.rand(2, 1, 8, 8)}, min_tile=0)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # 1-channel maps shown grey


def test_latent_preview_normalises_three_channels():
    x = torch.randn(4, 4, 8, 8) * 5 + 3
    v = latent_preview(x)
    assert v.shape == (4, 3, 8, 8) and v.min() >= 0 and v.max() <= 1
    assert abs(v.mean().item() - 0.5) < 0.05
    assert torch.equal(to_rgb01(torch.full((1, 3, 2, 2), 2.0)), torch.ones(1, 3, 2, 2))


def test_grid_every_n_steps_is_counted_in_batches(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=4", "callbacks.image_grid.every_n_steps=2")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    names = sorted(os.listdir(tmp_path / "tensorboard" / "samples"))
    assert names == ["step_0000002.png", "step_0000004.png"]  # after batches 2 and 4 (the end writes 4 again)
    assert isinstance(trainer.callbacks[0], object) and any(isinstance(c, ImageGrid) for c in trainer.callbacks)


@pytest.mark.parametrize("overrides, expected", [
    (["callbacks.image_grid.every_n_steps=null"], [2, 4]),  # the default config: every epoch's end (+ the end)
    ([], [4]),  # every_n_steps=0 (the tests' QUIET): no grid before the end of training
])
def test_grids_at_every_epoch_end_by_default(make_cfg, tmp_path, overrides, expected):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=2", "callbacks.image_grid.num_samples=2",
                   *overrides)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert sorted(os.listdir(tmp_path / "tensorboard" / "samples")) == [f"step_{s:07d}.png" for s in expected]
    steps = []
    for events in (tmp_path / "tensorboard").glob("events.out.tfevents.*"):
        ea = EventAccumulator(str(events), size_guidance={"images": 0})
        ea.Reload()
        steps += [e.step for tag in ea.Tags()["images"] for e in ea.Images(tag)]
    assert sorted(steps) == expected  # once per batch count: the end does not repeat the last epoch's grid


def test_grid_schedule_switches():
    assert (ImageGrid().every_n_epochs, ImageGrid().every_n_steps) == (1, 0)  # every epoch, not by batch count
    assert ImageGrid(every_n_epochs=0).every_n_epochs == 0  # epoch grids off
    assert ImageGrid(every_n_steps=0, every_n_epochs=1).every_n_epochs == 0  # 0 keeps meaning "only at the end"
    assert (ImageGrid(every_n_steps=50).every_n_steps, ImageGrid(every_n_steps=50).every_n_epochs) == (50, 1)
