"""A checkpoint is data, not code; bad input is one line.

Every file lit_gans reads with ``torch.load`` (checkpoints, latent files, judge caches, weight files) is read with
``weights_only=True``: a file carrying a pickled object whose unpickling would create a file is refused by every
entry point in one line, and the file never appears. The commands' remaining bad values are one line with exit
status 2 and leave no run folder behind; the server answers unparseable HTTP with JSON and drops idle connections.
"""

from __future__ import annotations

import logging
import os
import runpy
import shutil
import socket
import threading
import time

import pytest
import torch

from conftest import QUIET, ROOT, TINY_STARGAN, compose_config, run_cli

TINY = [*TINY_STARGAN, "data.per_domain=4", "data.val_per_domain=2", *QUIET]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the answer of a machine without a GPU")


class Payload:
    """A pickled object that creates ``path`` when it is unpickled (``__reduce__`` -> ``open(path, "w")``)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny StarGAN v2 run of one epoch of two batches (TensorBoard logs, last.ckpt), trained once for the module."""
    from lit_gans.train import train

    out = tmp_path_factory.mktemp("trust_run")
    train(compose_config([*TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "callbacks.image_grid=null",
                          "callbacks.model_checkpoint=null"], str(out)))
    return out


@pytest.fixture
def mark(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a pickled payload was run"


def evil_copy(src, dst, mark, **extra):
    """``src`` (a torch.save file) with a payload added under ``extra``, written to ``dst``."""
    data = torch.load(src, map_location="cpu", weights_only=True)
    data["extra"] = Payload(mark)
    data.update(extra)
    torch.save(data, dst)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(dst)) == ["io.open"]
    return dst


def train_py():
    return runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")


def module_main(name):
    return lambda: runpy.run_module(name, run_name="__main__", alter_sys=True)


def one_line(code, err, *wanted):
    assert code == 2, err[-5:]
    assert len(err) == 1 and err[0].startswith("error: "), err[-5:]
    for text in wanted:
        assert text in err[0], err[0]


# ---------------------------------------------------------------------------------------------- checkpoints are data
def test_checkpoints_written_here_are_plain_data_with_their_run_config(run):
    path = str(run / "checkpoints" / "last.ckpt")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["run_config"]["trainer"]["max_epochs"] == 1 and ckpt["run_config"]["model"]["dim"] == 8
    assert "hydra" not in ckpt["run_config"] and "paths" not in ckpt["run_config"]


@pytest.mark.parametrize("tool", ["train", "translate", "evaluate", "export", "serve", "latents"])
def test_a_pickled_payload_is_refused_by_every_tool_and_never_runs(tool, run, mark, tmp_path, capsys, monkeypatch):
    from imagefiles import rgb

    evil = evil_copy(run / "checkpoints" / "last.ckpt", tmp_path / "evil.ckpt", mark)
    (tmp_path / "in").mkdir()
    rgb((16, 16), seed=0).save(tmp_path / "in" / "a.png")
    if tool == "train":
        main, argv = train_py, [*TINY, "trainer.max_epochs=2", f"ckpt_path={evil}", f"hydra.run.dir={tmp_path}/run"]
    elif tool == "translate":
        main, argv = module_main("lit_gans.translate"), [f"ckpt={evil}", f"input={tmp_path}/in", f"output={tmp_path}/o"]
    elif tool == "evaluate":
        main, argv = module_main("lit_gans.evaluate"), [f"ckpt={evil}", f"hydra.run.dir={tmp_path}/eval"]
    elif tool == "export":
        main, argv = module_main("lit_gans.export"), [f"ckpt={evil}", f"out={tmp_path}/x.onnx"]
    elif tool == "serve":
        from lit_gans.serve import app

        main, argv = (lambda: app.main()), [f"ckpt={evil}", "port=18997"]
    else:
        from lit_gans.latents.store import FORMAT

        latents = {"format": FORMAT, "version": 1, "layout": "domains", "latents": torch.randn(4, 4, 8, 8),
                   "labels": torch.arange(4) % 2, "split": torch.zeros(4, dtype=torch.long),
                   "domain_names": ["a", "b"], "extra": Payload(mark)}
        evil = tmp_path / "evil.pt"
        torch.save(latents, evil)
        main, argv = module_main("lit_gans.latents"), ["info", evil]
    code, err, _ = run_cli(main, argv, capsys, monkeypatch)
    one_line(code, err, f"{evil}: refused to load this", "pickled code (io.open)")
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists() and not (tmp_path / "o").exists()


def test_curves_reads_no_checkpoint_and_no_yaml_tags(run, mark, tmp_path, capsys):
    """curves reads a run's event files, history and .hydra/config.yaml as data: a payload in its checkpoint and a
    Python tag in its config run nothing, and the curves are still drawn."""
    from lit_gans.curves.__main__ import main

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    evil_copy(run / "checkpoints" / "last.ckpt", copy / "checkpoints" / "last.ckpt", mark)
    (copy / ".hydra").mkdir(exist_ok=True)
    (copy / ".hydra" / "config.yaml").write_text(f"model: !!python/object/apply:builtins.open ['{mark}', 'w']\n")
    assert main([str(copy), "--out", str(tmp_path / "plots"), "--explain"]) == 0
    assert list((tmp_path / "plots").glob("*.png"))
    assert "wrote" in capsys.readouterr().out


def _weights(kind, path):
    from lit_gans.losses.perceptual import load_vgg19_features
    from lit_gans.metrics import weights
    from lit_gans.nets.fan import load_fan

    return {"fan": lambda: load_fan(path), "vgg": lambda: load_vgg19_features(path, 3),
            "lpips": lambda: weights.lpips("alex", str(path)),
            "inception": lambda: weights.inception(64, str(path))}[kind]()


@pytest.mark.parametrize("kind", ["fan", "vgg", "lpips", "inception"])
def test_weight_files_with_a_payload_are_refused(kind, mark, tmp_path):
    from lit_gans.errors import ConfigError

    path = tmp_path / "weights.pth"
    torch.save({"features.0.weight": torch.zeros(1), "extra": Payload(mark)}, path)
    with pytest.raises(ConfigError, match=r"refused to load this weights file: it holds pickled code \(io.open\)"):
        _weights(kind, path)


def test_a_judge_cache_with_a_payload_is_retrained_not_run(mark, tmp_path, caplog):
    from lit_gans.metrics.judge import cached_judge, data_key

    images, labels = torch.rand(16, 3, 8, 8) * 2 - 1, torch.arange(16) % 2
    evil = tmp_path / f"judge_{data_key(images, labels, 8)}.pt"
    torch.save({"net": {}, "extra": Payload(mark)}, evil)
    with caplog.at_level(logging.WARNING, logger="lit_gans"):
        judge = cached_judge(images, labels, ["a", "b"], tmp_path, steps=2)
    assert judge.domain_names == ["a", "b"]
    (warning,) = [r.getMessage() for r in caplog.records if "retraining the judge" in r.getMessage()]
    assert "pickled code (io.open)" in warning and "\n" not in warning
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(evil)) == []  # replaced by a plain judge


@pytest.mark.parametrize("field, value, message", [
    ("model_class", "subprocess.Popen", "names the model class 'subprocess.Popen', which is not one of lit_gans"),
    ("model_class", "lit_gans.errors.ConfigError", "is not a model class of lit_gans"),
    ("optimizer", {"_target_": "os.system", "command": "true"}, "hyper_parameters.optimizer._target_ is 'os.system'"),
])
def test_a_checkpoint_cannot_name_code_to_build(field, value, message, run, tmp_path):
    from lit_gans.errors import ConfigError
    from lit_gans.inference import load_model

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    if field == "model_class":
        ckpt["model_class"] = value
    else:
        ckpt["hyper_parameters"][field] = value
    torch.save(ckpt, tmp_path / "named.ckpt")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(tmp_path / "named.ckpt")


def test_a_folder_given_as_a_checkpoint_says_it_is_a_folder(run, tmp_path, capsys, monkeypatch):
    code, err, _ = run_cli(module_main("lit_gans.translate"), [f"ckpt={run}", f"input={tmp_path}", f"output={tmp_path}/o"],
                        capsys, monkeypatch)
    one_line(code, err, f"ckpt={run} is a directory, not a checkpoint file: pass ckpt={run}/checkpoints/last.ckpt")
    code, err, _ = run_cli(train_py, [*TINY, f"ckpt_path={run}/checkpoints", f"hydra.run.dir={tmp_path}/run"],
                        capsys, monkeypatch)
    one_line(code, err, f"ckpt_path={run}/checkpoints is a directory: pass a .ckpt file")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- one line, exit 2
TRAIN_CASES = {
    "negative lr": (["model.optimizer.lr=-1"], "model.optimizer.lr=-1: a learning rate must be a number >= 0"),
    "negative mapping lr": (["model.mapping_lr=-0.5"], "model.mapping_lr=-0.5: a learning rate must be"),
    "dim 0": (["model.dim=0"], "model.dim=0: must be a positive integer"),
    "ema_beta 1": (["model.ema_beta=1"], "model.ema_beta=1: the moving average's decay per update must be >= 0 and < 1"),
    "img_size negative": (["model.img_size=-16"], "model.img_size=-16: must be a positive integer"),
    "img_size 15": (["model.img_size=15"], "model: img_size must be a power of two >= 8, got 15"),
    "devices 0": (["trainer.devices=0"], "trainer.devices=0: pass a number of devices >= 1"),
    "unknown model": (["model=stargna"], "model=stargna: model has no option 'stargna' (conf/model/stargna.yaml); "
                                         "choose one of: cut, cyclegan"),
    "gpu without one": (["trainer.accelerator=gpu"], "trainer.accelerator=gpu: PyTorch sees no CUDA GPU here"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_values_are_one_line_and_leave_no_run_folder(case, tmp_path, capsys, monkeypatch):
    if case == "gpu without one" and torch.cuda.is_available():
        pytest.skip("tests the answer of a machine without a GPU")
    overrides, wanted = TRAIN_CASES[case]
    code, err, _ = run_cli(train_py, [*TINY, "trainer.max_steps=2", *overrides, f"hydra.run.dir={tmp_path}/run"],
                        capsys, monkeypatch)
    one_line(code, err, wanted)
    assert not (tmp_path / "run").exists()


def test_a_non_ascii_run_dir_needs_no_quotes_and_a_refused_resume_leaves_no_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "été"
    code, err, _ = run_cli(train_py, [*TINY, "ckpt_path=last", f"hydra.run.dir={folder}"], capsys, monkeypatch)
    one_line(code, err, f"ckpt_path=last: nothing to resume in {folder}")
    assert not folder.exists()
    (tmp_path / "mine").mkdir()  # a folder that was there before stays, without what the refused start wrote
    code, err, _ = run_cli(train_py, [*TINY, "ckpt_path=last", f"hydra.run.dir={tmp_path}/mine"], capsys, monkeypatch)
    one_line(code, err, "nothing to resume")
    assert os.listdir(tmp_path / "mine") == []


@pytest.fixture(scope="module")
def cyclegan_ckpt(tmp_path_factory):
    """A CycleGAN checkpoint as train.py writes one (its untrained weights: only its class matters here)."""
    from lit_gans.models import CycleGAN

    model = CycleGAN(img_size=32, ngf=4, ndf=4, n_blocks=1)
    path = tmp_path_factory.mktemp("cyclegan") / "last.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "model_class": "lit_gans.models.cyclegan.CycleGAN"}, path)
    return path


INFERENCE_CASES = {
    "translate batch 0": ("lit_gans.translate", ["batch_size=0", "domain=circle"],
                          "batch_size=0: pass a number of images per forward pass >= 1"),
    "translate cuda": ("lit_gans.translate", ["device=cuda", "domain=circle"], "device=cuda: PyTorch sees no CUDA GPU"),
    "translate direction on stargan": ("lit_gans.translate", ["direction=AtoB", "domain=circle"],
                                       "direction=AtoB is for models that translate either way (CycleGAN); this "
                                       "checkpoint holds StarGANv2"),
    "translate bogus direction": ("lit_gans.translate", ["direction=bogus", "ckpt=CYCLEGAN"],
                                  "direction=bogus: CycleGAN translates AtoB or BtoA"),
    "export opset": ("lit_gans.export", ["opset=abc"], "opset=abc: pass an ONNX opset number"),
    "export cuda": ("lit_gans.export", ["device=cuda"], "device=cuda: PyTorch sees no CUDA GPU"),
    "evaluate styles 0": ("lit_gans.evaluate", ["metrics.num_styles=0"], "metrics.num_styles=0: must be an integer >= 1"),
    "evaluate modes": ("lit_gans.evaluate", ["metrics.modes=[latent,bogus]"],
                       "metrics.modes=[latent,bogus]: choose from latent, reference"),
    "evaluate feature": ("lit_gans.evaluate", ["metrics.feature=100"], "metrics.feature=100: the Inception layer is one"),
    "evaluate cuda": ("lit_gans.evaluate", ["device=cuda"], "device=cuda: PyTorch sees no CUDA GPU"),
    "serve port": ("lit_gans.serve", ["port=abc"], "port=abc: pass a port number from 1024 to 65535"),
    "serve timeout": ("lit_gans.serve", ["timeout=0"], "timeout=0: must be a number of seconds > 0"),
    "serve idle": ("lit_gans.serve", ["idle_timeout=-1"], "idle_timeout=-1: must be a number of seconds > 0"),
    "serve cuda": ("lit_gans.serve", ["accelerator=cuda"], "accelerator=cuda: PyTorch sees no CUDA GPU"),
    "serve device": ("lit_gans.serve", ["device=cuda"], "device=cuda: the server picks its device with accelerator="),
}


@pytest.mark.parametrize("case", list(INFERENCE_CASES))
def test_inference_commands_bad_values_are_one_line(case, run, cyclegan_ckpt, tmp_path, capsys, monkeypatch):
    if "cuda" in case and torch.cuda.is_available():
        pytest.skip("tests the answer of a machine without a GPU")
    from imagefiles import rgb

    module, args, wanted = INFERENCE_CASES[case]
    ckpt = run / "checkpoints" / "last.ckpt"
    (tmp_path / "in").mkdir()
    rgb((16, 16)).save(tmp_path / "in" / "a.png")
    args = [f"ckpt={cyclegan_ckpt}" if a == "ckpt=CYCLEGAN" else a for a in args]
    extra = {"lit_gans.translate": [f"input={tmp_path}/in", f"output={tmp_path}/o"],
             "lit_gans.export": [f"out={tmp_path}/x.onnx"], "lit_gans.evaluate": [f"hydra.run.dir={tmp_path}/eval"],
             "lit_gans.serve": [] if any(a.startswith("port=") for a in args) else ["port=18996"]}[module]
    given = [a for a in args if a.startswith("ckpt=")] or [f"ckpt={ckpt}"]
    code, err, _ = run_cli(module_main(module), [*given, *[a for a in args if not a.startswith("ckpt=")], *extra],
                        capsys, monkeypatch)
    one_line(code, err, wanted)
    assert not (tmp_path / "o").exists() and not (tmp_path / "eval").exists()


# ---------------------------------------------------------------------------------------------- the server's HTTP
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    """uvicorn with the server's HTTP options (idle_timeout=0.5) in front of an app that answers after
    ``?sleep`` seconds."""
    import asyncio

    import uvicorn
    from omegaconf import OmegaConf

    from lit_gans.serve.app import uvicorn_options

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(float(scope["query_string"] or 0))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    port = _free_port()
    options = uvicorn_options(OmegaConf.create({"idle_timeout": 0.5}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="critical",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def _closed_after(sock, limit=5.0):
    """Seconds until the server closes ``sock`` (it sends nothing before)."""
    sock.settimeout(limit)
    started = time.monotonic()
    assert sock.recv(100) == b""
    return time.monotonic() - started


def test_unparseable_http_is_a_json_400_and_idle_connections_are_closed(http_server):
    import json

    with socket.create_connection(("127.0.0.1", http_server)) as sock:
        sock.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(4096).decode()
    head, body = answer.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 400") and "content-type: application/json" in head.lower()
    detail = json.loads(body)["detail"]
    assert "the request is not valid HTTP" in detail and "\n" not in detail
    with socket.create_connection(("127.0.0.1", http_server)) as sock:  # never sends a byte
        assert 0.3 < _closed_after(sock) < 3
    with socket.create_connection(("127.0.0.1", http_server)) as sock:  # stops in the middle of its headers
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        assert 0.3 < _closed_after(sock) < 3
    with socket.create_connection(("127.0.0.1", http_server)) as sock:  # an answer slower than the idle limit
        sock.sendall(b"GET /?1.2 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_form_with_a_field_twice_is_a_400():
    from starlette.testclient import TestClient

    from lit_gans.serve.app import UploadGuard

    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    client = TestClient(UploadGuard(app, max_bytes=1 << 20))
    r = client.post("/translate", files=[("image", ("a.png", b"x", "image/png")), ("image", ("b.png", b"y", "image/png"))])
    assert r.status_code == 400 and r.json()["detail"].startswith("the form has 2 image fields: send each field once")
    assert reached == []


# ---------------------------------------------------------------------------------------------- signals
def test_ctrl_c_is_not_logged_as_sigterm(tmp_path, caplog):
    from lit_gans.errors import Interrupted
    from lit_gans.train import train

    cfg = compose_config([*TINY, "trainer.max_epochs=1", "logger=[]", "callbacks.model_checkpoint=null",
                          "callbacks.image_grid=null",
                          "+callbacks.sig={_target_: helpers.faults.SignalAt, batch: 1, signal_name: SIGINT}"],
                         str(tmp_path))
    with caplog.at_level(logging.INFO), pytest.raises(Interrupted) as stop:
        train(cfg)
    assert stop.value.exit_code == 130 and str(stop.value).startswith("stopped by SIGINT")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Ctrl-C: finishing this batch") for m in messages)
    assert not any("SIGTERM" in m for m in messages), messages
