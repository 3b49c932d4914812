"""The inference side of the server: a LitServe ``LitAPI`` that loads the checkpoint in its worker process and
translates batches of requests.

LitServe gathers up to ``max_batch_size`` requests that arrive within ``batch_timeout`` seconds and calls
``decode_request`` on each, then ``predict`` once on the list, then ``encode_response`` on each output. A bad
request must not fail the good ones batched with it (LitServe answers every request of a batch with the error
when one of these methods raises), so nothing here raises for bad input: ``decode_request`` returns a
:class:`~lit_gans.serve.requests.Rejection`, ``predict`` passes it through, and ``encode_response`` turns it
into its 4xx response.

One batch is one forward pass of the export graph (:func:`lit_gans.export.build_graph`): StarGAN v2's
latent-guided and reference-guided requests go through it together (the latent ones first), CycleGAN's A -> B
and B -> A requests too. Palette samples with DDIM (eta 0) from per-request noise, so its outputs depend only
on the request, never on what it was batched with.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import litserve as ls
import torch
from torch import Tensor

from lit_gans.serve.requests import Job, Limits, ModelInfo, Rejection, parse

log = logging.getLogger("lit_gans.serve")


@dataclass
class ServeOptions:
    """Picklable settings of the worker (it is a separate process)."""

    ckpt: str
    vae: str | None = None
    vae_subfolder: str | None = None
    pix2pix_norm: str = "auto"
    threads: int | None = None


def watch_parent(interval_s: float = 1.0) -> None:
    """End this worker process when the server process that started it is gone (killed with SIGKILL, say):
    LitServe's workers would otherwise wait for requests forever."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="lit_gans-parent-watch", daemon=True).start()


def png_bytes(img: Tensor) -> bytes:
    """``(3, H, W)`` in [-1, 1] -> PNG file bytes (8-bit RGB)."""
    from PIL import Image

    arr = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)  # speed over size: the result is small
    return buf.getvalue()


class TranslateAPI(ls.LitAPI):
    """``POST /translate`` (see :mod:`lit_gans.serve.requests` for the fields)."""

    def __init__(self, options: ServeOptions, info: ModelInfo, limits: Limits, max_batch_size: int = 8,
                 batch_timeout: float = 0.01):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/translate")
        self.options, self.info, self.limits = options, info, limits

    # ------------------------------------------------------------------ worker start
    def setup(self, device: str) -> None:
        from lit_gans import inference
        from lit_gans.export import build_graph

        if self.options.threads and torch.device(device).type == "cpu":
            torch.set_num_threads(self.options.threads)
        watch_parent()
        self.torch_device = torch.device(device)
        self.model, _ = inference.load_model(self.options.ckpt, self.torch_device)
        self.vae = inference.model_vae(self.model, self.options.vae, self.options.vae_subfolder, self.torch_device)
        palette = self.info.family == "palette"
        self.graph, _ = build_graph(self.model, vae=None if palette else self.vae, pix2pix_norm=self.options.pix2pix_norm)
        log.info("serving %s on %s", type(self.model).__name__, device)

    # ------------------------------------------------------------------ per request
    # No annotations on decode_request's argument and encode_response's result: LitServe reads them to
    # choose the endpoint's request and response types (here: the raw Request, whatever Response we return).
    def decode_request(self, request):  # noqa: ANN001
        try:
            return parse(request, self.info, self.limits)
        except Exception:  # noqa: BLE001 - a bug must not reach LitServe, which would fail the whole batch
            log.exception("could not parse a request")
            return Rejection(400, "the request could not be read: send multipart/form-data with the field image")

    def batch(self, inputs: list[Job | Rejection]) -> list[Job | Rejection]:
        return inputs

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: bytes | Rejection):  # noqa: ANN201
        from fastapi import Response
        from fastapi.responses import JSONResponse

        if isinstance(output, Rejection):
            return JSONResponse({"detail": output.detail}, status_code=output.status)
        return Response(content=output, media_type="image/png")

    # ------------------------------------------------------------------ per batch
    @torch.no_grad()
    def predict(self, items: list[Job | Rejection] | Job | Rejection) -> list[bytes | Rejection] | bytes | Rejection:
        """A batch (a list, ``max_batch_size > 1``) or, without batching, one request (LitServe then calls
        neither ``batch`` nor ``unbatch``)."""
        if not isinstance(items, list):
            return self.predict([items])[0]
        jobs = [(i, it) for i, it in enumerate(items) if isinstance(it, Job)]
        out: list[bytes | Rejection] = list(items)  # rejections pass through
        if not jobs:
            return out
        try:
            images = self._translate([j for _, j in jobs])
        except Exception:  # noqa: BLE001 - a failure of this batch answers 500 to its requests, the worker lives on
            log.exception("translation failed")
            return [it if isinstance(it, Rejection) else Rejection(500, "the model failed on this request; see the "
                                                                       "server log") for it in items]
        for (i, _), img in zip(jobs, images, strict=True):
            out[i] = png_bytes(img)
        return out

    def _data(self, tensors: list[Tensor], pixels: list[bool]) -> Tensor:
        """Stack sources into the model's data space (images of latent models encoded by the VAE)."""
        from lit_gans import inference

        x = torch.stack(tensors).to(self.torch_device)
        if self.vae is None or not any(pixels):
            return x
        mask = torch.tensor(pixels, device=x.device)
        shape = (self.info.channels, self.info.img_size, self.info.img_size)
        data = torch.empty(len(tensors), *shape, device=x.device)
        if mask.any():
            data[mask] = inference.encode(torch.stack([t for t, p in zip(tensors, pixels, strict=True) if p])
                                          .to(self.torch_device), self.vae)
        if (~mask).any():
            data[~mask] = torch.stack([t for t, p in zip(tensors, pixels, strict=True) if not p]).to(self.torch_device)
        return data

    def _translate(self, jobs: list[Job]) -> list[Tensor]:
        """RGB images ``(3, H, W)`` in [-1, 1] on the CPU, one per job, in order."""
        family = self.info.family
        if family == "stargan_v2":
            return self._stargan(jobs)
        if family == "cyclegan":
            order = [j for j in jobs if j.direction == "AtoB"] + [j for j in jobs if j.direction == "BtoA"]
            n_a = sum(j.direction == "AtoB" for j in jobs)
            x = self._data([j.x for j in order], [j.x_pixels for j in order])
            fake_b, fake_a = self.graph(x[:n_a], x[n_a:])
            return self._restore(jobs, order, torch.cat([fake_b, fake_a]))
        if family == "palette":
            return self._palette(jobs)
        x = self._data([j.x for j in jobs], [j.x_pixels for j in jobs])
        return list(self._pixels(self.graph(x)))

    def _stargan(self, jobs: list[Job]) -> list[Tensor]:
        latent = [j for j in jobs if j.ref is None]
        refs = [j for j in jobs if j.ref is not None]
        order = latent + refs
        x = self._data([j.x for j in order], [j.x_pixels for j in order])
        y = torch.tensor([j.domain for j in order], dtype=torch.long, device=x.device)
        dim = self.model.net_cfg["latent_dim"]
        # The style code of a seed, drawn exactly as `python -m lit_gans.translate seeds=...` draws it.
        z = torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(j.seed)) for j in latent]) \
            if latent else torch.zeros(0, dim)
        ref = self._data([j.ref for j in refs], [j.ref_pixels for j in refs]) if refs else \
            torch.zeros(0, *x.shape[1:], device=x.device)
        out = self.graph(x, y, z.to(x.device), ref)
        return self._restore(jobs, order, self._pixels(out))

    def _palette(self, jobs: list[Job]) -> list[Tensor]:
        from lit_gans import inference

        results: dict[int, Tensor] = {}
        steps_of = {id(j): j.steps for j in jobs}
        for steps in dict.fromkeys(steps_of.values()):  # one sampling run per number of steps
            group = [j for j in jobs if j.steps == steps]
            cond = self._data([j.x for j in group], [j.x_pixels for j in group])
            shape = (self.model.net_cfg["in_channels"], *cond.shape[-2:])
            noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(j.seed)) for j in group])
            out = self.model.translate(cond, steps=steps, sampler="ddim", eta=0.0, noise=noise)
            for j, img in zip(group, inference.to_pixels(out, self.vae), strict=True):
                results[id(j)] = img.cpu()
        return [results[id(j)] for j in jobs]

    def _pixels(self, out: Tensor) -> Tensor:
        """Graph outputs to RGB in [-1, 1] on the CPU (the graph already decodes latents when there is a VAE)."""
        return out.float().clamp(-1, 1).cpu()

    @staticmethod
    def _restore(jobs: list[Job], order: list[Job], outs: Tensor) -> list[Tensor]:
        position = {id(j): k for k, j in enumerate(order)}
        return [outs[position[id(j)]] for j in jobs]
