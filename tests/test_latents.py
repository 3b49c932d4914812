"""SD-VAE latents: the real encode/decode CLI on a small AutoencoderKL saved by the test, resuming an
interrupted encoding, the latent data module, and one clear line for bad latent files."""

import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from imagefiles import write_domains, write_folder
from lit_gans.data.latents import LatentDataModule
from lit_gans.errors import ConfigError, DataError
from lit_gans.latents import cli_impl
from lit_gans.latents.__main__ import main as latents_main
from lit_gans.latents.store import LatentSet, load_latents, save_latents
from lit_gans.train import build
from test_image_grid import tiny_vae_dir


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return tiny_vae_dir(tmp_path_factory.mktemp("vae"))


@pytest.fixture(scope="module")
def afhq_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("afhq")
    write_domains(root / "train", {"cat": 5, "dog": 4, "wild": 3}, size=(80, 70))
    write_domains(root / "val", {"cat": 1, "dog": 1, "wild": 1}, size=(80, 70), seed=9)
    return root


@pytest.fixture(scope="module")
def latent_file(tmp_path_factory, vae_dir, afhq_like):
    out = tmp_path_factory.mktemp("lat") / "afhq.pt"
    assert latents_main(["encode", "--images", str(afhq_like), "--vae", vae_dir, "--size", "128", "--out", str(out),
                         "--batch-size", "4", "--workers", "0"]) == 0
    return out


def test_encode_writes_unscaled_latents_labels_and_metadata(latent_file, vae_dir, afhq_like):
    from lit_gans.latents.vae import encode_images, load_vae

    d = load_latents(latent_file)
    assert d.layout == "domains" and d.domain_names == ["cat", "dog", "wild"]
    assert d.latents.shape == (15, 4, 16, 16) and d.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 3 + [0, 1, 2]
    assert d.split.tolist() == [0] * 12 + [1] * 3
    assert d.vae == vae_dir and d.image_size == 128 and d.scaling_factor == pytest.approx(0.18215)
    assert d.files[0] == "train/cat/000.png"
    # Unscaled posterior mean of the real VAE on the same preprocessing.
    ds = cli_impl._Images([cli_impl.Entry(afhq_like / "train" / "cat" / "000.png", None, 0, 0, "x")], 128, False)
    want = encode_images(load_vae(vae_dir), ds[0][0][None])
    assert torch.allclose(d.latents[0], want[0], atol=1e-5)


def test_interrupted_encoding_resumes_and_keeps_the_good_file(tmp_path, vae_dir, afhq_like, monkeypatch):
    out = tmp_path / "lat.pt"
    out.write_bytes(b"previous good file")
    calls = {"n": 0}
    real = cli_impl.encode_images

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while encoding the third shard
        return real(*a, **k)

    monkeypatch.setattr(cli_impl, "encode_images", flaky)
    args = ["encode", "--images", str(afhq_like), "--vae", vae_dir, "--size", "64", "--out", str(out),
            "--batch-size", "4", "--shard-size", "4", "--workers", "0"]
    with pytest.raises(SystemExit) as stop:  # Ctrl-C: "stopped by Ctrl-C", exit status 130
        latents_main(args)
    assert stop.value.code == 130
    assert out.read_bytes() == b"previous good file"  # never replaced by a partial result
    assert sorted(p.name for p in (tmp_path / "lat.pt.partial").glob("shard_*.pt")) == ["shard_00000.pt", "shard_00001.pt"]
    calls["n"] = -100
    latents_main(args)
    assert calls["n"] == -100 + 2  # only the two missing shards (15 images, 4 per shard) were encoded
    assert load_latents(out).latents.shape == (15, 4, 8, 8)
    assert not (tmp_path / "lat.pt.partial").exists()


def test_decode_and_info(tmp_path, latent_file, vae_dir, capsys):
    latents_main(["decode", "--latents", str(latent_file), "--vae", vae_dir, "--out", str(tmp_path), "--limit", "3"])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["000000_000.png", "000001_001.png", "000002_002.png"]
    latents_main(["info", str(latent_file)])
    out = capsys.readouterr().out
    assert "15 latents (4, 16, 16)" in out and "cat (6), dog (5), wild (4)" in out


def test_unpaired_and_paired_layouts_encode(tmp_path, vae_dir):
    write_folder(tmp_path / "u" / "trainA", 3)
    write_folder(tmp_path / "u" / "trainB", 2)
    out = tmp_path / "u.pt"
    latents_main(["encode", "--images", str(tmp_path / "u"), "--vae", vae_dir, "--size", "64", "--out", str(out),
                  "--workers", "0"])
    d = load_latents(out)
    assert d.layout == "unpaired" and d.labels.tolist() == [0, 0, 0, 1, 1] and d.domain_names == ["A", "B"]
    write_folder(tmp_path / "p" / "A", 3, seed=1)
    write_folder(tmp_path / "p" / "B", 3, seed=2)
    latents_main(["encode", "--images", str(tmp_path / "p"), "--vae", vae_dir, "--size", "64", "--out",
                  str(tmp_path / "p.pt"), "--workers", "0"])
    p = load_latents(tmp_path / "p.pt")
    assert p.layout == "paired" and p.latents_b.shape == p.latents.shape == (3, 4, 8, 8)
    assert not torch.equal(p.latents, p.latents_b)
    dm = LatentDataModule(str(tmp_path / "p.pt"), batch_size=2)
    dm.setup()
    item = dm.train_set[(1, 5)]
    assert torch.equal(item["A"], p.latents[1]) and torch.equal(item["B"], p.latents_b[1])


def test_latent_data_module_yields_stargan_items_without_pil(latent_file, monkeypatch):
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: pytest.fail("latents went through PIL"))
    dm = LatentDataModule(str(latent_file), batch_size=4, latent_dim=3)
    spec = dm.data_spec()
    assert spec["channels"] == 4 and spec["img_size"] == 16 and spec["num_domains"] == 3
    assert spec["scaling_factor"] == pytest.approx(0.18215)
    dm.setup()
    assert len(dm.train_set) == 12 and len(dm.val_set) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["x_src"].shape == (4, 4, 16, 16) and batch["z1"].shape == (4, 3)


def test_training_on_a_latent_file_takes_domains_and_scale_from_it(make_cfg, latent_file):
    cfg = make_cfg("model=stargan_latent", "data=latents", f"data.path={latent_file}", "model.latent_scale=null",
                   "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=[]")
    datamodule, model, trainer = build(cfg)
    assert model.net_cfg["num_domains"] == 3 and model.latent_scale == pytest.approx(0.18215)
    trainer.fit(model, datamodule=datamodule)
    assert model.data_spec["domain_names"] == ["cat", "dog", "wild"]


@pytest.mark.parametrize(("override", "words"), [
    ("model.num_domains=2", "data has num domains 3 but the model is built for 2 (model.num_domains=2)"),
    ("model.img_size=32", "data has img size 16 but the model is built for 32 (model.img_size=32)"),
])
def test_latent_file_that_does_not_fit_the_model_is_named_at_setup(make_cfg, latent_file, override, words):
    cfg = make_cfg("model=stargan_latent", "data=latents", f"data.path={latent_file}", override,
                   "trainer.max_epochs=1", "logger=[]")
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError) as err:
        trainer.fit(model, datamodule=datamodule)
    assert words in str(err.value)
    assert model.ema_updates == 0  # nothing trained


def test_pixel_model_on_latents_is_rejected(make_cfg, latent_file):
    cfg = make_cfg("model=stargan", "data=latents", f"data.path={latent_file}", "trainer.max_epochs=1", "logger=[]")
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError, match=r"data has channels 4 but the model is built for 3 \(model.in_channels=3\)"):
        trainer.fit(model, datamodule=datamodule)


def _set(**kw):
    base = dict(latents=torch.randn(4, 4, 8, 8), labels=torch.tensor([0, 0, 1, 1]), split=torch.zeros(4, dtype=torch.long),
                domain_names=["a", "b"])
    base.update(kw)
    return LatentSet(**base)


def test_bad_latent_files_are_one_line(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"latents": torch.zeros(2, 4, 8, 8)}, tmp_path / "other.pt")
    bad = _set()
    bad.latents[2, 1, 3, 3] = float("nan")
    torch.save(bad.to_dict(), tmp_path / "nan.pt")
    torch.save(_set(latents=torch.randn(4, 8, 8)).to_dict(), tmp_path / "shape.pt")
    cases = {
        "missing.pt": "does not exist: write one with: python -m lit_gans.latents encode",
        "text.pt": "is not a latent file",
        "other.pt": "is not a lit_gans latent file",
        "nan.pt": "latents[2] contains NaN or Inf",
        "shape.pt": "latents have shape (4, 8, 8), expected (N, channels, h, w)",
    }
    for name, words in cases.items():
        with pytest.raises(DataError) as err:
            load_latents(tmp_path / name)
        assert words in str(err.value) and "\n" not in str(err.value), name
    with pytest.raises(DataError, match="labels go up to 1 but there are 1 domain names"):
        save_latents(_set(domain_names=["a"]), tmp_path / "x.pt")


def test_train_py_with_a_bad_latent_file_prints_one_line(tmp_path):
    (tmp_path / "bad.pt").write_text("not latents")
    p = subprocess.run([sys.executable, "train.py", "model=stargan_latent", "data=latents", f"data.path={tmp_path}/bad.pt",
                        f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}/bad.pt is not a latent file (torch.load cannot read it): write one with: "
        "python -m lit_gans.latents encode --images DIR --vae PATH_OR_HUB_ID --out FILE")
