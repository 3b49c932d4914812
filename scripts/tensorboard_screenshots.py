"""Screenshots of TensorBoard's tabs for a run, as a user sees them: starts ``tensorboard --logdir RUN`` on
127.0.0.1, opens each tab in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is
downloaded) and saves ``<prefix><tab>.png`` into OUT (prefix ``tb_`` unless told).

    .venv/bin/python scripts/tensorboard_screenshots.py RUN_DIR OUT_DIR [--tabs scalars images hparams custom_scalars]
        [--prefix tensorboard_] [--hparams loss.w_sty ...]

The HParams table keeps only the columns that tell the runs apart (the hparams whose values differ between the
runs under RUN_DIR, read from their event files; ``--hparams`` names them instead), as a user would untick the
others: the composed config has dozens of keys and the swept one would be off screen.
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


def run_hparams(logdir: str) -> dict[str, dict[str, object]]:
    """{run folder: {hparam: value}} of the HParams sessions in the event files under ``logdir``."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs: dict[str, dict[str, object]] = {}
    for f in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        ea = EventAccumulator(f)
        ea.Reload()
        for tag in ea.Tags()["tensors"]:
            if tag != "_hparams_/session_start_info":
                continue
            info = plugin_data_pb2.HParamsPluginData.FromString(ea.SummaryMetadata(tag).plugin_data.content)
            params = runs.setdefault(os.path.dirname(f), {})
            for k, v in info.session_start_info.hparams.items():
                params[k] = getattr(v, v.WhichOneof("kind"))
    return runs


def differing_hparams(logdir: str) -> list[str]:
    """The hparams whose values are not the same in every run under ``logdir``, folders (``*_dir``) aside: each
    run has its own."""
    runs = list(run_hparams(logdir).values())
    keys = sorted({k for r in runs for k in r})
    return [k for k in keys if len({repr(r.get(k)) for r in runs}) > 1 and not k.endswith("dir")]


def keep_hparam_columns(page, hparams: set[str], keep: list[str]) -> None:
    """Unticks every hparam (of ``hparams``) in the HParams tab's left pane that is not in ``keep``; metrics and
    the status filter stay as they are."""
    boxes = page.locator("tf-hparams-query-pane paper-checkbox, tf-hparams-query-pane mat-checkbox")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        name = box.inner_text().strip()
        checked = box.get_attribute("checked") is not None or box.get_attribute("aria-checked") == "true"
        if name in hparams and checked != (name in keep):
            box.click()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--tabs", nargs="+", default=["scalars", "images", "hparams", "custom_scalars"])
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--prefix", default="tb_", help="file name prefix (default tb_)")
    parser.add_argument("--hparams", nargs="*", default=None,
                        help="hparam columns to keep in the HParams table (default: those that differ between runs)")
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
                if tab == "hparams":
                    keep = args.hparams if args.hparams is not None else differing_hparams(args.run)
                    names = {k for r in run_hparams(args.run).values() for k in r}
                    keep_hparam_columns(page, names, keep)
                    time.sleep(2)
                path = out / f"{args.prefix}{tab}.png"
                page.screenshot(path=str(path))
                print(path)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
