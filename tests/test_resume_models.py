"""Resume is exact for every model family, with and without ``trainer.limit_train_batches``: a run stopped by
SIGTERM (its last.ckpt written by the default checkpoint config) and resumed with ``ckpt_path=last`` logs, step
for step, what an uninterrupted run logs. StarGAN v2 is covered, kill -9 included, by tests/test_faults.py."""

import os
import sys

import pytest

from conftest import ROOT, read_scalars
from lit_gans.errors import Interrupted
from lit_gans.train import train

sys.path.insert(0, os.path.join(ROOT, "tests"))

UNPAIRED = ["model.ngf=4", "model.n_blocks=1", "model.ndf=4", "data.img_size=32", "data.size=8", "data.val_size=2",
            "data.batch_size=2"]
MODELS = {
    "cyclegan": ["model=cyclegan", *UNPAIRED],
    "cut": ["model=cut", "model.nce_dim=8", *UNPAIRED],
    "pix2pix": ["model=pix2pix", "data.img_size=32", "data.size=8", "data.val_size=2", "data.batch_size=2",
                "model.ngf=8", "model.ndf=8", "model.num_downs=5", "model.dropout=true"],
    "palette": ["model=palette", "model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1",
                "model.attn_res=[8]", "model.num_head_channels=8", "model.norm_groups=8", "model.dropout=0.1",
                "data.img_size=16", "data.size=8", "data.val_size=2", "data.batch_size=2"],
}
COMMON = ["trainer.max_epochs=2", "trainer.limit_val_batches=0", "trainer.log_every_n_steps=1",
          "trainer.deterministic=true", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
          "callbacks.image_grid.every_n_steps=0"]


def _steps(scalars):
    return {tag: series for tag, series in scalars.items() if tag.endswith("_step")}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "limit"), [("cyclegan", None), ("cyclegan", 3), ("cut", 3), ("pix2pix", 3),
                                              ("palette", None)])
def test_sigterm_then_ckpt_path_last_repeats_the_uninterrupted_run(make_cfg, tmp_path_factory, model, limit):
    """4 batches an epoch (or 3 of 4 with the limit); SIGTERM during batch 2: mid-epoch without the limit, the
    epoch's last batch with it (saved at the epoch's end)."""
    extra = [*MODELS[model], *COMMON, *([f"trainer.limit_train_batches={limit}"] if limit else [])]
    full_dir, stopped_dir = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("stopped")

    def cfg(out, *more):
        from conftest import compose_config

        return compose_config([*extra, *more], str(out))

    train(cfg(full_dir))
    with pytest.raises(Interrupted):
        train(cfg(stopped_dir, "+callbacks.sig={_target_: helpers.faults.SignalAt, batch: 2}"))
    train(cfg(stopped_dir, "ckpt_path=last"))
    full, resumed = _steps(read_scalars(str(full_dir))), _steps(read_scalars(str(stopped_dir)))
    assert full and resumed.keys() == full.keys()
    per_epoch = limit or 4
    for tag, series in full.items():
        assert [s for s, _ in resumed[tag]] == [s for s, _ in series] == list(range(2 * per_epoch)), tag
        for (_, a), (_, b) in zip(series, resumed[tag], strict=True):
            assert b == pytest.approx(a, rel=1e-5, abs=1e-6), tag
