"""The training step issues no host synchronisation: no .item()/.cpu()/.tolist()/.numpy(), no Python
bool/int/float of a tensor inside training_step (on CUDA this is what torch.cuda.set_sync_debug_mode
would flag)."""

import contextlib

import pytest
import torch

from lit_gans.train import build

SYNCS = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def count_host_syncs(counter: list[str]):
    originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def wrap(name, fn):
        def counted(self, *a, **k):
            if self.numel() > 0:
                counter.append(name)
            return fn(self, *a, **k)

        return counted

    for name, fn in originals.items():
        setattr(torch.Tensor, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def _run_counting_steps(datamodule, model, trainer):
    counts: list[list[str]] = []
    step = model.training_step

    def counted_step(*args, **kwargs):
        seen: list[str] = []
        with count_host_syncs(seen):
            out = step(*args, **kwargs)
        counts.append(seen)
        return out

    model.training_step = counted_step
    trainer.fit(model, datamodule=datamodule)
    return counts


TINY_UNPAIRED = ["model.ngf=8", "model.ndf=8", "model.n_blocks=1", "data.img_size=32", "data.size=8"]
MODELS = {
    "stargan": ["loss.r1_interval=2", "loss.w_id=1"],
    "stargan_latent": ["loss.r1_interval=2"],
    "cyclegan": [*TINY_UNPAIRED, "model.sem_mask=true", "loss.f_s_threshold=null"],
    "cut": [*TINY_UNPAIRED, "model.sem_mask=true"],
    "pix2pix": ["model.ngf=8", "model.ndf=8", "data.img_size=32", "data.size=8", "loss.subspec=extended"],
    "fastcut": [*TINY_UNPAIRED, "data.img_size=64", "model.discriminators=[basic,multiscale]"],
    # discriminator augmentation: <model>+<variant>
    "stargan+ada": ["aug=ada", "aug.p=0.5", "aug.interval=1", "loss.r1_interval=2"],
    "stargan+apa": ["aug=apa", "aug.p=0.5", "aug.interval=1", "aug.policy=[color,translation,cutout]"],
    "cut+diffaugment": [*TINY_UNPAIRED, "aug=diffaugment"],
    "cyclegan+ada": [*TINY_UNPAIRED, "aug=ada", "aug.p=0.5", "aug.ops=[xflip,xint,scale,rotate,hue,cutout]"],
    "pix2pix+ada": ["model.ngf=8", "model.ndf=8", "data.img_size=32", "data.size=8", "aug=ada", "aug.p=0.5"],
    "palette": ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
                "model.num_head_channels=8", "model.norm_groups=8", "data.img_size=16", "data.size=8",
                "data.batch_size=2", "model.scheduler.warmup_steps=2"],
}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_training_step_has_no_host_sync(make_cfg, model_name):
    tiny = model_name.startswith("stargan")
    cfg = make_cfg(f"model={model_name.split('+')[0]}", *MODELS[model_name], "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                   "logger=[]", tiny=tiny)
    counts = _run_counting_steps(*build(cfg))
    assert len(counts) == 3 and counts == [[], [], []]


def test_the_counter_catches_a_sync():
    seen: list[str] = []
    with count_host_syncs(seen):
        x = torch.ones(2)
        if x.sum() > 0:  # a host sync
            x.max().item()
    assert seen == ["__bool__", "item"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sync_debug_mode_finds_no_sync(make_cfg):  # pragma: no cover - GPU only
    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=3", "logger=[]", "trainer.accelerator=gpu")
    datamodule, model, trainer = build(cfg)
    step = model.training_step

    def strict_step(*a, **k):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return step(*a, **k)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    model.training_step = strict_step
    trainer.fit(model, datamodule=datamodule)
