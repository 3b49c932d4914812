"""CycleGAN and CUT training steps against the formulas computed by hand (lr = 0), the projection heads being
optimized and surviving checkpoints, the pool in checkpoints, the learning-rate schedule, semantic masks, and
the data checks."""

import copy

import pytest
import torch
from helpers.capture import Capture
from lightning.pytorch.callbacks import Callback

from lit_gans.errors import ConfigError
from lit_gans.latents.store import LatentSet, save_latents
from lit_gans.losses import patch_nce_loss
from lit_gans.losses.adversarial import ADVERSARIAL_LOSSES
from lit_gans.models import CUT, CycleGAN
from lit_gans.train import build

# CPU-sized nets (CUT's layer 16 needs 5 residual blocks) and 32 px built-in data.
TINY_NETS = ["model.ngf=4", "model.n_blocks=5", "model.ndf=4", "model.f_s_width=4"]
TINY_UNPAIRED = [*TINY_NETS, "data.img_size=32", "data.size=8", "data.val_size=2", "data.batch_size=2"]
NO_OUTPUT = ["logger=[]", "callbacks.model_checkpoint=null"]


def fit(make_cfg, *overrides, capture=True, tiny=TINY_UNPAIRED, switch_off=()):
    cfg = make_cfg(*tiny, *overrides, tiny=False)
    datamodule, model, trainer = build(cfg)
    for term in switch_off:  # terms without a config key of their own (a D's fixed 0.5)
        model.objective.switch_off(term)
    start = copy.deepcopy(model)
    cap = Capture()
    if capture:
        trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    return start, model, trainer, cap


def close(got, want, name):
    assert got.item() == pytest.approx(want.item(), rel=2e-4, abs=1e-6), name


def test_cyclegan_step_equals_the_formulas(make_cfg):
    w = {"lambda_A": 7.0, "lambda_B": 3.0, "lambda_identity": 0.4}
    start, _, _, cap = fit(make_cfg, "model=cyclegan", "model.optimizer.lr=0", "trainer.max_epochs=1",
                           "trainer.limit_train_batches=2", *NO_OUTPUT, *[f"loss.{k}={v}" for k, v in w.items()])
    assert len(cap.steps) == 2
    GA, GB, DA, DB = start.G_A, start.G_B, start.D_A["basic"], start.D_B["basic"]
    ls = ADVERSARIAL_LOSSES["lsgan"]
    for batch, got, _ in cap.steps:
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = GA(a), GB(b)
        rec_a, rec_b = GB(fake_b), GA(fake_a)
        want = {
            "G/G_GAN_D_B_basic": ((DB(fake_b)[0] - 1) ** 2).mean(),
            "G/G_GAN_D_A_basic": ((DA(fake_a)[0] - 1) ** 2).mean(),
            "G/G_cycle_A": (rec_a - a).abs().mean(),
            "G/G_cycle_B": (rec_b - b).abs().mean(),
            "G/G_idt_A": (GA(b) - b).abs().mean(),
            "G/G_idt_B": (GB(a) - a).abs().mean(),
            # the pool (50) is still filling: the discriminators see this step's fakes
            "D/D_GAN_D_B_basic": ls.d(DB(b)[0], DB(fake_b)[0]),
            "D/D_GAN_D_A_basic": ls.d(DA(a)[0], DA(fake_a)[0]),
        }
        want["G/G_tot"] = (want["G/G_GAN_D_B_basic"] + want["G/G_GAN_D_A_basic"] + 7 * want["G/G_cycle_A"]
                           + 3 * want["G/G_cycle_B"] + 3 * 0.4 * want["G/G_idt_A"] + 7 * 0.4 * want["G/G_idt_B"])
        want["D/D_tot"] = 0.5 * (want["D/D_GAN_D_B_basic"] + want["D/D_GAN_D_A_basic"])
        for k, v in want.items():
            close(got[k], v, k)


def _nce(G, heads, src, out, layers, tau=0.07):
    """CUT's calculate_NCE_loss with every position sampled (then the random order does not matter)."""
    fq, fk = G.encode(out, layers), G.encode(src, layers)
    ids = [torch.arange(f.shape[-2] * f.shape[-1]) for f in fk]
    q, k = heads(fq, ids), heads(fk, ids)
    return sum(patch_nce_loss(qi, ki, tau) for qi, ki in zip(q, k, strict=True)) / len(q)


@pytest.mark.parametrize("mode", ["lsgan", "hinge"])
def test_cut_step_equals_the_formulas(make_cfg, mode):
    # 2048 patches >= the 38 x 38 positions of layer 0 at 32 px: all positions are used.
    start, _, _, cap = fit(make_cfg, "model=cut", f"loss.adversarial={mode}", "model.optimizer.lr=0", "loss.num_patches=2048",
                           "loss.lambda_NCE=3", "model.nce_dim=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                           *NO_OUTPUT)
    G, D, heads = start.G, start.D_B["basic"], start.patch_heads
    adv = ADVERSARIAL_LOSSES[mode]
    layers = start.nce_layers
    for batch, got, _ in cap.steps:
        a, b = batch["A"], batch["B"]
        fake_b, idt_b = G(a), G(b)
        want = {
            "G/G_GAN_D_B_basic": adv.g(D(fake_b)[0]),
            "D/D_GAN_D_B_basic": adv.d(D(b)[0], D(fake_b)[0]),
            "G/G_NCE": _nce(G, heads, a, fake_b, layers),
            "G/G_NCE_Y": _nce(G, heads, b, idt_b, layers),
        }
        want["G/G_tot"] = want["G/G_GAN_D_B_basic"] + 3 * (want["G/G_NCE"] + want["G/G_NCE_Y"]) / 2
        want["D/D_tot"] = 0.5 * want["D/D_GAN_D_B_basic"]
        for k, v in want.items():
            close(got[k], v, k)


def test_cut_projection_heads_are_optimized_and_survive_checkpoints(make_cfg, tmp_path):
    start, model, trainer, _ = fit(make_cfg, "model=cut", "model.nce_dim=8", "trainer.max_epochs=1",
                                   "trainer.limit_train_batches=1", "logger=[]", capture=False)
    opt_g = trainer.optimizers[0]
    head_params = list(model.patch_heads.parameters())
    in_opt = {id(p) for g in opt_g.param_groups for p in g["params"]}
    assert head_params and all(id(p) in in_opt for p in head_params)
    for before, after in zip(start.patch_heads.parameters(), head_params, strict=True):
        assert not torch.equal(before, after)  # one step moved every head weight
    path = tmp_path / "checkpoints" / "last.ckpt"
    ck = torch.load(path, weights_only=True)
    assert any(k.startswith("patch_heads.mlps.4.") for k in ck["state_dict"])
    again = CUT.load_from_checkpoint(path)
    for a, b in zip(again.patch_heads.parameters(), head_params, strict=True):
        assert torch.equal(a, b)
    # resume: the optimizer state of the heads is restored and stepped on
    cfg = make_cfg(*TINY_UNPAIRED, "model=cut", "model.nce_dim=8", "trainer.max_epochs=2", "trainer.limit_train_batches=1",
                   "logger=[]", f"ckpt_path={path}", tiny=False)
    datamodule, resumed, trainer2 = build(cfg)
    trainer2.fit(resumed, datamodule=datamodule, ckpt_path=str(path))
    state = trainer2.optimizers[0].state
    assert all(int(state[p]["step"]) == 2 for p in resumed.patch_heads.parameters())


def test_cyclegan_checkpoint_keeps_the_pool(make_cfg, tmp_path):
    _, model, _, _ = fit(make_cfg, "model=cyclegan", "model.pool_size=5", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=2", "logger=[]", capture=False)
    assert model.pool_B.count == 4 and model.pool_A.count == 4
    again = CycleGAN.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert again.pool_B.count == 4 and torch.equal(again.pool_B.images, model.pool_B.images)
    assert again.pool_A.rng.getstate() == model.pool_A.rng.getstate()


class LearningRates(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.lrs.append([opt.param_groups[0]["lr"] for opt in trainer.optimizers])


def test_learning_rate_is_constant_then_decays_linearly_per_epoch(make_cfg):
    cfg = make_cfg(*TINY_UNPAIRED, "model=cyclegan", "model.sem_mask=true", "model.scheduler.n_epochs=2",
                   "model.scheduler.n_epochs_decay=2", "model.f_s_lr=1e-3", "trainer.max_epochs=5",
                   "trainer.limit_train_batches=1", *NO_OUTPUT, tiny=False)
    datamodule, model, trainer = build(cfg)
    rec = LearningRates()
    trainer.callbacks.append(rec)
    trainer.fit(model, datamodule=datamodule)
    factors = [1.0, 1.0, 2 / 3, 1 / 3, 0.0]  # CycleGAN: 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)
    for lrs, f in zip(rec.lrs, factors, strict=True):
        assert lrs == pytest.approx([2e-4 * f, 2e-4 * f, 1e-3 * f])
    assert [c.interval for c in trainer.lr_scheduler_configs] == ["epoch"] * 3


def test_semantic_mask_terms_and_f_s(make_cfg):
    start, model, _, cap = fit(make_cfg, "model=cut", "model.sem_mask=true", "model.optimizer.lr=0", "model.f_s_lr=0",
                               "loss.f_s_threshold=null", "loss.lambda_sem=2", "loss.lambda_out_mask=5",
                               "trainer.max_epochs=1", "trainer.limit_train_batches=1", *NO_OUTPUT)
    assert model.num_classes == 2  # from the data
    batch, got, _ = cap.steps[0]
    f_s, G = start.f_s, start.G
    a, b, ma, mb = batch["A"], batch["B"], batch["A_mask"], batch["B_mask"]
    fake_b = G(a)
    ce = torch.nn.functional.cross_entropy
    sem = ce(f_s(fake_b), ma)
    out = ((fake_b - a).abs() * (ma == 0).unsqueeze(1)).mean()
    close(got["G/G_sem_mask_AB"], sem, "sem")
    close(got["G/G_out_mask_AB"], out, "out")
    close(got["f_s/f_s"], ce(f_s(a), ma) + ce(f_s(b), mb), "f_s")
    rest = got["G/G_tot"] - 2 * sem - 5 * out
    close(rest, got["G/G_GAN_D_B_basic"] + (got["G/G_NCE"] + got["G/G_NCE_Y"]) / 2, "G_tot")


def test_sem_mask_waits_for_f_s_below_its_threshold_and_f_s_learns(make_cfg):
    start, model, _, cap = fit(make_cfg, "model=cyclegan", "model.sem_mask=true", "loss.f_s_threshold=100",
                               "trainer.max_epochs=1", "trainer.limit_train_batches=2", *NO_OUTPUT)
    first, second = cap.steps[0][1], cap.steps[1][1]
    assert first["G/G_sem_mask_AB"] == 0 and first["G/G_sem_mask_BA"] == 0  # no f_s loss yet
    assert second["G/G_sem_mask_AB"] > 0 and second["G/G_sem_mask_BA"] > 0 and second["G/G_out_mask_BA"] > 0
    assert model.f_s_last == cap.steps[1][1]["f_s/f_s"]
    assert not torch.equal(start.f_s.head.weight, model.f_s.head.weight)


def test_sem_mask_without_masks_is_one_clear_error(make_cfg):
    cfg = make_cfg(*TINY_UNPAIRED, "model=cut", "model.sem_mask=true", "data.masks=false", *NO_OUTPUT, tiny=False)
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError, match="model.sem_mask=true needs masks for domain A"):
        trainer.fit(model, datamodule=datamodule)


def _latent_file(path, layout):
    g = torch.Generator().manual_seed(0)
    save_latents(LatentSet(latents=torch.randn(8, 4, 32, 32, generator=g) * 5, labels=torch.tensor([0] * 4 + [1] * 4),
                           split=torch.zeros(8, dtype=torch.long), layout=layout, domain_names=["A", "B"]), path)
    return path


def test_multi_domain_data_is_rejected(make_cfg, tmp_path):
    path = _latent_file(tmp_path / "domains.pt", "domains")
    cfg = make_cfg(*TINY_NETS, "model=cut", "data=latents", f"data.path={path}", "model.in_channels=null", *NO_OUTPUT,
                   tiny=False)
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError, match="model=cut trains on unpaired A/B data but got a 'domains' latent file"):
        trainer.fit(model, datamodule=datamodule)


def test_cut_trains_on_an_unpaired_latent_file(make_cfg, tmp_path):
    path = _latent_file(tmp_path / "latents.pt", "unpaired")
    start, model, _, cap = fit(make_cfg, "model=cut", "data=latents", f"data.path={path}", "data.batch_size=2",
                               "model.in_channels=null", "model.nce_dim=8", "trainer.max_epochs=1",
                               "trainer.limit_train_batches=2", *NO_OUTPUT, tiny=TINY_NETS)
    assert model.net_cfg["in_channels"] == 4 and model.latent_scale == pytest.approx(0.18215)
    assert not isinstance(model.G.model[-1], torch.nn.Tanh)  # latents are not bounded
    batch, got, _ = cap.steps[0]
    assert all(torch.isfinite(v) for v in got.values()) and got["G/G_NCE"] > 0
    fake = start.translate(batch["A"])  # data space in and out
    want = start.G(batch["A"] * 0.18215) / 0.18215
    assert torch.allclose(fake, want, atol=1e-5)


def test_terms_at_weight_zero_are_not_computed(make_cfg):
    start, model, _, cap = fit(make_cfg, "model=cyclegan", "loss.lambda_identity=0", "trainer.max_epochs=1",
                               "trainer.limit_train_batches=1", *NO_OUTPUT, switch_off=["D_GAN_D_A_basic"])
    _, got, _ = cap.steps[0]
    assert got["G/G_idt_A"] == 0 and got["G/G_idt_B"] == 0 and got["D/D_GAN_D_A_basic"] == 0
    assert got["D/D_GAN_D_B_basic"] > 0 and model.pool_A.count == 2  # the A pool still sees every fake
    d_a = zip(start.D_A.parameters(), model.D_A.parameters(), strict=True)
    d_b = zip(start.D_B.parameters(), model.D_B.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in d_a) and not all(torch.equal(a, b) for a, b in d_b)
