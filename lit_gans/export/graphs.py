"""The inference path of each model family as one plain ``nn.Module`` with tensor inputs and outputs: what
``python -m lit_gans.export`` writes to ONNX / TorchScript / torch.export files and what ``python -m
lit_gans.serve`` runs. The networks are the checkpoint's own (no copy of their code); a module here only
wires them as the model's ``translate`` does, with the data-space conversion (``latent_scale``) inside, so a
graph takes and returns the data's own space (pixels in [-1, 1], or unscaled SD-VAE latents) — or pixels
when the VAE decoder is included.

Every batch dimension is dynamic. StarGAN v2 and CycleGAN have more than one way in (latent code or
reference; A -> B or B -> A); ONNX graphs have one entry point, so these graphs take one input per way and
split the batch between them: StarGAN v2's ``z`` holds the codes of the first ``Nz`` items and ``ref`` the
references of the other ``Nr`` (``Nz + Nr = B``; either may be empty), so one call translates a batch that
mixes latent-guided and reference-guided requests and runs only the networks each item needs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.errors import ConfigError

FAMILIES = {"StarGANv2": "stargan_v2", "CycleGAN": "cyclegan", "CUT": "cut", "Pix2Pix": "pix2pix",
            "Palette": "palette"}
PIX2PIX_NORMS = ("auto", "running", "per_image")


@dataclass
class TensorSpec:
    """One input or output: ``shape`` with ``"batch"``-like names for the dynamic dimensions."""

    shape: list[int | str]
    dtype: str = "float32"
    doc: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "dtype": self.dtype, "doc": self.doc}


@dataclass
class GraphSpec:
    """What an exported file holds: named inputs and outputs (in call order) and the metadata that goes with
    them (family, domains, sizes, value ranges, ...)."""

    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    metadata: dict[str, Any] = field(default_factory=dict)

    def dynamic_shapes(self) -> dict[str, dict[int, Any]]:
        """torch.export's ``dynamic_shapes``: every named (string) dimension is dynamic."""
        return {name: {i: torch.export.Dim.DYNAMIC for i, d in enumerate(s.shape) if isinstance(d, str)}
                for name, s in self.inputs.items()}


def family_of(model: Any) -> str:
    name = type(model).__name__
    if name not in FAMILIES:
        raise ConfigError(f"{name} has no export graph: lit_gans exports {', '.join(FAMILIES)}")
    return FAMILIES[name]


class _DataSpace(nn.Module):
    """Holds ``latent_scale`` (a Python float: a constant in the exported graph) and the optional decoder."""

    def __init__(self, latent_scale: float, decoder: nn.Module | None):
        super().__init__()
        self.scale = float(latent_scale)
        self.decoder = decoder

    def into(self, x: Tensor) -> Tensor:
        return x * self.scale if self.scale != 1.0 else x

    def out_of(self, x: Tensor) -> Tensor:
        x = x / self.scale if self.scale != 1.0 else x
        return self.decoder(x) if self.decoder is not None else x


class VAEDecoder(nn.Module):
    """A diffusers ``AutoencoderKL``'s decoder: unscaled latents ``(B, 4, h, w)`` -> RGB ``(B, 3, 8h, 8w)`` in
    [-1, 1] (as :func:`lit_gans.latents.vae.decode_latents`)."""

    def __init__(self, vae: Any):
        super().__init__()
        self.vae = vae

    def forward(self, z: Tensor) -> Tensor:
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0].float().clamp(-1, 1)


class StarGANTranslator(_DataSpace):
    """StarGAN v2 with the EMA networks: ``out = G(x, s)``, ``s = F(z, y)`` for the first ``Nz`` items and
    ``s = E(ref, y)`` for the other ``Nr``.

    Inputs: ``x`` ``(B, C, H, W)`` sources, ``y`` ``(B,)`` int64 target domains, ``z`` ``(Nz, latent_dim)``
    latent codes, ``ref`` ``(Nr, C, H, W)`` references, ``Nz + Nr = B``. Output ``(B, C, H, W)``."""

    def __init__(self, model: Any, decoder: nn.Module | None = None):
        super().__init__(model.latent_scale, decoder)
        self.generator = model.generator_ema
        self.mapping_network = model.mapping_network_ema
        self.style_encoder = model.style_encoder_ema

    def forward(self, x: Tensor, y: Tensor, z: Tensor, ref: Tensor) -> Tensor:
        n = z.shape[0]
        s = torch.cat([self.mapping_network(z, y[:n]), self.style_encoder(self.into(ref), y[n:])])
        return self.out_of(self.generator(self.into(x), s))


class CycleGANTranslator(_DataSpace):
    """Both generators: ``fake_B = G_A(A)`` for ``A`` ``(Na, C, H, W)`` and ``fake_A = G_B(B)`` for ``B``
    ``(Nb, C, H, W)``; either batch may be empty."""

    def __init__(self, model: Any, decoder: nn.Module | None = None):
        super().__init__(model.latent_scale, decoder)
        self.G_A, self.G_B = model.G_A, model.G_B

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        return self.out_of(self.G_A(self.into(a))), self.out_of(self.G_B(self.into(b)))


class OneToOneTranslator(_DataSpace):
    """``out = G(x)`` (CUT/FastCUT's ``G``, pix2pix's U-Net)."""

    def __init__(self, net: nn.Module, latent_scale: float, decoder: nn.Module | None = None):
        super().__init__(latent_scale, decoder)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.out_of(self.net(self.into(x)))


class PerImageBatchNorm(nn.Module):
    """A batch-norm layer as pix2pix applies it at test time, on a batch of one image: normalised with that
    image's own statistics (per channel over H, W, biased variance) and the layer's scale and shift. For a
    batch of one this is exactly ``BatchNorm2d`` in training mode; for larger batches each image is treated
    as if alone, so an output never depends on the other images of its batch."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x: Tensor) -> Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def pix2pix_generator(model: Any, norm: str = "auto") -> tuple[nn.Module, str]:
    """pix2pix's generator for deterministic inference, and the normalisation chosen.

    ``running``: batch-norm with the running statistics (the original's ``--eval``, ``model.eval_mode=true``);
    ``per_image``: each image normalised by its own statistics (the paper's test: batch statistics on batches
    of one, what ``translate`` does after loading a checkpoint); ``auto``: the checkpoint's choice. Dropout is
    off in both (the paper keeps it on as a noise source; an exported file is deterministic)."""
    if norm not in PIX2PIX_NORMS:
        raise ConfigError(f"pix2pix_norm={norm}: choose one of {', '.join(PIX2PIX_NORMS)}")
    if norm == "auto":
        norm = "running" if model.eval_mode else "per_image"
    net = copy.deepcopy(model.generator).eval()
    if norm == "per_image":
        for parent in list(net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(parent, name, PerImageBatchNorm(child))
    return net, norm


class PaletteDenoiser(nn.Module):
    """One denoising step's network: the EMA UNet's noise prediction ``eps = unet(x_t, t, cond)`` in the
    model's space (latents times ``latent_scale``). The sampler loop (DDIM/DDPM) stays outside: its per-step
    arithmetic needs only the schedule's ``alphas_cumprod``, stored in the metadata."""

    def __init__(self, model: Any):
        super().__init__()
        self.unet = model.unet_ema

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.unet(x_t, t, cond)


# ---------------------------------------------------------------------------------------------- building
def _space(model: Any, decoder: bool) -> dict[str, Any]:
    from lit_gans.inference import is_latent_model

    pixels = [-1.0, 1.0]
    latent = is_latent_model(model)
    data = "pixels in [-1, 1] (RGB, (x + 1) / 2 * 255 for 8-bit)" if not latent else \
        "unscaled SD-VAE latents (the VAE's posterior, before scaling_factor)"
    out = "pixels in [-1, 1] (RGB), decoded by the SD VAE" if decoder else data
    return {"input": data, "output": out, "input_range": None if latent else pixels,
            "output_range": pixels if (decoder or not latent) else None}


def build_graph(model: Any, vae: Any | None = None, pix2pix_norm: str = "auto") -> tuple[nn.Module, GraphSpec]:
    """The export graph of ``model`` (a trained lit_gans LightningModule) and its spec.

    ``vae``: a diffusers ``AutoencoderKL`` whose decoder is appended, so that a latent model returns pixels
    (not for Palette, whose sampler loop runs outside the graph). Returns the module in eval mode on the
    model's device."""
    family = family_of(model)
    n = model.net_cfg
    size, ch = int(n["img_size"]), int(n.get("out_channels") or n["in_channels"])
    in_ch = int(n.get("in_channels"))
    if vae is not None and family == "palette":
        raise ConfigError("vae_decoder=true is not available for Palette: its export is the one-step denoiser and "
                          "the sampler loop runs outside, so decode the loop's result with the VAE there")
    decoder = VAEDecoder(vae) if vae is not None else None
    up = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
    out_shape: list[int | str] = ["batch", 3 if decoder is not None else ch, size * up, size * up]
    meta: dict[str, Any] = {"family": family, "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                            "img_size": size, "channels": in_ch, "out_channels": ch,
                            "latent_scale": float(model.latent_scale), "vae_decoder": decoder is not None,
                            "value_range": _space(model, decoder is not None)}
    image = ["batch", in_ch, size, size]
    if family == "stargan_v2":
        spec = model.data_spec or {}
        names = list(spec.get("domain_names") or [str(i) for i in range(n["num_domains"])])
        meta.update(domains=names, latent_dim=n["latent_dim"], style_dim=n["style_dim"],
                    usage="items [0, Nz) are latent-guided (z), items [Nz, B) reference-guided (ref); Nz + Nr = B; "
                          "either may be empty (shape 0 on the first axis)")
        graph: nn.Module = StarGANTranslator(model, decoder)
        gspec = GraphSpec({"x": TensorSpec(image, doc="sources"),
                           "y": TensorSpec(["batch"], "int64", "target domain index per item, see domains"),
                           "z": TensorSpec(["n_latent", n["latent_dim"]], doc="latent codes ~ N(0, I) of the first Nz items"),
                           "ref": TensorSpec(["n_ref", in_ch, size, size], doc="reference images of the last Nr items")},
                          {"out": TensorSpec(out_shape, doc="translations")}, meta)
    elif family == "cyclegan":
        meta.update(domains=["A", "B"], usage="A -> B on input a (output fake_B), B -> A on input b (output fake_A); "
                                             "either batch may be empty")
        graph = CycleGANTranslator(model, decoder)
        out_a = ["batch_b", *out_shape[1:]]
        gspec = GraphSpec({"a": TensorSpec(image, doc="images of domain A"),
                           "b": TensorSpec(["batch_b", in_ch, size, size], doc="images of domain B")},
                          {"fake_B": TensorSpec(out_shape, doc="G_A(a)"), "fake_A": TensorSpec(out_a, doc="G_B(b)")},
                          meta)
    elif family in ("cut", "pix2pix"):
        if family == "cut":
            net, note = model.G, "FastCUT" if model.flip_equivariance else "CUT"
            meta.update(variant=note)
        else:
            net, norm = pix2pix_generator(model, pix2pix_norm)
            meta.update(pix2pix_norm=norm, dropout="off")
        graph = OneToOneTranslator(net, model.latent_scale, decoder)
        gspec = GraphSpec({"x": TensorSpec(image, doc="sources (domain A)")}, {"out": TensorSpec(out_shape, doc="A -> B")},
                          meta)
    else:  # palette
        cond_ch = int(n.get("cond_channels") or in_ch)
        s = model.sampling_cfg
        clip = s["clip_denoised"]
        clip = (1.0 if model.latent_scale == 1.0 else None) if clip is None else (
            1.0 if clip is True else (None if clip is False else float(clip)))
        meta.update(palette={
            "timesteps": model.schedule.timesteps, "alphas_cumprod": list(model.schedule.alpha_bars),
            "sampler": s["sampler"], "steps": s["steps"], "eta": s["eta"], "clip_denoised": clip,
            "loop": "outside the graph: x_T ~ N(0, I) in model space, then DDIM/DDPM steps calling the denoiser "
                    "(lit_gans.export.sample_palette runs them); divide the result by latent_scale"},
            usage="eps = denoiser(x_t, t, cond), all in model space (data x latent_scale); t in [0, timesteps)")
        graph = PaletteDenoiser(model)
        gspec = GraphSpec({"x_t": TensorSpec(["batch", in_ch, size, size], doc="noisy target at step t"),
                           "t": TensorSpec(["batch"], "int64", "timestep per item"),
                           "cond": TensorSpec(["batch", cond_ch, size, size], doc="source (condition)")},
                          {"eps": TensorSpec(["batch", in_ch, size, size], doc="predicted noise")}, meta)
    device = next(model.parameters()).device
    return graph.to(device).eval().requires_grad_(False), gspec


def example_inputs(spec: GraphSpec, batch: int = 2, device: torch.device | str = "cpu",
                   generator: torch.Generator | None = None, sizes: Mapping[str, int] | None = None) -> dict[str, Tensor]:
    """Random inputs matching ``spec``: every dynamic dimension ``batch`` (or ``sizes[name]``), images in
    [-1, 1], domains/timesteps in their range. StarGAN v2's batch is split between ``z`` (``batch // 2``) and
    ``ref`` (the rest)."""
    meta = spec.metadata
    # Distinct sizes per dynamic dimension: equal example sizes could be taken for one symbol by a tracer.
    dims = {"batch": batch, "batch_b": batch + 1, "n_latent": batch // 2, "n_ref": batch - batch // 2, **(sizes or {})}
    out: dict[str, Tensor] = {}
    for name, s in spec.inputs.items():
        shape = [dims[d] if isinstance(d, str) else d for d in s.shape]
        if s.dtype == "int64":
            high = len(meta["domains"]) if name == "y" else meta["palette"]["timesteps"]
            out[name] = torch.randint(0, high, shape, generator=generator)
        else:
            out[name] = torch.rand(shape, generator=generator) * 2 - 1 if name not in ("z", "x_t") else \
                torch.randn(shape, generator=generator)
    return {k: v.to(device) for k, v in out.items()}
