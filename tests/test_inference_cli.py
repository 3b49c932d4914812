"""python -m lit_gans.translate / lit_gans.evaluate on checkpoints trained for two steps here, and the
ValidationMetrics callback's curves in TensorBoard."""

import json

import pytest
from metricweights import write_random_alexnet, write_random_inception
from PIL import Image
from trained import SHORT, TINY

from conftest import QUIET, ROOT, compose_config, read_scalars
from imagefiles import max_level_difference, rgb
from lit_gans import translate
from lit_gans.evaluate import evaluate, format_table
from lit_gans.train import train

TWO_DOMAINS = TINY["stargan_two_domains"][0]


@pytest.fixture
def stargan_ckpt(trained):
    return trained("stargan_two_domains")


@pytest.fixture
def cut_ckpt(trained):
    return trained("cut")


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return write_random_inception(root / "inception.pth"), write_random_alexnet(root / "alexnet.pth")


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        rgb((40, 32), seed=i).save(folder / f"img{i}.png")
    return folder


def run_translate(*args):
    return translate.run(translate.compose(["progress=false", *map(str, args)]))


# ---------------------------------------------------------------------------------------------- translate
def test_stargan_seeds_files_sizes_and_determinism(stargan_ckpt, inputs, tmp_path):
    written = run_translate(f"ckpt={stargan_ckpt}", f"input={inputs}", f"output={tmp_path / 'a'}", "domain=square",
                            "seeds=[0,5]", "batch_size=2")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([f"img{i}__square-seed{s}.png" for i in range(3) for s in (0, 5)] + ["overview.png"])
    assert len(written) == 7 and written[-1].name == "overview.png"
    assert Image.open(written[0]).size == (16, 16)  # the model's img_size
    # Overview: one row per input, source then the two styles, 16 px images enlarged to 128 px tiles (2 px
    # padding), below a header of column titles and right of a column of input names.
    overview = Image.open(tmp_path / "a" / "overview.png")
    width, height = overview.size
    assert width > 3 * 130 + 2 and height > 3 * 130 + 2 and (width - 3 * 130 - 2) < 130 and (height - 3 * 130 - 2) < 60
    # A seed is one style code: the same images again (to one 8-bit level: run b translates in other batches),
    # and different seeds differ.
    run_translate(f"ckpt={stargan_ckpt}", f"input={inputs}", f"output={tmp_path / 'b'}", "domain=square", "seeds=[5]")
    seed5 = [tmp_path / d / "img1__square-seed5.png" for d in ("a", "b")]
    assert max_level_difference(*seed5) <= 1
    assert max_level_difference(tmp_path / "a" / "img1__square-seed0.png", seed5[0]) > 8


def test_seeds_comma_list_is_not_a_hydra_sweep():
    assert list(translate.compose(["ckpt=x", "input=y", "output=z", "seeds=0,1,2"]).seeds) == [0, 1, 2]
    assert translate.parse_seeds("3, 4") == [3, 4]


def test_stargan_reference_folder_per_domain(stargan_ckpt, inputs, tmp_path):
    refs = tmp_path / "refs"
    (refs / "circle").mkdir(parents=True)
    (refs / "square").mkdir()
    rgb((20, 20), seed=7).save(refs / "circle" / "c.png")
    rgb((20, 20), seed=8).save(refs / "square" / "s.jpg")
    run_translate(f"ckpt={stargan_ckpt}", f"input={inputs}", f"output={tmp_path / 'o'}", f"ref={refs}")
    names = sorted(p.name for p in (tmp_path / "o").glob("img*.png"))
    assert names == sorted(f"img{i}__ref-{r}.png" for i in range(3) for r in ("circle_c", "square_s"))
    # The same reference given as a file with its domain gives the same images.
    run_translate(f"ckpt={stargan_ckpt}", f"input={inputs}", f"output={tmp_path / 'p'}", f"ref={refs / 'square' / 's.jpg'}",
                  "domain=square", "grid=false")
    assert max_level_difference(tmp_path / "p" / "img2__ref-s.png", tmp_path / "o" / "img2__ref-square_s.png") <= 1
    assert not (tmp_path / "p" / "overview.png").exists()


def test_unpaired_a_to_b(cut_ckpt, inputs, tmp_path):
    import torch

    assert torch.load(cut_ckpt, weights_only=False, mmap=True)["model_class"] == "lit_gans.models.cut.CUT"
    run_translate(f"ckpt={cut_ckpt}", f"input={inputs}", f"output={tmp_path / 'o'}")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["img0.png", "img1.png", "img2.png", "overview.png"]
    assert Image.open(tmp_path / "o" / "img0.png").size == (32, 32)
    width, height = Image.open(tmp_path / "o" / "overview.png").size  # 2 columns x 3 rows of 128 px tiles, labelled
    assert 2 * 130 + 2 < width < 3 * 130 + 2 and 3 * 130 + 2 < height < 3 * 130 + 2 + 60


@pytest.mark.parametrize("case", ["unknown_domain", "not_an_image", "missing_ckpt", "no_target", "ref_on_cut"])
def test_bad_input_is_one_line(case, stargan_ckpt, cut_ckpt, inputs, tmp_path, capsys):
    args = {"unknown_domain": [f"ckpt={stargan_ckpt}", "domain=horse"],
            "not_an_image": [f"ckpt={cut_ckpt}"],
            "missing_ckpt": [f"ckpt={tmp_path / 'nope.ckpt'}"],
            "no_target": [f"ckpt={stargan_ckpt}"],
            "ref_on_cut": [f"ckpt={cut_ckpt}", f"ref={inputs / 'img0.png'}", "domain=square"]}[case]
    if case == "not_an_image":
        (inputs / "notes.txt").write_text("not an image")
    with pytest.raises(SystemExit) as exit_:
        translate.main([*args, f"input={inputs}", f"output={tmp_path / 'o'}", "progress=false"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    expected = {"unknown_domain": "domain=horse is not a domain of this checkpoint: one of circle, square",
                "not_an_image": "notes.txt (not an image file)",
                "missing_ckpt": "nope.ckpt does not exist",
                "no_target": "domain=NAME seeds=0,1,2",
                "ref_on_cut": "ref=/domain= are for StarGAN v2; this checkpoint holds CUT"}[case]
    assert expected in err


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate_cfg(tmp_path, *overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=f"{ROOT}/conf", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir, cfg.hydra.runtime.cwd = str(tmp_path), ROOT
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def test_evaluate_stargan_per_domain_and_mean(stargan_ckpt, weight_files, tmp_path, capsys):
    cfg = evaluate_cfg(tmp_path, f"ckpt={stargan_ckpt}", "data.num_domains=2", "data.per_domain=4",
                       "data.val_per_domain=2", f"metrics.inception_weights={weight_files[0]}",
                       f"metrics.lpips_weights={weight_files[1]}", "metrics.feature=64", "metrics.num_styles=2",
                       "metrics.batch_size=4", "progress=false")
    results = evaluate(cfg)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["metrics"] == results and report["model"].endswith("StarGANv2")
    for mode in ("latent", "reference"):
        assert list(results[mode]) == ["circle", "square", "mean"]  # (and results["judge"], below)
        for metric in ("FID", "KID", "LPIPS"):
            per = [results[mode][d][metric] for d in ("circle", "square")]
            assert results[mode]["mean"][metric] == pytest.approx(sum(per) / 2)
        assert all(results[mode][d]["FID"] > 0 and results[mode][d]["LPIPS"] > 0 for d in ("circle", "square"))
    assert set(results["judge"]["judge_accuracy_pairs"]) == {"circle->square", "square->circle"}
    table = capsys.readouterr().out
    assert "latent/circle" in table and "reference/mean" in table and "LPIPS" in table and "judge_fd" in table


def test_evaluate_unpaired_a_to_b_and_the_wrong_model_config(cut_ckpt, weight_files, tmp_path):
    from lit_gans.errors import ConfigError

    common = [f"ckpt={cut_ckpt}", f"metrics.inception_weights={weight_files[0]}", "metrics.feature=64",
              "progress=false"]
    with pytest.raises(ConfigError, match="the checkpoint holds CUT but the config composes StarGANv2: add model=cut"):
        evaluate(evaluate_cfg(tmp_path, *common))
    results = evaluate(evaluate_cfg(tmp_path, *common, "model=cut", "data.img_size=32", "data.val_size=4"))
    assert list(results) == ["AtoB", "judge"] and set(results["AtoB"]) == {"FID", "KID", "KID_std"}
    judge = results["judge"]  # a two-domain judge: is G(A) called B?
    assert judge["judge_chance"] == 0.5 and list(judge["judge_accuracy_pairs"]) == ["A->B"]
    assert judge["judge_accuracy"] == judge["judge_accuracy_pairs"]["A->B"] and judge["judge_fd"] >= 0
    assert results["AtoB"]["FID"] > 0
    assert "AtoB" in format_table(results)


# ---------------------------------------------------------------------------------------------- callback
@pytest.mark.slow
def test_validation_metrics_callback_logs_to_tensorboard(weight_files, tmp_path):
    cfg = compose_config([*TWO_DOMAINS, *QUIET, "callbacks=metrics", "trainer.max_epochs=2", "callbacks.judge.at_end=false",
                          "trainer.limit_train_batches=1", "callbacks.model_checkpoint=null",
                          "callbacks.metrics.every_n_epochs=2", "callbacks.metrics.feature=64",
                          f"callbacks.metrics.inception_weights={weight_files[0]}",
                          f"callbacks.metrics.lpips_weights={weight_files[1]}", "callbacks.metrics.num_styles=2",
                          "callbacks.metrics.max_sources=1", "callbacks.metrics.modes=[latent]"], str(tmp_path))
    train(cfg)
    s = read_scalars(str(tmp_path))
    val = {k: v for k, v in s.items() if k.startswith("val/")}
    assert set(val) == {"val/FID", "val/KID", "val/LPIPS", "val/FID_latent", "val/KID_latent", "val/LPIPS_latent"}
    assert all(len(v) == 1 for v in val.values())  # every 2 epochs: once in 2 epochs
    assert val["val/FID"][0][1] == pytest.approx(val["val/FID_latent"][0][1]) and val["val/FID"][0][1] > 0


def test_validation_metrics_stop_the_run_early_without_weights(tmp_path, monkeypatch):
    from lit_gans.errors import ConfigError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = compose_config([*TWO_DOMAINS, *QUIET, "callbacks=metrics", "trainer.max_epochs=1", "logger=[]",
                          "callbacks.model_checkpoint=null"], str(tmp_path))
    with pytest.raises(ConfigError, match="weights-inception-2015-12-05-6726825d.pth"):
        train(cfg)


@pytest.mark.slow
def test_latent_stargan_encodes_inputs_and_decodes_outputs_with_the_vae(tmp_path_factory, inputs, tmp_path):
    from test_image_grid import tiny_vae_dir

    vae = tiny_vae_dir(tmp_path_factory.mktemp("vae"))
    out = tmp_path_factory.mktemp("latent")
    train(compose_config(["model=stargan_latent", *TWO_DOMAINS, f"model.vae={{path: '{vae}'}}", *SHORT,
                          "trainer.max_steps=2"], str(out)))
    ckpt = out / "checkpoints" / "last.ckpt"
    run_translate(f"ckpt={ckpt}", f"input={inputs}", f"output={tmp_path / 'o'}", "domain=circle", "seeds=[1]")
    # 16 x 16 latents, decoded by the VAE (8x upsampling) into 128 px RGB images.
    img = Image.open(tmp_path / "o" / "img0__circle-seed1.png")
    assert img.size == (128, 128) and img.mode == "RGB"
    width, height = Image.open(tmp_path / "o" / "overview.png").size  # 128 px tiles, titled and labelled
    assert 2 * 130 + 2 < width < 3 * 130 + 2 and 3 * 130 + 2 < height < 3 * 130 + 2 + 60
