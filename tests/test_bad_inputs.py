"""Bad input to every command answers with one line that names the key or file and the fix, and the exit status
says it failed, before any training step; nothing is written where a run would go. Each case runs the real entry
point (``train.py``'s Hydra main, ``python -m lit_gans.X``'s ``main``) in this process."""

import os
import runpy

import pytest
import torch

from conftest import QUIET, ROOT, TINY_STARGAN, TINY_SYNTHETIC, run_cli

TINY = [*TINY_STARGAN, *TINY_SYNTHETIC, *QUIET, "trainer.max_steps=2"]


def _train_main():
    """``python train.py`` as the shell runs it: the script executed as ``__main__`` (with its early checks)."""
    return lambda: runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")


def _latent_file(path, **change):
    from lit_gans.latents.store import FORMAT

    n = 8
    d = {"format": FORMAT, "version": 1, "layout": "domains", "latents": torch.randn(n, 4, 8, 8),
         "labels": torch.arange(n) % 2, "split": torch.zeros(n, dtype=torch.long), "domain_names": ["a", "b"],
         "vae": "", "scaling_factor": 0.18215, "image_size": 64}
    d.update(change)
    torch.save(d, path)
    return path


LATENT_RUN = ["model=stargan_latent", "data=latents", "model.dim=8", "model.max_conv_dim=16", "model.mapping_dim=32",
              "model.style_dim=8", "model.latent_dim=4", "data.batch_size=4", *QUIET, "trainer.max_steps=2"]

# (overrides, what the one line must contain). {tmp} is the test's folder.
TRAIN_CASES = {
    "batch size 0": (["data.batch_size=0"], "data.batch_size=0: must be a positive integer"),
    "batch size negative": (["data.batch_size=-3"], "data.batch_size=-3: must be a positive integer"),
    "max_epochs not a number": (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: expected an integer or null"),
    "max_epochs under fast_dev_run": (["debug=fdr", "trainer.max_epochs=abc"], "trainer.max_epochs=abc: expected"),
    "precision unknown": (["trainer.precision=bf15-mixed"], "trainer.precision=bf15-mixed: expected one of"),
    "limit negative": (["trainer.limit_train_batches=-1"], "trainer.limit_train_batches=-1: must be >= 0"),
    "workers negative": (["data.num_workers=-1"], "data.num_workers=-1: must be auto or an integer >= 0"),
    "stargan on paired data": (["model=stargan", "data=paired", "model.num_domains=2"],
                               "model=stargan trains on multi-domain items (StarGAN v2), but data=paired gives "
                               "paired A/B items: use data=synthetic, data=domains"),
    "cyclegan on domains": (["model=cyclegan", "data=domains", "data.root={tmp}"],
                            "model=cyclegan trains on unpaired A/B items, but data=domains gives multi-domain"),
    "pix2pix on unpaired data": (["model=pix2pix", "data=synthetic_unpaired"], "model=pix2pix trains on paired"),
    "negative loss weight": (["loss.w_ds=-1"], "loss.w_ds=-1: a loss weight must be >= 0"),
    "negative term weight": (["model=cyclegan", "loss.lambda_A=-10"], "loss.lambda_A=-10: a loss weight must be"),
    "r1 interval 0": (["loss.r1_interval=0"], "loss.r1_interval=0: must be an integer >= 1"),
    "ckpt_path missing file": (["ckpt_path={tmp}/nope.ckpt"], "ckpt_path={tmp}/nope.ckpt: no such file"),
    "ckpt_path corrupt file": (["ckpt_path={tmp}/corrupt.ckpt"], "ckpt_path={tmp}/corrupt.ckpt is not a readable checkpoint"),
    "ckpt_path not a checkpoint": (["ckpt_path={tmp}/tensor.ckpt"], "is not a Lightning checkpoint (no state_dict)"),
    "ckpt_path last with nothing": (["ckpt_path=last"], "ckpt_path=last: nothing to resume in {tmp}/run"),
    "latents a list": (["data.path={tmp}/list.pt"], "latents is a list, expected a tensor"),
    "latents integers": (["data.path={tmp}/int.pt"], "latents have dtype int64, expected floating point"),
    "latents booleans": (["data.path={tmp}/bool.pt"], "latents have dtype bool, expected floating point"),
    "labels floats": (["data.path={tmp}/float_labels.pt"], "labels have dtype float32, expected integers"),
    "latents not square": (["data.path={tmp}/wide.pt"], "latents are 8x12 (height x width); the networks here take square"),
    "no training split": (["data.path={tmp}/no_train.pt"], "no latent is in the training split"),
    "latents with NaN": (["data.path={tmp}/nan.pt"], "latents[3] contains NaN or Inf"),
}


@pytest.fixture(scope="module")
def train_main():
    return _train_main()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "corrupt.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    torch.save(torch.zeros(3), tmp_path / "tensor.ckpt")
    _latent_file(tmp_path / "list.pt", latents=[torch.randn(4, 8, 8) for _ in range(8)])
    _latent_file(tmp_path / "int.pt", latents=torch.randint(0, 9, (8, 4, 8, 8)))
    _latent_file(tmp_path / "bool.pt", latents=torch.rand(8, 4, 8, 8) > 0.5)
    _latent_file(tmp_path / "float_labels.pt", labels=torch.tensor([0.0, 1.7, 0, 1, 0, 1, 0, 1]))
    _latent_file(tmp_path / "wide.pt", latents=torch.randn(8, 4, 8, 12))
    _latent_file(tmp_path / "no_train.pt", split=torch.ones(8, dtype=torch.long))
    nan = torch.randn(8, 4, 8, 8)
    nan[3, 0, 0, 0] = float("nan")
    _latent_file(tmp_path / "nan.pt", latents=nan)
    return tmp_path


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_input_is_one_line_and_exit_2(train_main, files, capsys, monkeypatch, case):
    overrides, want = TRAIN_CASES[case]
    tmp = str(files)
    if any(o.startswith("data.path=") for o in overrides):
        base = LATENT_RUN
    elif any(o.startswith("model=") for o in overrides):
        base = [*QUIET, "trainer.max_steps=2"]
    else:
        base = TINY
    argv = [*base, *(o.replace("{tmp}", tmp) for o in overrides), f"hydra.run.dir={tmp}/run"]
    code, err, _ = run_cli(train_main, argv, capsys, monkeypatch)
    assert code == 2, (case, err[-5:])
    assert err and err[-1].startswith("error: ") and want.replace("{tmp}", tmp) in err[-1], (case, err[-3:])
    assert not any("Traceback" in line for line in err)
    assert not os.path.exists(f"{tmp}/run/checkpoints") and not os.path.exists(f"{tmp}/run/tensorboard")  # no step ran


def test_another_models_checkpoint_is_refused_before_training(train_main, tmp_path, capsys, monkeypatch):
    code, err, _ = run_cli(train_main, [*QUIET, "trainer.max_steps=2", "model=cyclegan", "model.ngf=4", "model.ndf=4",
                                        "model.n_blocks=1", "data.img_size=32", "data.size=8", "data.batch_size=2",
                                        f"hydra.run.dir={tmp_path}/cyclegan"], capsys, monkeypatch)
    assert code == 0, err[-5:]
    ckpt = tmp_path / "cyclegan" / "checkpoints" / "last.ckpt"
    code, err, _ = run_cli(train_main, [*TINY, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/stargan"], capsys, monkeypatch)
    assert code == 2 and err[-1] == (f"error: ckpt_path={ckpt} is a checkpoint of CycleGAN, but this config builds "
                                     "StarGANv2: pass the model= the run was trained with (its .hydra/overrides.yaml "
                                     "lists it)")


def test_evaluate_without_ckpt_and_translate_into_a_file(tmp_path, capsys, monkeypatch):
    def evaluate():
        runpy.run_module("lit_gans.evaluate", run_name="__main__", alter_sys=True)

    def translate():
        runpy.run_module("lit_gans.translate", run_name="__main__", alter_sys=True)

    code, err, _ = run_cli(evaluate, [f"hydra.run.dir={tmp_path}/eval"], capsys, monkeypatch, prog="evaluate")
    assert code == 2 and err == ["error: ckpt= is required: the checkpoint to measure, e.g. python -m lit_gans.evaluate "
                                 "ckpt=outputs/<date>/<time>/checkpoints/last.ckpt"]
    target = tmp_path / "out.png"
    target.write_bytes(b"not a folder")
    code, err, _ = run_cli(translate, [f"ckpt={tmp_path}/x.ckpt", f"input={tmp_path}", f"output={target}"],
                           capsys, monkeypatch, prog="translate")
    assert code == 2 and err[-1] == (f"error: output={target} is a file; output is the folder the translated images "
                                     "go to: pass a new or existing folder")
    assert target.read_bytes() == b"not a folder"


def test_latents_info_reports_nan_files_as_unhealthy(files, capsys, monkeypatch):
    def main():
        runpy.run_module("lit_gans.latents", run_name="__main__", alter_sys=True)

    code, err, out = run_cli(main, ["info", str(files / "nan.pt")], capsys, monkeypatch)
    assert code == 1 and "unhealthy: NaN or Inf values (first at latents[3])" in out
    good = _latent_file(files / "good.pt")
    code, err, out = run_cli(main, ["info", str(good)], capsys, monkeypatch)
    assert code == 0 and "healthy: all values finite" in out


def test_a_vae_that_is_not_local_is_not_fetched_unless_asked(monkeypatch):
    """A hub id that is not in the local cache fails at once with the way to allow a download, instead of the
    network being tried (and retried) behind the user's back."""
    import time

    from lit_gans.errors import ConfigError
    from lit_gans.latents.vae import DOWNLOAD_ENV, load_vae

    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"not a local folder nor in the Hugging Face cache, and downloading is off "
                                          f"\\({DOWNLOAD_ENV}=1 or --download allows it\\)"):
        load_vae("nobody/no-such-vae-lit-gans-test")
    assert time.monotonic() - started < 5
