"""python -m lit_gans.serve: a real LitServe server on 127.0.0.1 with a StarGAN v2 checkpoint trained here.
Translations equal the model's own (latent- and reference-guided), bad requests get one-line 4xx answers and
never disturb the good requests batched with them, the server stays up, and a short load has no errors. The
other families run through the same inference class in-process."""

from __future__ import annotations

import io
import json
import threading

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from imagefiles import max_level_difference, rgb
from lit_gans import inference
from lit_gans.serve import app as serve_app
from lit_gans.serve.loadtest import ServerProcess, check_local, run_load, table

SIZE = 16  # TINY_STARGAN's img_size
DOMAINS = ["circle", "square", "triangle"]


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def as_uint8(x: torch.Tensor) -> np.ndarray:
    """A model output in [-1, 1] as the server writes it into a PNG."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


# The browser test imports these fixtures; pytest then makes a second session fixture of each, so the
# server is kept here and started once per session whichever module asks first.
_SHARED: dict[str, object] = {}


@pytest.fixture(scope="session")
def serve_ckpt(trained):
    return trained("stargan")


@pytest.fixture(scope="session")
def server(serve_ckpt, tmp_path_factory):
    """One server for the session (also the browser test's): small limits so that the size checks are cheap
    to reach, a batch window long enough that concurrent requests share batches."""
    if "server" in _SHARED:
        yield _SHARED["server"]
        return
    log = tmp_path_factory.mktemp("serve_log") / "server.log"
    with ServerProcess(str(serve_ckpt), "max_batch_size=4", "batch_timeout=0.05", "max_upload_mb=1",
                       "max_pixels=65536", "threads=1", log=str(log)) as proc:
        _SHARED["server"] = proc
        yield proc


def post(url: str, data: dict | None = None, files: dict | None = None, **kw) -> httpx.Response:
    return httpx.post(f"{url}/translate", data=data or {}, files=files, timeout=60, **kw)


def test_health_info_and_page(server):
    assert httpx.get(f"{server.url}/health").status_code == 200
    info = httpx.get(f"{server.url}/info").json()["model"]
    assert info["name"] == "StarGANv2" and info["domains"] == DOMAINS and info["image_size"] == SIZE
    assert set(info["fields"]) == {"image", "domain", "seed", "reference"} and info["latent"] is False
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="translate"' in page.text and 'id="domain"' in page.text  # ours, not LitServe's "litserve running"


def test_translations_equal_the_models(server, serve_ckpt, tmp_path):
    model, _ = inference.load_model(serve_ckpt)
    src, ref = rgb((40, 30), seed=1), rgb((24, 24), seed=2)
    src.save(tmp_path / "src.png")
    ref.save(tmp_path / "ref.png")
    x, x_ref = inference.load_images([tmp_path / "src.png", tmp_path / "ref.png"], SIZE)  # translate's reading
    # Latent-guided: the style code of seed 7, drawn as `translate seeds=7` draws it.
    r = post(server.url, {"domain": "square", "seed": "7"}, {"image": ("src.png", png(src), "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content)))
    z = torch.randn(model.net_cfg["latent_dim"], generator=torch.Generator().manual_seed(7))
    want = as_uint8(model.translate(x[None], 1, z=z[None])[0])
    assert got.shape == (SIZE, SIZE, 3) and np.abs(got.astype(int) - want).max() <= 1
    again = post(server.url, {"domain": "1", "seed": "7"}, {"image": ("src.png", png(src), "image/png")})
    assert again.content == r.content  # a domain index works like its name; a seed is one style
    other = post(server.url, {"domain": "square", "seed": "8"}, {"image": ("src.png", png(src), "image/png")})
    assert other.status_code == 200 and other.content != r.content
    # Reference-guided.
    r = post(server.url, {"domain": "triangle"}, {"image": ("src.png", png(src), "image/png"),
                                                  "reference": ("ref.png", png(ref), "image/png")})
    assert r.status_code == 200
    want = as_uint8(model.translate(x[None], 2, x_ref=x_ref[None])[0])
    assert np.abs(np.asarray(Image.open(io.BytesIO(r.content))).astype(int) - want).max() <= 1


def _npy(shape) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, np.float32))
    return buf.getvalue()


GOOD = png(rgb((20, 20), seed=3))


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels and holds none (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


BAD_REQUESTS = {
    "not_an_image": (400, "field image is not an image", {"domain": "square"}, {"image": ("a.png", b"hello, world")}),
    "truncated": (400, "field image is a truncated or damaged image", {"domain": "square"},
                  {"image": ("a.png", png(rgb((64, 64), seed=4))[:300])}),
    "too_many_pixels": (413, "field image is 300x300 pixels, over the limit of 65536 pixels", {"domain": "square"},
                        {"image": ("a.png", png(rgb((300, 300), seed=5)))}),
    "decompression_bomb": (413, "field image has far more pixels than the limit", {"domain": "square"},
                           {"image": ("a.png", png_header(20000, 20000))}),
    "too_large_upload": (413, "over the limit of 1 MiB", {"domain": "square"},
                         {"image": ("a.png", b"\x89PNG" + bytes(1_200_000))}),
    "unknown_domain": (400, "domain 'horse' is not a domain of this model: send one of circle, square, triangle",
                       {"domain": "horse", "seed": "0"}, {"image": ("a.png", GOOD)}),
    "missing_image": (400, "missing field image", {"domain": "square"}, None),
    "missing_domain": (400, "missing field domain", {"seed": "1"}, {"image": ("a.png", GOOD)}),
    "reference_wrong_shape": (400, "field reference has shape (3, 8, 8), the model takes (3, 16, 16)",
                              {"domain": "square"}, {"image": ("a.png", GOOD), "reference": ("r.npy", _npy((3, 8, 8)))}),
    "seed_not_a_number": (400, "field seed='abc' is not an integer", {"domain": "square", "seed": "abc"},
                          {"image": ("a.png", GOOD)}),
    "unknown_field": (400, "unknown field 'domian'", {"domian": "square"}, {"image": ("a.png", GOOD)}),
    "seed_and_reference": (400, "send either seed (latent-guided) or reference", {"domain": "square", "seed": "1"},
                           {"image": ("a.png", GOOD), "reference": ("r.png", GOOD)}),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_a_4xx_with_one_line(case, server):
    status, message, data, files = BAD_REQUESTS[case]
    r = post(server.url, data, files)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and message in detail, detail
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize("case", ["json_body", "no_body", "no_boundary", "garbage_multipart"])
def test_requests_that_are_not_forms(case, server):
    url = f"{server.url}/translate"
    if case == "json_body":
        r = httpx.post(url, json={"image": "x"})
    elif case == "no_body":
        r = httpx.post(url)
    elif case == "no_boundary":
        r = httpx.post(url, content=b"garbage", headers={"content-type": "multipart/form-data"})
    else:
        r = httpx.post(url, content=b"garbage", headers={"content-type": "multipart/form-data; boundary=xyz"})
    expected = {"json_body": (415, "is not multipart/form-data"), "no_body": (415, "is not multipart/form-data"),
                "no_boundary": (400, "the multipart form cannot be parsed (Missing boundary"),
                "garbage_multipart": (400, "the multipart form cannot be parsed")}[case]
    assert r.status_code == expected[0] and expected[1] in r.json()["detail"], r.text
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_bad_requests_do_not_disturb_the_good_ones_in_their_batch(server):
    """Sent together (a 50 ms batch window, batches of 4): each answer is the one its own request deserves."""
    barrier = threading.Barrier(8)
    results: dict[int, httpx.Response] = {}

    def send(k: int) -> None:
        data = {"domain": "square" if k % 2 == 0 else "horse", "seed": str(k)}
        barrier.wait()
        results[k] = post(server.url, data, {"image": ("a.png", GOOD, "image/png")})

    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for k, r in sorted(results.items()):
        if k % 2 == 0:
            assert r.status_code == 200 and r.content.startswith(b"\x89PNG"), (k, r.text)
        else:
            assert r.status_code == 400 and "horse" in r.json()["detail"], (k, r.text)
    assert len(results) == 8


def test_short_load_has_no_errors(server):
    report = run_load(server.url, clients=4, seconds=2, warmup=0.5, reference=True)
    assert report.requests >= 4 and report.errors == 0, report.first_errors
    assert report.p50_ms <= report.p99_ms


def test_load_test_only_targets_this_machine():
    from lit_gans.errors import ConfigError

    assert check_local("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert check_local("http://localhost:1234") == "http://localhost:1234"
    for url in ("http://10.0.0.1:8000", "http://example.com", "https://127.0.0.1:8000"):
        with pytest.raises(ConfigError, match="only targets a server on this machine"):
            check_local(url)


@pytest.mark.parametrize("args, expected", [
    (["ckpt=/nonexistent/last.ckpt"], "checkpoint /nonexistent/last.ckpt does not exist"),
    (["host=10.1.2.3"], "host=10.1.2.3: LitServe listens on one of 127.0.0.1, 0.0.0.0, ::"),
    (["max_batch_size=0"], "max_batch_size must be at least 1"),
    (["colour=red"], "Could not override 'colour'"),
])
def test_command_errors_are_one_line(args, expected, serve_ckpt, capsys):
    with pytest.raises(SystemExit) as exit_:
        serve_app.main([f"ckpt={serve_ckpt}", "port=18999", *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_port_in_use_is_one_line(server, serve_ckpt, capsys):
    with pytest.raises(SystemExit):
        serve_app.main([f"ckpt={serve_ckpt}", f"port={server.port}"])
    assert f"cannot listen on 127.0.0.1:{server.port}" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_every_process_of_the_server(serve_ckpt):
    """kill PID (SIGTERM to the server alone) ends its inference worker and helper processes too."""
    import signal
    import time

    proc = ServerProcess(str(serve_ckpt))
    try:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) is not None
        deadline = time.monotonic() + 10
        while proc.group_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not proc.group_alive(), "processes of the server outlived it"
    finally:
        proc.stop()


# ---------------------------------------------------------------------------------------------- other families
def _checkpoint(model, path):
    """A checkpoint as train.py writes one (the keys inference.load_model reads)."""
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return str(path)


@pytest.mark.parametrize("family", ["cyclegan", "cut", "pix2pix", "palette"])
def test_other_families_through_the_inference_worker(family, tmp_path):
    from starlette.datastructures import FormData, UploadFile
    from test_export import make

    from lit_gans.export import build_graph
    from lit_gans.serve.api import ServeOptions, TranslateAPI
    from lit_gans.serve.requests import Limits, Rejection

    model = make(family)
    ckpt = _checkpoint(model, tmp_path / "m.ckpt")
    vae = None
    info = serve_app.model_info(model, family, vae)
    api = TranslateAPI(ServeOptions(ckpt), info, Limits())
    api.setup("cpu")
    image = png(rgb((40, 30), seed=6))
    forms = {"cyclegan": [{"direction": "BtoA"}, {}], "palette": [{"seed": "3", "steps": "3"}, {"seed": "4", "steps": "2"}]}
    forms = forms.get(family, [{}, {}]) + [{"bogus": "1"}]
    items = [api.decode_request(FormData([("image", UploadFile(io.BytesIO(image), filename="a.png")), *f.items()]))
             for f in forms]
    assert isinstance(items[-1], Rejection) and items[-1].status == 400
    outs = api.predict(items)
    responses = [api.encode_response(o) for o in outs]
    assert [r.status_code for r in responses] == [200, 200, 400]
    assert json.loads(responses[-1].body)["detail"].startswith("unknown field 'bogus'")
    x = items[0].x[None]
    graph, _ = build_graph(model)
    with torch.no_grad():
        if family == "cyclegan":
            want = graph(torch.zeros(0, *x.shape[1:]), x)[1][0]
        elif family == "palette":
            noise = torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(3))[None]
            want = model.translate(x, steps=3, sampler="ddim", eta=0.0, noise=noise)[0]
        else:
            want = graph(x)[0]
    got = np.asarray(Image.open(io.BytesIO(outs[0])))
    assert np.abs(got.astype(int) - as_uint8(want)).max() <= 1
    # Without batching (max_batch_size=1) LitServe hands predict one request, not a list; served alone the image
    # equals the batched one to within one 8-bit level (another batch size can take another conv kernel).
    assert max_level_difference(api.predict(items[0]), outs[0]) <= 1 and api.predict(items[-1]) is items[-1]
    # What /info says about it (the server is built, not run).
    server = serve_app.build_server(serve_app.compose([f"ckpt={ckpt}"]))
    meta = server.model_metadata
    assert meta["family"] == family and meta["image_size"] == info.pixel_size and "image" in meta["fields"]
    assert ("direction" in meta["fields"]) == (family == "cyclegan")
    if family == "palette":
        assert meta["default_steps"] == 50 and meta["max_steps"] == 1000
    assert server.app.router.routes[0].path == "/"  # the page, before LitServe's own "/"


@pytest.mark.perf
def test_batching_raises_throughput(serve_ckpt, tmp_path):
    """Measured, not asserted in make test: 16 clients for 10 s against servers batching 1 and 8 requests."""
    from lit_gans.serve.loadtest import compare

    rows = compare(str(serve_ckpt), [1, 8], clients=16, seconds=10, warmup=2, reference=False,
                   server_args=["batch_timeout=0.01"])
    print("\n" + table(rows))
    assert all(r.errors == 0 for _, r in rows)
    assert rows[1][1].requests_per_s > rows[0][1].requests_per_s


@pytest.mark.slow
def test_latent_stargan_encodes_uploads_and_decodes_results(tmp_path):
    """A latent model: an uploaded image is encoded by the VAE, a .npy upload is taken as latents, the result is
    decoded to pixels; the same as encoding, translating and decoding by hand."""
    from starlette.datastructures import FormData, UploadFile
    from test_export import perturbed

    from lit_gans.latents.vae import decode_latents, encode_images
    from lit_gans.models import StarGANv2
    from lit_gans.serve.api import ServeOptions, TranslateAPI
    from lit_gans.serve.requests import Limits
    from test_image_grid import tiny_vae_dir

    vae_dir = tiny_vae_dir(tmp_path / "vae")
    torch.manual_seed(0)
    model = perturbed(StarGANv2(img_size=8, in_channels=4, dim=8, max_conv_dim=16, mapping_dim=32, style_dim=8,
                                latent_dim=4, num_domains=2, latent_scale=0.18215, vae={"path": vae_dir}))
    model.data_spec = {"domain_names": ["cat", "dog"]}
    ckpt = _checkpoint(model, tmp_path / "latent.ckpt")
    vae = inference.model_vae(model)
    info = serve_app.model_info(model, "stargan_v2", vae)
    assert (info.pixel_size, info.img_size, info.latent) == (64, 8, True)
    api = TranslateAPI(ServeOptions(ckpt), info, Limits())
    api.setup("cpu")
    image = png(rgb((64, 64), seed=9))
    ref = torch.randn(4, 8, 8)
    buf = io.BytesIO()
    np.save(buf, ref.numpy())
    forms = [FormData([("image", UploadFile(io.BytesIO(image), filename="a.png")), ("domain", "dog"), ("seed", "2")]),
             FormData([("image", UploadFile(io.BytesIO(image), filename="a.png")), ("domain", "cat"),
                       ("reference", UploadFile(io.BytesIO(buf.getvalue()), filename="r.npy"))])]
    items = [api.decode_request(f) for f in forms]
    outs = api.predict(items)
    x = encode_images(vae, items[0].x[None])
    z = torch.randn(4, generator=torch.Generator().manual_seed(2))[None]
    wants = [decode_latents(vae, model.translate(x, 1, z=z))[0], decode_latents(vae, model.translate(x, 0, x_ref=ref[None]))[0]]
    for out, want in zip(outs, wants, strict=True):
        got = np.asarray(Image.open(io.BytesIO(out)))
        assert got.shape == (64, 64, 3) and np.abs(got.astype(int) - as_uint8(want)).max() <= 1
