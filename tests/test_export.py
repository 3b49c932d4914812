"""python -m lit_gans.export: every model family's inference path as ONNX (run by onnxruntime on CPU),
TorchScript and pt2 gives PyTorch's outputs (to 1e-4) at batch sizes other than the traced one, carries its
metadata, and a damaged or foreign file is one line."""

from __future__ import annotations

import zipfile

import pytest
import torch
from torch import nn

from lit_gans.errors import DataError
from lit_gans.export import __main__ as export_cli
from lit_gans.export import build_graph, example_inputs, load, read_metadata, sample_palette
from lit_gans.export.formats import write
from lit_gans.models import CUT, CycleGAN, Palette, Pix2Pix, StarGANv2

TOL = 1e-4
DOMAINS = ["circle", "square", "triangle"]
TINY_PALETTE = {"img_size": 16, "channels": 16, "channel_mults": (1, 2), "num_res_blocks": 1, "attn_res": (8,),
                "num_head_channels": 8, "norm_groups": 8}


def perturbed(model):
    """Random weights everywhere: zero-initialised layers (Palette's last convs) would make outputs trivially 0,
    and EMA copies start equal to their nets."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def make(family: str, **kw):
    torch.manual_seed(0)
    if family == "stargan_v2":
        m = StarGANv2(img_size=16, dim=8, max_conv_dim=16, mapping_dim=32, style_dim=8, latent_dim=4, num_domains=3, **kw)
        m.data_spec = {"domain_names": DOMAINS}
    elif family == "cyclegan":
        m = CycleGAN(img_size=32, ngf=4, n_blocks=1, ndf=4, **kw)
    elif family in ("cut", "fastcut"):
        m = CUT(img_size=32, ngf=4, n_blocks=1, ndf=4, nce_dim=8, flip_equivariance=family == "fastcut", **kw)
    elif family == "pix2pix":
        m = Pix2Pix(img_size=32, ngf=4, ndf=4, **kw)
    else:
        m = Palette(**TINY_PALETTE, **kw)
    return perturbed(m)


def reference_outputs(family: str, model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """What the model's own inference path (``translate`` / the EMA UNet) gives for the graph's inputs."""
    if family == "stargan_v2":
        n = inputs["z"].shape[0]
        x, y = inputs["x"], inputs["y"]
        parts = []
        if n:
            parts.append(model.translate(x[:n], y[:n], z=inputs["z"]))
        if x.shape[0] > n:
            parts.append(model.translate(x[n:], y[n:], x_ref=inputs["ref"]))
        return (torch.cat(parts),)
    if family == "cyclegan":
        return model.translate(inputs["a"], "AtoB"), model.translate(inputs["b"], "BtoA")
    if family == "palette":
        with torch.no_grad():
            return (model.unet_ema(inputs["x_t"], inputs["t"], inputs["cond"]),)
    if family == "pix2pix":
        # The paper's test-time normalisation (statistics of each image alone), with dropout off as exported.
        for m in model.generator.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        return (torch.cat([model.translate(x[None]) for x in inputs["x"]]),)
    return (model.translate(inputs["x"]),)


FAMILIES = ["stargan_v2", "cyclegan", "cut", "fastcut", "pix2pix", "palette"]
# FastCUT is CUT's network with another training recipe (flip equivariance): the same inference path.
PARAMS = [pytest.param(f, marks=pytest.mark.slow) if f == "fastcut" else f for f in FAMILIES]


@pytest.fixture(scope="module")
def models():
    return {f: make(f) for f in FAMILIES}


class Exports(dict):
    """``exported[family, fmt]``: the family's file in that format, written on first use (traced at batch 5)
    and reused by the tests below."""

    def __init__(self, models, root):
        super().__init__()
        self.models, self.root = models, root

    def __missing__(self, key):
        family, fmt = key
        graph, spec = build_graph(self.models[family])
        path = self.root / f"{family}.{fmt}"
        write(graph, spec, example_inputs(spec, 5, generator=torch.Generator().manual_seed(0)), fmt, path)
        self[key] = path
        return path


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    return Exports(models, tmp_path_factory.mktemp("exported"))


def batches(family: str, spec):
    """Batch sizes other than the traced 5, and for the split graphs each way alone (an empty other input)."""
    if family == "stargan_v2":
        return [{"batch": 3, "n_latent": 2, "n_ref": 1}, {"batch": 1, "n_latent": 1, "n_ref": 0},
                {"batch": 2, "n_latent": 0, "n_ref": 2}]
    if family == "cyclegan":
        return [{"batch": 1, "batch_b": 3}, {"batch": 2, "batch_b": 0}]
    return [{"batch": 1}, {"batch": 3}]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("family", PARAMS)
def test_exported_file_matches_pytorch(family, fmt, models, exported):
    model = models[family]
    graph, spec = build_graph(model)
    runner = load(exported[family, fmt])
    for k, sizes in enumerate(batches(family, spec)):
        inputs = example_inputs(spec, sizes["batch"], generator=torch.Generator().manual_seed(10 + k), sizes=sizes)
        want = reference_outputs(family, model, inputs)
        with torch.no_grad():
            direct = graph(*inputs.values())
        direct = direct if isinstance(direct, tuple) else (direct,)
        got = runner(**inputs)
        assert len(got) == len(want)
        for g, d, w in zip(got, direct, want, strict=True):
            assert g.shape == w.shape, (sizes, g.shape, w.shape)
            assert torch.allclose(d, w, atol=TOL, rtol=0), f"the graph differs from translate: {(d - w).abs().max()}"
            assert torch.allclose(g, w, atol=TOL, rtol=0), f"{fmt} differs by {(g - w).abs().max()} at {sizes}"
            if w.numel():
                assert w.abs().max() > 1e-3  # not trivially zero


def test_stargan_domain_is_an_input_and_styles_differ(models, exported):
    runner = load(exported["stargan_v2", "onnx"])
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    z = torch.randn(1, 4)
    outs = [runner(x=x, y=torch.tensor([d]), z=z, ref=torch.zeros(0, 3, 16, 16))[0] for d in range(3)]
    assert (outs[0] - outs[1]).abs().max() > 1e-3 and (outs[1] - outs[2]).abs().max() > 1e-3
    # Reference-guided: the style of the reference, as translate.
    ref = torch.rand(1, 3, 16, 16) * 2 - 1
    got = runner(x=x, y=torch.tensor([2]), z=torch.zeros(0, 4), ref=ref)[0]
    assert torch.allclose(got, models["stargan_v2"].translate(x, 2, x_ref=ref), atol=TOL, rtol=0)


def test_pix2pix_running_statistics(tmp_path):
    model = make("pix2pix", eval_mode=True)
    graph, spec = build_graph(model)
    assert spec.metadata["pix2pix_norm"] == "running"
    write(graph, spec, example_inputs(spec, 5), "onnx", tmp_path / "p.onnx")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    got = load(tmp_path / "p.onnx")(x=x)[0]
    assert torch.allclose(got, model.translate(x), atol=TOL, rtol=0)  # eval_mode: running stats, no dropout
    per_image, _ = build_graph(model, pix2pix_norm="per_image")
    with torch.no_grad():
        assert (per_image(x) - got).abs().max() > 1e-3  # the two normalisations really differ


def test_palette_sampler_loop_around_the_exported_denoiser(models, exported):
    model = models["palette"]
    runner = load(exported["palette", "onnx"])
    meta = runner.metadata["palette"]
    assert meta["timesteps"] == 1000 and len(meta["alphas_cumprod"]) == 1000
    cond = torch.rand(2, 3, 16, 16) * 2 - 1
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    want = model.translate(cond, steps=4, noise=noise)
    got = sample_palette(runner, cond, steps=4, noise=noise)
    # Each step agrees to ~1e-6 (test above); the first DDIM step divides by sqrt(alpha_bar_999) ~ 0.006, so
    # the loop's result agrees to ~1e-4, checked at 1e-3.
    assert torch.allclose(got, want, atol=1e-3, rtol=0), (got - want).abs().max()


def test_metadata_inside_the_files(exported):
    for fmt in ("onnx", "torchscript"):
        meta = read_metadata(exported["stargan_v2", fmt])
        assert meta["format"] == fmt and meta["family"] == "stargan_v2"
        assert meta["domains"] == DOMAINS and meta["img_size"] == 16 and meta["latent_scale"] == 1.0
        assert meta["value_range"]["input_range"] == [-1.0, 1.0] and meta["value_range"]["output_range"] == [-1.0, 1.0]
        assert meta["inputs"]["x"]["shape"] == ["batch", 3, 16, 16]
        assert meta["inputs"]["z"]["shape"] == ["n_latent", 4] and meta["inputs"]["y"]["dtype"] == "int64"
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported["cyclegan", "onnx"])).metadata_props}
    assert props["family"] == '"cyclegan"' and '"fake_A"' in props["lit_gans"]
    onnx_inputs = [i.name for i in onnx.load(str(exported["cyclegan", "onnx"])).graph.input]
    assert onnx_inputs == ["a", "b"]


@pytest.mark.parametrize("family", [pytest.param("stargan_v2", marks=pytest.mark.slow), "cyclegan"])
def test_pt2_keeps_empty_and_single_batches(family, models, tmp_path):
    """pt2 is traced with sizes 0/1 treated as symbolic (formats._size_oblivious, a private torch flag): without
    it torch.export guards the batch to >= 2 and these calls fail."""
    graph, spec = build_graph(models[family])
    write(graph, spec, example_inputs(spec, 5), "pt2", tmp_path / "m.pt2")
    runner = load(tmp_path / "m.pt2")
    assert runner.format == "pt2" and runner.metadata["family"] == family
    for k, sizes in enumerate(batches(family, spec)):
        inputs = example_inputs(spec, sizes["batch"], generator=torch.Generator().manual_seed(k), sizes=sizes)
        want = reference_outputs(family, models[family], inputs)
        for g, w in zip(runner(**inputs), want, strict=True):
            assert torch.allclose(g, w, atol=TOL, rtol=0)


@pytest.mark.slow
def test_latent_stargan_with_the_vae_decoder_returns_pixels(tmp_path):
    from lit_gans.latents.vae import decode_latents, load_vae
    from test_image_grid import tiny_vae_dir

    vae = load_vae(tiny_vae_dir(tmp_path / "vae"))
    torch.manual_seed(0)
    model = perturbed(StarGANv2(img_size=8, in_channels=4, dim=8, max_conv_dim=16, mapping_dim=32, style_dim=8,
                                latent_dim=4, num_domains=2, latent_scale=0.18215))
    graph, spec = build_graph(model, vae=vae)
    assert spec.outputs["out"].shape == ["batch", 3, 64, 64] and spec.metadata["vae_decoder"]
    assert spec.metadata["value_range"]["output_range"] == [-1.0, 1.0] and spec.metadata["latent_scale"] == 0.18215
    write(graph, spec, example_inputs(spec, 5), "onnx", tmp_path / "l.onnx")
    x, z = torch.randn(2, 4, 8, 8), torch.randn(2, 4)
    got = load(tmp_path / "l.onnx")(x=x, y=torch.tensor([0, 1]), z=z, ref=torch.zeros(0, 4, 8, 8))[0]
    want = decode_latents(vae, model.translate(x, torch.tensor([0, 1]), z=z))
    assert got.shape == (2, 3, 64, 64) and torch.allclose(got, want, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def stargan_ckpt(trained):
    """The session's tiny StarGAN v2 (tests/trained.py)."""
    return trained("stargan")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_command_exports_a_trained_checkpoint(fmt, stargan_ckpt, tmp_path, capsys):
    out = tmp_path / f"model.{fmt}"
    export_cli.main([f"ckpt={stargan_ckpt}", f"format={fmt}", f"out={out}"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out} ({fmt}); the file's outputs differ from PyTorch's by at most ")
    assert float(line.rsplit(" ", 1)[1]) <= TOL
    meta = read_metadata(out)
    assert meta["domains"] == ["circle", "square", "triangle"] and meta["checkpoint"] == str(stargan_ckpt.resolve())
    export_cli.main(["info", str(out)])
    assert '"domains": [' in capsys.readouterr().out


def test_command_default_out_is_next_to_the_checkpoint(stargan_ckpt):
    assert export_cli.default_out(str(stargan_ckpt), "onnx") == stargan_ckpt.with_suffix(".onnx")
    assert export_cli.default_out(str(stargan_ckpt), "torchscript").suffix == ".pt"


def _damaged(kind: str, exported, tmp_path):
    path = tmp_path / f"{kind}.bin"
    if kind == "truncated_onnx":
        path.write_bytes(exported["cut", "onnx"].read_bytes()[:5000])
    elif kind == "truncated_torchscript":
        path.write_bytes(exported["cut", "torchscript"].read_bytes()[:-3000])
    elif kind == "text":
        path.write_text("not a model\n")
    elif kind == "foreign_onnx":
        import onnx
        from onnx import TensorProto, helper

        node = helper.make_node("Relu", ["x"], ["y"])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph), str(path))
    elif kind == "foreign_torchscript":
        torch.jit.save(torch.jit.script(nn.ReLU()), str(path))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.txt", "hello")
    return path


DAMAGED = {"truncated_onnx": "is not a readable ONNX, TorchScript or torch.export file",
           "truncated_torchscript": "is not a readable ONNX, TorchScript or torch.export file",
           "text": "is not a readable ONNX, TorchScript or torch.export file",
           "foreign_onnx": "is an ONNX model without lit_gans metadata, not a file written by python -m lit_gans.export",
           "foreign_torchscript": "is a torchscript file without lit_gans metadata",
           "zip": "is a zip archive but neither TorchScript nor torch.export",
           "missing": "does not exist"}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_or_foreign_file_is_one_line(kind, exported, tmp_path, capsys):
    path = tmp_path / "nope.onnx" if kind == "missing" else _damaged(kind, exported, tmp_path)
    with pytest.raises(SystemExit) as exit_:
        export_cli.main(["info", str(path)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert DAMAGED[kind] in err, err
    with pytest.raises(DataError, match=DAMAGED[kind].split(",")[0][:30]):
        load(path)


@pytest.mark.parametrize("args, expected", [
    (["format=tflite"], "format=tflite is not a format: choose one of onnx, torchscript, pt2"),
    (["format=onnx", "vae_decoder=true"], "vae_decoder=true is for latent models"),
    (["pix2pix_norm=batch"], None),  # only read for pix2pix: no error for StarGAN v2
    (["colour=red"], "Could not override 'colour'"),
])
def test_command_bad_settings_are_one_line(args, expected, stargan_ckpt, tmp_path, capsys):
    argv = [f"ckpt={stargan_ckpt}", f"out={tmp_path / 'x.onnx'}", "verify=false", *args]
    if expected is None:
        export_cli.main([*argv, "format=torchscript"])
        return
    with pytest.raises(SystemExit) as exit_:
        export_cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_shape_checks_of_the_runtime(exported):
    runner = load(exported["cut", "onnx"])
    with pytest.raises(DataError, match=r"input x has shape \(1, 3, 16, 16\), the exported model takes \(batch, 3, 32, 32\)"):
        runner(x=torch.zeros(1, 3, 16, 16))
    with pytest.raises(DataError, match="missing: x, unknown: image"):
        runner(image=torch.zeros(1, 3, 32, 32))
