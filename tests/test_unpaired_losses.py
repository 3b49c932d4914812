"""PatchNCE against a hand computation, the mask losses on a hand-made mask, the multi-scale lift, the image
pool, and the cyclegan/cut specs' terms and weights."""

import math

import pytest
import torch

from lit_gans.errors import ConfigError
from lit_gans.losses import (
    make_objective,
    multilayer_patch_nce,
    out_mask_loss,
    patch_nce_loss,
    semantic_mask_loss,
)
from lit_gans.losses.adversarial import d_hinge_loss, d_lsgan_loss
from lit_gans.losses.unpaired_spec import cut as cut_spec
from lit_gans.losses.unpaired_spec import cyclegan as cyclegan_spec
from lit_gans.losses.unpaired_spec import mean_over_scales
from lit_gans.models.image_pool import ImagePool
from lit_gans.nets.patch_projection import PatchProjection


def _unit(v):
    v = torch.tensor(v, dtype=torch.float32)
    return v / v.norm(dim=-1, keepdim=True)


def test_patch_nce_equals_a_hand_computation():
    # one image, 3 patches, 2-d embeddings
    q = _unit([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]])
    k = _unit([[[0.8, 0.6], [1.0, 0.0], [0.0, -1.0]]])
    tau = 0.07
    losses = []
    for i in range(3):
        pos = float(q[0, i] @ k[0, i])
        negs = [float(q[0, i] @ k[0, j]) for j in range(3) if j != i] + [-10.0]  # own position masked with -10
        logits = [pos / tau] + [n / tau for n in negs]
        losses.append(-logits[0] + math.log(sum(math.exp(x) for x in logits)))
    want = sum(losses) / 3
    assert patch_nce_loss(q, k, tau).item() == pytest.approx(want, rel=1e-5)
    # negatives come from the same image only: a second image does not change the first one's loss
    q2, k2 = torch.cat([q, _unit([[[1.0, 1.0]] * 3])]), torch.cat([k, _unit([[[1.0, -1.0]] * 3])])
    per_image_2 = patch_nce_loss(q2[1:], k2[1:], tau).item()
    assert patch_nce_loss(q2, k2, tau).item() == pytest.approx((want + per_image_2) / 2, rel=1e-5)


def test_patch_nce_gradient_flows_to_queries_only():
    q = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=-1).requires_grad_(True)
    k = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=-1).requires_grad_(True)
    patch_nce_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0 and k.grad is None


def test_multilayer_nce_is_the_mean_over_layers_of_projected_patches():
    torch.manual_seed(0)
    fq = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    fk = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    heads = PatchProjection.from_features(fq, dim=8)
    # with at least H*W patches every position is used: the loss does not depend on the random order
    got = multilayer_patch_nce(fq, fk, heads, num_patches=64, temperature=0.1)
    all_ids = [torch.arange(16), torch.arange(4)]
    q, k = heads(fq, all_ids), heads(fk, all_ids)
    want = (patch_nce_loss(q[0], k[0], 0.1) + patch_nce_loss(q[1], k[1], 0.1)) / 2
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # fewer patches: a random subset, as many per layer as asked (or all)
    torch.manual_seed(1)
    ids = heads.sample_ids(fk, 3)
    torch.manual_seed(1)
    sub = multilayer_patch_nce(fq, fk, heads, num_patches=3, temperature=0.1)
    qs, ks = heads(fq, ids), heads(fk, ids)
    assert sub.item() == pytest.approx(((patch_nce_loss(qs[0], ks[0], 0.1) + patch_nce_loss(qs[1], ks[1], 0.1)) / 2).item(),
                                       rel=1e-5)


def test_mask_losses_on_a_hand_made_mask():
    mask = torch.tensor([[[0, 1], [2, 0]]])  # (1, 2, 2): background at (0,0) and (1,1)
    real = torch.zeros(1, 2, 2, 2)
    fake = torch.tensor([[[[1.0, 5.0], [5.0, 3.0]], [[-2.0, 5.0], [5.0, 0.0]]]])
    # |fake - real| on the background: channel 0: 1 + 3, channel 1: 2 + 0 -> 6 over 8 elements
    assert out_mask_loss(fake, real, mask).item() == pytest.approx(6 / 8)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 0, 1] = math.log(3.0)  # p(class 1) = 3/5 at the pixel labelled 1
    want = (3 * math.log(3.0) + (math.log(5.0) - math.log(3.0))) / 4
    assert semantic_mask_loss(logits, mask).item() == pytest.approx(want, rel=1e-6)


def test_mean_over_scales():
    real = [torch.full((1, 1, 4, 4), 1.0), torch.full((1, 1, 2, 2), 0.0)]
    fake = [torch.full((1, 1, 4, 4), 0.0), torch.full((1, 1, 2, 2), 1.0)]
    d = mean_over_scales(d_lsgan_loss)
    assert d(real, fake).item() == pytest.approx((0.0 + 2.0) / 2)
    assert d(real[0], fake[0]).item() == 0.0  # a plain tensor is one scale


def test_image_pool_fills_then_swaps_and_restores_its_state():
    pool = ImagePool(3, (1, 2, 2), seed=0)
    imgs = [torch.full((1, 1, 2, 2), float(i)) for i in range(20)]
    for i in range(3):  # filling: every fake goes through and is stored
        assert torch.equal(pool.query(imgs[i]), imgs[i])
    assert pool.count == 3 and sorted(pool.images[:, 0, 0, 0].tolist()) == [0.0, 1.0, 2.0]
    seen_old = seen_new = 0
    for i in range(3, 12):
        before = pool.images.clone()
        out = pool.query(imgs[i])
        if torch.equal(out, imgs[i]):  # kept the new fake: the pool is unchanged
            seen_new += 1
            assert torch.equal(pool.images, before)
        else:  # returned a stored fake, which the new one replaced
            seen_old += 1
            slot = [j for j in range(3) if not torch.equal(pool.images[j], before[j])]
            assert len(slot) == 1 and torch.equal(out[0], before[slot[0]]) and pool.images[slot[0], 0, 0, 0] == i
    assert seen_old > 0 and seen_new > 0
    # state_dict carries images, count and the random state: a restored pool makes the same choices
    restored = ImagePool(3, (1, 2, 2), seed=123)
    restored.load_state_dict(pool.state_dict())
    assert restored.count == 3
    for i in range(12, 20):
        assert torch.equal(restored.query(imgs[i]), pool.query(imgs[i]))
    assert torch.equal(ImagePool(0, (1, 2, 2)).query(imgs[5]), imgs[5])


def test_image_pool_returns_a_batch_in_the_fakes_dtype():
    pool = ImagePool(2, (3, 4, 4), seed=1)
    fakes = torch.randn(3, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    out = pool.query(fakes)
    assert out.shape == (3, 3, 4, 4) and out.dtype == torch.bfloat16 and not out.requires_grad


def _weights(obj):
    return {n: obj.weight(n) for n in obj.terms}


def test_cyclegan_spec_terms_and_weights():
    obj = make_objective(cyclegan_spec, {"lambda_A": 10, "lambda_B": 4, "lambda_identity": 0.5, "adversarial": "hinge"},
                         model_args={"discriminators": ["basic", "multiscale"]})
    w = _weights(obj)
    assert w == {"G_GAN_D_A_basic": 1.0, "D_GAN_D_A_basic": 0.5, "G_GAN_D_A_multiscale": 1.0,
                 "D_GAN_D_A_multiscale": 0.5, "G_GAN_D_B_basic": 1.0, "D_GAN_D_B_basic": 0.5,
                 "G_GAN_D_B_multiscale": 1.0, "D_GAN_D_B_multiscale": 0.5, "G_cycle_A": 10.0, "G_cycle_B": 4.0,
                 "G_idt_A": 2.0, "G_idt_B": 5.0}
    r, f = torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3)
    assert obj.fn("D_GAN_D_B_basic")([r], [f]).item() == pytest.approx(d_hinge_loss(r, f).item())
    sem = make_objective(cyclegan_spec, {"lambda_sem": 2.0, "lambda_out_mask": 3.0, "lambda_identity": 0.0},
                         model_args={"sem_mask": True})
    assert {n: sem.weight(n) for n in ("G_sem_mask_AB", "G_sem_mask_BA", "G_out_mask_AB", "G_out_mask_BA", "f_s")} == \
        {"G_sem_mask_AB": 2.0, "G_sem_mask_BA": 2.0, "G_out_mask_AB": 3.0, "G_out_mask_BA": 3.0, "f_s": 1.0}
    assert not sem.active("G_idt_A") and sem.terms["f_s"].group == "f_s"


def test_cut_spec_weights_follow_nce_idt():
    cut = _weights(make_objective(cut_spec, {"lambda_NCE": 2.0, "nce_idt": True}))
    assert cut == {"G_GAN_D_B_basic": 1.0, "D_GAN_D_B_basic": 0.5, "G_NCE": 1.0, "G_NCE_Y": 1.0}
    fast = _weights(make_objective(cut_spec, {"lambda_NCE": 10.0, "nce_idt": False}))
    assert fast == {"G_GAN_D_B_basic": 1.0, "D_GAN_D_B_basic": 0.5, "G_NCE": 10.0}
    with pytest.raises(ConfigError, match="loss.lambda_A is not a key of this model's objective"):
        make_objective(cut_spec, {"lambda_A": 10.0})


@pytest.mark.parametrize("names", [["basic", "basic"], ["patch"], []])
def test_bad_discriminator_lists_are_config_errors(names):
    with pytest.raises(ConfigError, match="model.discriminators"):
        make_objective(cut_spec, model_args={"discriminators": names})
