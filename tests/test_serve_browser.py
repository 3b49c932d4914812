"""The web page at / in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by Playwright;
no browser is downloaded) uploads an image, picks a domain and a seed, clicks, and the translation appears -
the same PNG the API returns; then a reference-guided translation, then a bad upload's message.

``make test`` installs chromium when it can (root, apt-get); elsewhere this test is skipped, saying why.
``LIT_GANS_SCREENSHOT=FILE`` also saves the final screenshot there."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest
from test_serve import serve_ckpt, server  # noqa: F401 - the session's server, shared with test_serve.py

from imagefiles import rgb

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install "
                                "chromium (make test does it as root) to run the browser test")


def result_bytes(page) -> bytes:
    """The bytes of the result image as the page holds them (its blob: URL)."""
    b64 = page.evaluate("""async () => {
        const r = await fetch(document.getElementById('result').src);
        const bytes = new Uint8Array(await r.arrayBuffer());
        let s = ''; for (const b of bytes) s += String.fromCharCode(b);
        return btoa(s);
    }""")
    return base64.b64decode(b64)


def drive(url: str, workdir: Path, screenshot: Path | None = None, images: tuple | None = None) -> dict:
    """Use the page as a person would; returns what it showed. ``images``: (source, reference) PIL images
    (default: random ones). Shared with the command that makes the docs' screenshot (docs/serve.md)."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    src, ref, bad = workdir / "photo.png", workdir / "reference.png", workdir / "notes.txt"
    source, reference = images or (rgb((48, 40), seed=11), rgb((32, 32), seed=12))
    source.save(src)
    reference.save(ref)
    bad.write_text("not an image\n")
    shown: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            user_data_dir=str(workdir / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 960, "height": 640})
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            page.wait_for_function("document.getElementById('domain').options.length > 0", timeout=30_000)
            shown["model_line"] = page.inner_text("#model")
            # Latent-guided: domain + seed.
            page.set_input_files("#image", str(src))
            page.select_option("#domain", "triangle")
            page.fill("#seed", "5")
            page.click("#translate")
            page.wait_for_function("document.getElementById('result').naturalWidth > 0", timeout=30_000)
            shown["latent"] = result_bytes(page)
            shown["latent_caption"] = page.inner_text("#result-caption")
            shown["status"] = page.inner_text("#status")
            # Reference-guided.
            first_src = page.get_attribute("#result", "src")
            page.check("#mode-reference")
            page.set_input_files("#reference", str(ref))
            page.click("#translate")
            page.wait_for_function(f"document.getElementById('result').src !== {first_src!r} && "
                                   "document.getElementById('result').naturalWidth > 0", timeout=30_000)
            shown["reference"] = result_bytes(page)
            shown["reference_caption"] = page.inner_text("#result-caption")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            # A file that is not an image: the server's one line appears on the page.
            page.set_input_files("#image", str(bad))
            page.click("#translate")
            page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
            shown["error"] = page.inner_text("#error")
        finally:
            browser.close()
    return shown


def test_upload_click_and_see_the_translation(server, tmp_path):  # noqa: F811 - the imported fixture
    out = os.environ.get("LIT_GANS_SCREENSHOT")
    shot = Path(out) if out else tmp_path / "page.png"
    shown = drive(server.url, tmp_path, shot)
    assert "StarGANv2" in shown["model_line"] and "circle, square, triangle" in shown["model_line"]
    # What the page shows is what the API returns for the same request.
    photo = (tmp_path / "photo.png").read_bytes()
    api = httpx.post(f"{server.url}/translate", data={"domain": "triangle", "seed": "5"},
                     files={"image": ("photo.png", photo, "image/png")}, timeout=60)
    assert shown["latent"] == api.content and shown["latent"].startswith(b"\x89PNG")
    assert shown["latent_caption"] == "translation (triangle, seed 5)" and shown["status"].startswith("done in")
    ref = httpx.post(f"{server.url}/translate", data={"domain": "triangle"},
                     files={"image": ("photo.png", photo, "image/png"),
                            "reference": ("reference.png", (tmp_path / "reference.png").read_bytes(), "image/png")},
                     timeout=60)
    assert shown["reference"] == ref.content != shown["latent"]
    assert shown["reference_caption"] == "translation (triangle, reference)"
    assert "field image is not an image" in shown["error"]
    assert shot.stat().st_size > 10_000  # a real screenshot


def docs_screenshot(url: str, out: str, workdir: str = "/tmp/lit_gans_screenshot") -> dict:
    """docs/images/serve_page.png: the page with a circle of the built-in shapes data translated to a triangle
    (a server of the quickstart checkpoint at ``url``), as docs/serve.md says."""
    from PIL import Image

    from lit_gans.data.synthetic import sample_scenes

    images, _ = sample_scenes(3, 1, 128, seed=3)  # one circle, one square, one triangle
    pil = [Image.fromarray(((im.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()) for im in images]  # [-1, 1]
    Path(workdir).mkdir(parents=True, exist_ok=True)
    return drive(url, Path(workdir), Path(out), images=(pil[0], pil[2]))
