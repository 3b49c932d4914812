"""Sample grids: StarGAN v2 columns, latents decoded by a configured VAE or previewed without one."""

import os

import pytest
import torch
import torchvision
from PIL import Image

from lit_gans.callbacks import ImageGrid
from lit_gans.train import build
from lit_gans.utils.view import latent_preview, to_rgb01


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


@pytest.mark.parametrize("with_vae", [False, True])
def test_latent_grid_is_decoded_with_the_configured_vae(make_cfg, tmp_path, with_vae):
    vae = f"model.vae={{path: '{tiny_vae_dir(tmp_path / 'vae')}'}}" if with_vae else "model.vae=null"
    cfg = make_cfg("model=stargan_latent", vae, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "callbacks.image_grid.num_samples=3")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    img = _grid_png(tmp_path)
    side = 16 * 8 if with_vae else 16  # latents are 4x16x16 here; the VAE upsamples 8x
    # 4 columns (source | reference | ref-guided | latent-guided), 3 rows, 2 px padding.
    assert img.size == (4 * (side + 2) + 2, 3 * (side + 2) + 2)


def test_pixel_grid_columns_are_the_visuals(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=1", "callbacks.image_grid.num_samples=2")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    grid = torchvision.transforms.functional.pil_to_tensor(_grid_png(tmp_path)).float() / 255
    batch = datamodule.sample_batch(2)
    # First column is the source, second the reference, as images in [0, 1].
    src = (batch["x_src"][0] * 0.5 + 0.5).clamp(0, 1)
    assert torch.allclose(grid[:, 2:18, 2:18], src, atol=1 / 255 + 1e-6)
    ref = (batch["x_ref"][1] * 0.5 + 0.5).clamp(0, 1)
    assert torch.allclose(grid[:, 20:36, 20:36], ref, atol=1 / 255 + 1e-6)


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
