"""Screenshots of TensorBoard's tabs for a run, as a user sees them: starts ``tensorboard --logdir RUN`` on
127.0.0.1, opens each tab in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is
downloaded) and saves ``tb_<tab>.png`` into OUT.

    .venv/bin/python scripts/tensorboard_screenshots.py RUN_DIR OUT_DIR [--tabs scalars images hparams custom_scalars]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# What each tab shows once it has loaded (a CSS selector), so the screenshot is not of a spinner.
READY = {"scalars": "tf-scalar-card, .scalar-card, canvas, svg", "images": "img", "hparams": "table, vaadin-grid",
         "custom_scalars": "canvas, svg"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--tabs", nargs="+", default=["scalars", "images", "hparams", "custom_scalars"])
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        print(f"error: {CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    server = subprocess.Popen([tensorboard, "--logdir", args.run, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            for tab in args.tabs:
                page.goto(f"{url}?darkMode=false#{tab}")
                try:
                    page.wait_for_selector(READY.get(tab, "body"), timeout=20_000)
                except Exception:  # noqa: BLE001 - still take the picture: it shows what TensorBoard shows
                    pass
                time.sleep(4)  # charts draw after their data arrives
                path = out / f"tb_{tab}.png"
                page.screenshot(path=str(path))
                print(path)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
