"""``python -m lit_gans.serve ckpt=PATH [port=8000]``: a checkpoint behind an HTTP server.

Built on LitServe (Lightning's model server, itself FastAPI + uvicorn): it runs the model in a worker process
on the GPU when there is one, batches concurrent requests (``max_batch_size``, ``batch_timeout``) and
answers ``GET /health`` (200 once the worker has loaded the model) and ``GET /info``. This module adds the web
page at ``/``, the checks that run before a request body is read (content type, size), and the model's
description under ``/info``; :mod:`lit_gans.serve.api` is the inference side.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lit_gans.errors import ConfigError
from lit_gans.serve.requests import FIELDS, Limits, ModelInfo

log = logging.getLogger("lit_gans.serve")
CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf")
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe binds to

FIELD_DOCS = {
    "image": "the source: an image file (resized to the model's size) or a .npy array of the model's shape",
    "domain": "StarGAN v2: target domain (name or index)",
    "seed": "StarGAN v2: style code of this seed (latent-guided; default 0); Palette: starting noise",
    "reference": "StarGAN v2: reference image whose style is used (instead of seed)",
    "direction": "CycleGAN: AtoB (default) or BtoA",
    "steps": "Palette: DDIM steps (default: the model's)",
}


def page() -> str:
    """The web page served at ``/`` (``lit_gans/serve/static/index.html``)."""
    return resources.files("lit_gans.serve").joinpath("static/index.html").read_text(encoding="utf-8")


class UploadGuard:
    """ASGI middleware in front of ``POST /translate``: a body that is not multipart form data (415), larger than
    ``max_bytes`` (413, from its Content-Length before anything is read, or while reading a chunked one), not
    parseable as a form, or with a field given twice (400: several ``image`` fields would otherwise be translated
    as the first one alone) is answered here with one line. The last check parses the form once more than
    needed, because LitServe answers a form its parser rejects with a 500 (it re-raises FastAPI's
    ``HTTPException`` but not Starlette's, which the form parser raises)."""

    def __init__(self, app: Any, max_bytes: int, path: str = "/translate"):
        self.app, self.max_bytes, self.path = app, int(max_bytes), path

    def _too_large(self, size: float) -> tuple[int, str]:
        return 413, (f"the request is {size / 2**20:.1f} MiB, over the limit of {self.max_bytes / 2**20:g} MiB: "
                     "send a smaller image (the server's max_upload_mb)")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        headers = {k.lower(): v for k, v in scope["headers"]}
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        length = headers.get(b"content-length", b"")
        problem = None
        # A url-encoded form cannot carry the image, but is parsed so that its answer names what is missing.
        if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            problem = (415, f"content type {ctype or 'none'!r} is not multipart/form-data: send the image as a form "
                            "field, e.g. curl -F image=@photo.png -F domain=NAME -F seed=0 URL/translate")
        elif length.isdigit() and int(length) > self.max_bytes:
            problem = self._too_large(int(length))
        body = bytearray()
        while problem is None:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                problem = self._too_large(len(body))
            if not message.get("more_body", False):
                break
        if problem is None:
            problem = await self._check_form(scope, bytes(body))
        if problem is not None:
            await JSONResponse({"detail": problem[1]}, status_code=problem[0])(scope, receive, send)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _check_form(scope: dict, body: bytes) -> tuple[int, str] | None:
        from starlette.requests import Request

        async def once() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request({k: v for k, v in scope.items() if k != "app"}, once).form()
        except Exception as err:  # noqa: BLE001 - python-multipart's and Starlette's errors alike
            why = getattr(err, "message", None) or str(err) or type(err).__name__
            return 400, (f"the multipart form cannot be parsed ({why.splitlines()[0][:80]}): send multipart/form-data "
                         "with the field image, e.g. curl -F image=@photo.png URL/translate")
        try:
            repeated = {name: len(form.getlist(name)) for name in form if len(form.getlist(name)) > 1}
        finally:
            await form.close()
        if repeated:
            name, n = sorted(repeated.items())[0]
            return 400, (f"the form has {n} {name} fields: send each field once (one image per request; several "
                         "images are several requests, which the server batches)")
        return None


def model_info(model: Any, family: str, vae: Any | None) -> ModelInfo:
    from lit_gans import inference

    n = model.net_cfg
    domains = list((model.data_spec or {}).get("domain_names") or [str(i) for i in range(n.get("num_domains", 0))])
    return ModelInfo(family=family, domains=domains if family == "stargan_v2" else [], channels=int(n["in_channels"]),
                     img_size=int(n["img_size"]), pixel_size=inference.pixel_size(model, vae),
                     latent=inference.is_latent_model(model),
                     max_steps=model.schedule.timesteps if family == "palette" else None)


def info_json(cfg: DictConfig, model: Any, info: ModelInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": type(model).__name__, "family": info.family, "checkpoint": str(Path(str(cfg.ckpt)).name),
        "image_size": info.pixel_size, "channels": info.channels, "latent": info.latent,
        "fields": {k: FIELD_DOCS[k] for k in FIELDS[info.family]}, "returns": "image/png (RGB)",
        "limits": {"max_upload_mb": cfg.max_upload_mb, "max_pixels": cfg.max_pixels},
        "batching": {"max_batch_size": cfg.max_batch_size, "batch_timeout_s": cfg.batch_timeout},
    }
    if info.latent:
        out["latent_size"] = info.img_size
    if info.family == "stargan_v2":
        out["domains"] = info.domains
        out["latent_dim"] = model.net_cfg["latent_dim"]
    elif info.family == "cyclegan":
        out["directions"] = ["AtoB", "BtoA"]
    elif info.family == "palette":
        out["default_steps"] = model.sampling_cfg["steps"] or info.max_steps
        out["max_steps"] = min(int(cfg.max_steps), info.max_steps)
    return out


def check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}): pass another port=N") from None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_settings(cfg: DictConfig) -> None:
    if cfg.get("ckpt") in (None, "", "???"):
        raise ConfigError("ckpt=... is required: python -m lit_gans.serve ckpt=PATH [port=8000]")
    if str(cfg.host) not in HOSTS:
        raise ConfigError(f"host={cfg.host}: LitServe listens on one of {', '.join(HOSTS)}")
    if not _integer(cfg.port) or not 1024 <= cfg.port <= 65535:
        raise ConfigError(f"port={cfg.port}: pass a port number from 1024 to 65535")
    for key, low in (("max_batch_size", 1), ("workers", 1), ("max_pixels", 1), ("max_steps", 1), ("devices", 1)):
        if not _integer(cfg[key]) or cfg[key] < low:
            raise ConfigError(f"{key}={cfg[key]}: {key} must be at least {low} (an integer)")
    if cfg.threads is not None and (not _integer(cfg.threads) or cfg.threads < 1):
        raise ConfigError(f"threads={cfg.threads}: must be an integer >= 1 (threads=null: torch's default)")
    if not _number(cfg.batch_timeout) or cfg.batch_timeout < 0:
        raise ConfigError(f"batch_timeout={cfg.batch_timeout}: seconds a batch waits to fill up, >= 0")
    for key in ("timeout", "idle_timeout", "max_upload_mb"):
        if not _number(cfg[key]) or cfg[key] <= 0:
            what = "megabytes" if key == "max_upload_mb" else "seconds"
            raise ConfigError(f"{key}={cfg[key]}: must be a number of {what} > 0")
    accelerator = str(cfg.accelerator)
    if accelerator not in ("auto", "cpu", "cuda", "gpu", "mps"):
        raise ConfigError(f"accelerator={accelerator}: pass auto (the GPU when there is one), cpu or cuda")
    if accelerator in ("cuda", "gpu"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"accelerator={accelerator}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() "
                              "is false): pass accelerator=cpu, or accelerator=auto to use a GPU where there is one")


def build_server(cfg: DictConfig) -> Any:
    """The LitServer of ``cfg`` (conf/serve.yaml), not yet running."""
    import litserve as ls
    from fastapi.responses import HTMLResponse

    from lit_gans import inference
    from lit_gans.export import build_graph, family_of
    from lit_gans.serve.api import ServeOptions, TranslateAPI

    check_settings(cfg)
    # Load once here: a bad checkpoint, a missing VAE or an unsupported model is one line before any worker
    # starts, and /info describes the model without asking the worker.
    model, _ = inference.load_model(cfg.ckpt, "cpu")
    family = family_of(model)
    vae = inference.model_vae(model, cfg.vae, cfg.vae_subfolder, "cpu", key="vae=PATH")
    build_graph(model, vae=None if family == "palette" else vae, pix2pix_norm=cfg.pix2pix_norm)
    info = model_info(model, family, vae)
    meta = info_json(cfg, model, info)
    del model, vae

    limits = Limits(max_pixels=int(cfg.max_pixels), max_steps=int(cfg.max_steps))
    options = ServeOptions(ckpt=str(cfg.ckpt), vae=cfg.vae, vae_subfolder=cfg.vae_subfolder,
                           pix2pix_norm=cfg.pix2pix_norm, threads=cfg.threads)
    api = TranslateAPI(options, info, limits, int(cfg.max_batch_size), float(cfg.batch_timeout))
    server = ls.LitServer(api, accelerator=cfg.accelerator, devices=cfg.devices, workers_per_device=int(cfg.workers),
                          timeout=float(cfg.timeout),
                          model_metadata=meta, middlewares=[(UploadGuard, {"max_bytes": int(cfg.max_upload_mb * 2**20)})])
    html = page()

    async def index() -> HTMLResponse:
        return HTMLResponse(html)

    server.app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    # LitServe registers its own "/" ("litserve running") when it is built; Starlette answers with the first
    # route that matches, so the page goes first.
    routes = server.app.router.routes
    routes.insert(0, routes.pop())
    return server


def compose(argv: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return hydra_compose(config_name="serve", overrides=argv)
    except Exception as err:  # noqa: BLE001 - Hydra's override errors: show their first line, not a traceback
        if type(err).__module__.startswith(("hydra", "omegaconf")):
            device = next((a for a in argv if a.split("=", 1)[0] == "device"), None)
            if device:
                raise ConfigError(f"{device}: the server picks its device with accelerator=auto|cpu|cuda (and "
                                  "devices=N GPUs)") from None
            raise ConfigError(str(err).splitlines()[0] + " (see python -m lit_gans.serve --help)") from None
        raise
    finally:
        GlobalHydra.instance().clear()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    from lit_gans.cli import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\nKeys (conf/serve.yaml):\n" + Path(CONF, "serve.yaml").read_text())
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with user_errors():
        cfg = compose(argv)
        check_settings(cfg)
        check_port(str(cfg.host), int(cfg.port))
        server = build_server(cfg)
    # SIGTERM (kill, systemd, docker stop) takes LitServe's Ctrl+C path, which stops the inference worker and
    # LitServe's manager process; the default handler would end this process alone and leave them running.
    signal.signal(signal.SIGTERM, _interrupt)
    # ... in this process only: the HTTP server process LitServe forks is stopped by LitServe itself.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    shown = "127.0.0.1" if cfg.host == "0.0.0.0" else cfg.host
    log.info("serving %s at http://%s:%s/ (web page; POST /translate, GET /info, GET /health)", cfg.ckpt, shown, cfg.port)
    log.info("info: %s", json.dumps(server.model_metadata))
    server.run(host=str(cfg.host), port=int(cfg.port), generate_client_file=False, api_server_worker_type="process",
               num_api_servers=1, log_level=str(cfg.log_level), **uvicorn_options(cfg))


def uvicorn_options(cfg: DictConfig) -> dict[str, Any]:
    """What ``LitServer.run`` passes on to ``uvicorn.Config``: the protocol with JSON 400s and idle-connection
    closing (:mod:`lit_gans.serve.protocol`), and the idle limit (``idle_timeout`` seconds)."""
    from lit_gans.serve.protocol import JsonErrorsHttpProtocol

    return {"http": JsonErrorsHttpProtocol, "timeout_keep_alive": float(cfg.idle_timeout)}
