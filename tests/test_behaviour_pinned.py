"""Refactoring does not change behaviour: for every model preset, the values of every logged loss term and total
equal the values recorded in tests/fixtures/pinned_behaviour.json, with tolerances that hold on any CPU:

* ``float32``, the first training step (fixed seed, so fixed weights and a fixed batch; D's terms before any
  update, G's after D's first update): relative 1e-5, absolute 1e-6. Float32 kernels of different CPUs (AVX2
  and AVX-512 builds of a convolution, one thread or two) round differently by a few 1e-7 relative in one
  forward pass; a term near 0 that is a mean of O(1) logits of both signs (StarGAN's g_adv at 0.004) keeps their
  absolute rounding (measured: 6e-8 between one and two threads).
* ``float64`` (``trainer.precision=64-true``), the first two steps: relative 1e-10, absolute 1e-12. The second step's values
  come after one optimizer step of every network, so a changed learning rate, update order, optimizer setting,
  formula, weight or sign moves them. Float64 kernels differ by ~1e-16; Adam's first update turns the rounding
  noise of a near-zero gradient ``g`` into ``lr * g / eps`` (lr / eps = 1e4), which keeps float64 values within
  ~1e-12 of each other, where float32 ones drift by up to 6e-3 after two updates (measured on an AMD EPYC).

Both are CPU runs with ``trainer.deterministic=true``. ``LIT_GANS_RECORD_BEHAVIOUR=1 pytest
tests/test_behaviour_pinned.py`` rewrites the fixture; do that only for a change that is meant to change the
numbers, and say so in its commit.
"""

import json
import math
import os

import pytest
from lightning.pytorch.callbacks import Callback

from conftest import ROOT, compose_config
from lit_gans.train import build

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "pinned_behaviour.json")
RECORD = os.environ.get("LIT_GANS_RECORD_BEHAVIOUR") == "1"

STARGAN = ["model.img_size=16", "model.dim=8", "model.max_conv_dim=16", "model.mapping_dim=32", "model.style_dim=8",
           "model.latent_dim=4", "data.batch_size=4", "data.per_domain=8", "data.val_per_domain=2",
           "loss.r1_interval=2", "loss.w_id=0.5"]
UNPAIRED = ["model.ngf=4", "model.n_blocks=1", "model.ndf=4", "data.img_size=32", "data.size=8", "data.val_size=2",
            "data.batch_size=2"]
PIX2PIX = ["data.img_size=32", "data.size=8", "data.val_size=2", "data.batch_size=2", "model.ngf=8", "model.ndf=8",
           "model.num_downs=5"]
PALETTE = ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
           "model.num_head_channels=8", "model.norm_groups=8", "data.img_size=16", "data.size=8",
           "data.val_size=2", "data.batch_size=2"]
MODELS = {
    "stargan": ["model=stargan", *STARGAN],
    "stargan_latent": ["model=stargan_latent", *STARGAN],
    "cyclegan": ["model=cyclegan", *UNPAIRED],
    "cut": ["model=cut", "model.nce_dim=8", *UNPAIRED],
    "fastcut": ["model=fastcut", "model.nce_dim=8", *UNPAIRED],
    "pix2pix": ["model=pix2pix", "loss.subspec=extended", *PIX2PIX],
    "pix2pix_latent": ["model=pix2pix_latent", *PIX2PIX],
    "palette": ["model=palette", *PALETTE],
    "palette_latent": ["model=palette_latent", *PALETTE],
}
COMMON = ["seed=0", "trainer.max_epochs=1", "trainer.limit_val_batches=0", "trainer.deterministic=true",
          "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
          "trainer.enable_checkpointing=false", "logger=[]", "callbacks.image_grid=null", "callbacks.judge=null",
          "callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null"]
# run -> (trainer precision, training steps recorded, relative and absolute tolerance); the docstring says why.
RUNS = {"float32": ("32-true", 1, 1e-5, 1e-6), "float64": ("64-true", 2, 1e-10, 1e-12)}


class Record(Callback):
    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in pl_module.objective.scalars().items()})


def logged_values(model: str, precision: str, steps: int, tmp_path) -> list[dict[str, float]]:
    cfg = compose_config([*MODELS[model], *COMMON, f"trainer.precision={precision}",
                          f"trainer.limit_train_batches={steps}"], str(tmp_path))
    datamodule, module, trainer = build(cfg)
    record = Record()
    trainer.callbacks.append(record)
    trainer.fit(module, datamodule=datamodule)
    return record.steps


@pytest.mark.slow
@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("model", list(MODELS))
def test_logged_terms_equal_the_pinned_values(model, run, tmp_path):
    precision, steps, rel, tol = RUNS[run]
    got = logged_values(model, precision, steps, tmp_path)
    assert len(got) == steps and all(got)
    if RECORD:
        fixture = json.load(open(FIXTURE)) if os.path.exists(FIXTURE) else {}
        fixture.setdefault(model, {})[run] = got
        with open(FIXTURE, "w") as f:
            json.dump(fixture, f, indent=1, sort_keys=True)
        return
    want = json.load(open(FIXTURE))[model][run]
    for step, (a, b) in enumerate(zip(want, got, strict=True)):
        assert set(b) == set(a), (model, step, sorted(set(a) ^ set(b)))
        for name in a:
            assert math.isclose(b[name], a[name], rel_tol=rel, abs_tol=tol), (model, run, step, name, a[name], b[name])
