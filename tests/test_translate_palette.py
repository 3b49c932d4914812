"""python -m lit_gans.translate on a Palette checkpoint trained here for three steps: ``steps=``, ``sampler=`` and
``eta=`` reach the sampler. The EMA UNet is called exactly ``steps`` times per batch, with DDIM and with DDPM, and
each written image is the one that ``model.translate`` gives when called directly with those settings (same seed).
Bad values, and these keys on a model that is not sampled in steps, are one line."""

import numpy as np
import pytest
import torch
from PIL import Image

from imagefiles import rgb
from lit_gans import inference, translate


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """16 px images through a 0.19 M-parameter UNet: a second thread only adds waiting, ten times so on a busy
    2-core machine (measured: a UNet pass took 10 ms on one thread, 116 ms on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _torch_threads(one_thread):
    """Overrides conftest's two threads per test (see one_thread)."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def palette_ckpt(trained, one_thread):
    return trained("palette")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    for i in range(3):
        rgb((24, 20), seed=i).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def unet_calls(monkeypatch):
    """Counts the forward passes of the sampling (EMA) UNet and of the trained one of the model translate loads."""
    calls = {"unet_ema": 0, "unet": 0}
    load = inference.load_model

    def load_and_count(*args, **kwargs):
        model, ckpt = load(*args, **kwargs)
        for name in calls:
            getattr(model, name).register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
        return model, ckpt

    monkeypatch.setattr(inference, "load_model", load_and_count)
    return calls


def run_translate(ckpt, inputs, out, *args):
    return translate.run(translate.compose([f"ckpt={ckpt}", f"input={inputs}", f"output={out}", "progress=false",
                                            "grid=false", *map(str, args)]))


def read_outputs(folder):
    return np.stack([np.asarray(Image.open(folder / f"img{i}.png")) for i in range(3)]).astype(int)


@pytest.fixture(scope="module")
def rebuilt(palette_ckpt, inputs):
    """The model and sources as translate.run has them: seed 0 set before the model is rebuilt (its init draws
    from the global generator), and the generator's state that its sampling then starts from."""
    torch.manual_seed(0)
    model, _ = inference.load_model(palette_ckpt)
    x = translate.read_inputs(str(inputs), model, None, torch.device("cpu")).x
    return model, x, torch.get_rng_state()


def direct(rebuilt, **kwargs):
    """``model.translate(x, **kwargs)`` called directly, from the generator state translate.run samples from;
    as 8-bit images like the written PNGs."""
    model, x, rng = rebuilt
    torch.set_rng_state(rng)
    out = model.translate(x, **kwargs)
    pixels = (out.clamp(-1, 1) * 0.5 + 0.5).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy().astype(int)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_steps_and_sampler_reach_the_sampler(sampler, palette_ckpt, inputs, rebuilt, tmp_path, unet_calls):
    outs = {}
    for steps in (2, 5):
        unet_calls.update(unet_ema=0, unet=0)
        written = run_translate(palette_ckpt, inputs, tmp_path / f"s{steps}", f"steps={steps}", f"sampler={sampler}")
        assert len(written) == 3
        assert unet_calls == {"unet_ema": steps, "unet": 0}, unet_calls  # one batch, one UNet pass per step
        outs[steps] = read_outputs(tmp_path / f"s{steps}")
        # The images are model.translate's with these settings (same starting noise and, for DDPM, the same
        # per-step noise from the seeded global generator), not those of the model's default 50-step DDIM.
        assert np.abs(outs[steps] - direct(rebuilt, steps=steps, sampler=sampler)).max() <= 1
    assert np.abs(outs[2] - outs[5]).max() > 8  # a different number of steps gives different images
    other = {"ddim": "ddpm", "ddpm": "ddim"}[sampler]
    assert np.abs(outs[5] - direct(rebuilt, steps=5, sampler=other)).max() > 8  # the sampler matters


def test_ddim_eta(palette_ckpt, inputs, rebuilt, tmp_path):
    # eta=0: the output is a function of the starting noise alone; runs with the same seed agree byte for byte.
    for name, args in {"a": ["eta=0"], "b": ["eta=0"], "noisy": ["eta=1"]}.items():
        run_translate(palette_ckpt, inputs, tmp_path / name, "steps=4", "sampler=ddim", *args)
    a, b, noisy = (read_outputs(tmp_path / n) for n in ("a", "b", "noisy"))
    assert np.array_equal(a, b)
    # eta=1 adds fresh noise at each step: other images, and the ones the direct call with eta=1 gives.
    assert np.abs(noisy - a).max() > 8
    assert np.abs(noisy - direct(rebuilt, steps=4, sampler="ddim", eta=1.0)).max() <= 1
    assert np.abs(a - direct(rebuilt, steps=4, sampler="ddim", eta=0.0)).max() <= 1


@pytest.mark.parametrize("args, expected", [
    (["steps=0"], "steps=0: pass a number of denoising steps from 1 to 1000"),
    (["steps=1001"], "steps=1001: pass a number of denoising steps from 1 to 1000"),
    (["steps=many"], "steps=many: pass a number of denoising steps"),
    (["sampler=euler"], "sampler=euler: choose ddim or ddpm"),
    (["eta=1.5"], "eta=1.5: pass DDIM's noise level from 0 (deterministic) to 1"),
    (["sampler=ddpm", "eta=0.5"], "eta=0.5 is DDIM's noise level and sampler=ddpm has none"),
])
def test_bad_sampling_options_are_one_line(args, expected, palette_ckpt, inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        translate.main([f"ckpt={palette_ckpt}", f"input={inputs}", f"output={tmp_path / 'o'}", "progress=false", *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "o").exists()  # refused before anything is written


@pytest.fixture(scope="module")
def cut_ckpt(trained, one_thread):
    return trained("cut")


def test_sampling_options_on_a_one_pass_model_are_one_line(cut_ckpt, inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        translate.main([f"ckpt={cut_ckpt}", f"input={inputs}", f"output={tmp_path / 'o'}", "progress=false",
                        "steps=10", "sampler=ddim"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert "steps=/sampler= are for diffusion models (Palette); this checkpoint holds CUT" in err
