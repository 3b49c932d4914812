"""Diversity decay and lazy R1 schedules."""

import pytest
import torch

from lit_gans.callbacks import DiversityDecay, R1Schedule, diversity_factor
from lit_gans.losses import make_objective
from lit_gans.losses.stargan_spec import stargan_v2


@pytest.mark.parametrize(
    ("epoch", "decay", "want"),
    [(1, 20, 1.0), (2, 20, 0.95), (11, 20, 0.5), (21, 20, 0.0), (40, 20, 0.0), (1, 4, 1.0), (3, 4, 0.5), (5, 4, 0.0),
     (7, 0, 1.0)],
)
def test_diversity_factor_is_the_seed_formula(epoch, decay, want):
    # lambda_ds(epoch) = w_ds * (1 - clamp((epoch - 1) / ds_decay_epochs, 0, 1)), epochs from 1.
    assert diversity_factor(epoch, decay) == pytest.approx(want)


class _Trainer:
    def __init__(self, epoch: int):
        self.current_epoch = epoch


class _Module:
    def __init__(self):
        self.objective = make_objective(stargan_v2, {"w_ds": 2.0, "w_r1": 0.5})


def test_diversity_decay_sets_lambda_ds_per_epoch():
    m, cb = _Module(), DiversityDecay(decay_epochs=4)
    got = []
    for epoch in range(6):  # Lightning's current_epoch counts from 0
        cb.on_train_batch_start(_Trainer(epoch), m, None, 0)
        got.append(m.objective.weight("ds"))
    assert got == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0, 0.0])
    assert not m.objective.active("ds")


def test_r1_schedule_steps_gain_and_resume_state():
    m, cb = _Module(), R1Schedule(interval=3)
    gains = []
    for i in range(7):
        cb.on_train_batch_start(None, m, None, i)
        gains.append(m.objective.weight("r1"))
        cb.on_train_batch_end(None, m, None, None, i)
    # R1 on batches 0, 3, 6 with the interval compensation w_r1 * r1_interval.
    assert gains == pytest.approx([1.5, 0, 0, 1.5, 0, 0, 1.5])
    resumed = R1Schedule(interval=3)
    resumed.load_state_dict(cb.state_dict())
    resumed.on_train_batch_start(None, m, None, 0)
    assert resumed.batches_trained == 7 and m.objective.weight("r1") == 0.0
    with pytest.raises(ValueError):
        R1Schedule(interval=0)


def test_schedules_ignore_models_without_the_term():
    class NoTerms:
        objective = make_objective(stargan_v2)

    NoTerms.objective.terms.pop("r1")
    R1Schedule(2).on_train_batch_start(None, NoTerms, None, 0)  # no KeyError
    assert torch.is_tensor(NoTerms.objective.fn("d_adv")(torch.zeros(1), torch.zeros(1)))


def test_base_module_steps_epoch_and_step_schedulers(make_cfg):
    """Manual optimisation: GANModule steps 'epoch' schedulers per epoch and 'step' ones per batch."""
    from lit_gans.train import build

    cfg = make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=3", "logger=[]", "callbacks.model_checkpoint=null")
    datamodule, model, trainer = build(cfg)
    base = model.configure_optimizers

    def with_schedulers():
        opt_d, opt_g = base()
        per_epoch = torch.optim.lr_scheduler.LambdaLR(opt_d, lambda e: 0.5**e)
        per_step = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda s: 1.0 / (1 + s))
        return [opt_d, opt_g], [{"scheduler": per_epoch, "interval": "epoch"}, {"scheduler": per_step, "interval": "step"}]

    model.configure_optimizers = with_schedulers
    trainer.fit(model, datamodule=datamodule)
    opt_d, opt_g = (o.optimizer if hasattr(o, "optimizer") else o for o in model.optimizers())
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.25)  # stepped after each of 2 epochs
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4 / 7)  # stepped after each of 6 batches
