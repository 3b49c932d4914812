"""Load test of a running server, and a batching comparison that starts the servers itself. Only addresses of
this machine (127.0.0.0/8, localhost, ::1) are accepted; every run is bounded in time.

    python -m lit_gans.serve.loadtest url=http://127.0.0.1:8000 clients=16 seconds=20
    python -m lit_gans.serve.loadtest compare ckpt=PATH clients=16 seconds=20 batch_sizes=1,8

``clients`` threads each send ``POST /translate`` requests one after another (keep-alive connections) for
``seconds`` after a ``warmup``; StarGAN v2 requests alternate latent-guided (a new seed each time) and, with
``reference=true``, reference-guided ones. Every answer must be a 200 with a PNG that decodes; anything else is
an error. Printed: requests/s, latency p50/p90/p99 and the error count (``json=FILE`` also writes them).
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from lit_gans.errors import ConfigError


@dataclass
class Report:
    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    first_errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.requests} requests in {self.seconds:.1f} s from {self.clients} clients: "
                f"{self.requests_per_s:.1f} requests/s, latency p50 {self.p50_ms:.0f} ms, p90 {self.p90_ms:.0f} ms, "
                f"p99 {self.p99_ms:.0f} ms, {self.errors} errors")


def check_local(url: str) -> str:
    """``url`` without a trailing slash, if it names this machine; a :class:`ConfigError` otherwise."""
    host = urlparse(url).hostname or ""
    local = host == "localhost"
    if not local:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
    if not local or urlparse(url).scheme != "http":
        raise ConfigError(f"url={url}: the load test only targets a server on this machine (http://127.0.0.1:PORT)")
    return url.rstrip("/")


def sample_png(size: int = 64, seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def is_png(data: bytes) -> bool:
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:  # noqa: BLE001 - any decoder failure means the answer is not a valid PNG
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_load(url: str, clients: int = 16, seconds: float = 20.0, warmup: float = 2.0, image: bytes | None = None,
             reference: bool = False, timeout: float = 60.0) -> Report:
    """Drive ``url`` with ``clients`` threads for ``warmup + seconds``; the report covers the last ``seconds``."""
    import httpx

    base = check_local(url)
    if clients < 1 or not 0 < seconds <= 600 or warmup < 0:
        raise ConfigError("clients must be >= 1 and seconds in (0, 600]")
    info = httpx.get(f"{base}/info", timeout=10).json()["model"]
    image = image or sample_png(max(16, int(info.get("image_size", 64))))
    domains = info.get("domains") or []
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    def client(k: int) -> None:
        n = 0
        with httpx.Client(timeout=timeout) as http:
            while (now := time.monotonic()) < stop_at:
                data: dict[str, str] = {}
                files = {"image": ("image.png", image, "image/png")}
                if info["family"] == "stargan_v2":
                    data["domain"] = domains[n % len(domains)]
                    if reference and n % 2:
                        files["reference"] = ("reference.png", image, "image/png")
                    else:
                        data["seed"] = str(k * 100_000 + n)
                elif info["family"] == "palette":
                    data["seed"] = str(n)
                t0 = time.monotonic()
                try:
                    r = http.post(f"{base}/translate", data=data, files=files)
                    problem = None if r.status_code == 200 and is_png(r.content) else \
                        f"{r.status_code}: {r.text[:100] if r.status_code != 200 else 'not a valid PNG'}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                t1 = time.monotonic()
                n += 1
                if now >= measure_from:
                    with lock:
                        latencies.append(t1 - t0)
                        if problem:
                            errors.append(problem)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup + seconds + timeout + 10)
    elapsed = max(1e-9, min(time.monotonic(), stop_at + timeout) - measure_from)
    ms = sorted(1000 * x for x in latencies)
    ok = len(ms) - len(errors)
    return Report(clients, seconds, len(ms), len(errors), ok / max(elapsed, seconds), percentile(ms, 50),
                  percentile(ms, 90), percentile(ms, 99), errors[:5])


# ---------------------------------------------------------------------------------------------- compare
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m lit_gans.serve`` in its own process group on 127.0.0.1; stopped (the whole group: the
    server starts a worker process) on exit."""

    def __init__(self, ckpt: str, *overrides: str, startup_s: float = 180.0, log: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "lit_gans.serve", f"ckpt={ckpt}", f"port={self.port}",
                                      "host=127.0.0.1", *overrides], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait_ready(startup_s)

    def wait_ready(self, startup_s: float) -> None:
        import httpx

        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode} before it was ready")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the server did not answer /health within {startup_s:.0f} s")

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server (it stops its worker and helper processes itself), then SIGKILL to whatever
        of its process group is left after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        if self.log is not subprocess.DEVNULL:
            self.log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def compare(ckpt: str, batch_sizes: list[int], clients: int, seconds: float, warmup: float, reference: bool,
            server_args: list[str]) -> list[tuple[int, Report]]:
    """One server per ``max_batch_size``, each measured under the same load."""
    out = []
    for b in batch_sizes:
        with ServerProcess(ckpt, f"max_batch_size={b}", *server_args) as server:
            out.append((b, run_load(server.url, clients, seconds, warmup, reference=reference)))
    return out


def table(rows: list[tuple[int, Report]]) -> str:
    lines = ["| max_batch_size | clients | seconds | requests | requests/s | p50 ms | p90 ms | p99 ms | errors |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for b, r in rows:
        lines.append(f"| {b} | {r.clients} | {r.seconds:g} | {r.requests} | {r.requests_per_s:.1f} | {r.p50_ms:.0f} | "
                     f"{r.p90_ms:.0f} | {r.p99_ms:.0f} | {r.errors} |")
    return "\n".join(lines)


def _options(argv: list[str]) -> dict[str, str]:
    out = {}
    for a in argv:
        if "=" not in a:
            raise ConfigError(f"{a!r} is not key=value (see python -m lit_gans.serve.loadtest --help)")
        k, v = a.split("=", 1)
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> None:
    from lit_gans.cli import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return
    with user_errors():
        mode = "compare" if argv[0] == "compare" else "run"
        opts = _options(argv[1:] if mode == "compare" else argv)
        known = {"url", "ckpt", "clients", "seconds", "warmup", "reference", "batch_sizes", "json", "server"}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]}: keys are {', '.join(sorted(known))}")
        clients, seconds = int(opts.get("clients", 16)), float(opts.get("seconds", 20))
        warmup, reference = float(opts.get("warmup", 2)), opts.get("reference", "false").lower() == "true"
        if mode == "run":
            report = run_load(opts.get("url", "http://127.0.0.1:8000"), clients, seconds, warmup, reference=reference)
            print(report.line())
            result: Any = asdict(report)
        else:
            if "ckpt" not in opts:
                raise ConfigError("compare needs ckpt=PATH (the servers are started on 127.0.0.1 for you)")
            sizes = [int(b) for b in opts.get("batch_sizes", "1,8").split(",")]
            rows = compare(opts["ckpt"], sizes, clients, seconds, warmup, reference,
                           opts.get("server", "").split() if opts.get("server") else [])
            print(table(rows))
            result = [{"max_batch_size": b, **asdict(r)} for b, r in rows]
        if "json" in opts:
            with open(opts["json"], "w") as f:
                json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
