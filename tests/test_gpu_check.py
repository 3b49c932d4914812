"""The one-shot GPU check (scripts/gpu_check.sh, lit_gans.bench.gpu_check): its checks catch what they claim
to, its runner survives failing items and a short budget, its --dry-run rehearses the whole plan on the CPU,
and the docs take real GPU reports only."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from lit_gans.bench import gpu_check as gc
from lit_gans.bench import official
from lit_gans.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [*gc.DRY_MODELS["stargan"], "trainer.accelerator=cpu", "trainer.devices=1", "model.channels_last=true"]


def _ok(result):
    return {name: check["ok"] for name, check in result["checks"].items()}


def test_a_sound_run_passes_every_check():
    result = gc.correctness_check([*TINY, "trainer.precision=bf16-mixed"])
    assert result["status"] == "passed", result
    assert _ok(result) == {"no_host_sync": True, "finite": True, "weights_changed": True, "channels_last": True,
                           "fused_optimizer": True, "r1_fp32": True}
    checks = result["checks"]
    assert checks["no_host_sync"]["checked_steps"] == 2  # the timed step and the one closing the window
    assert checks["r1_fp32"]["r1_steps"] >= 1 and checks["r1_fp32"]["max_rel_diff"] <= 1e-3
    assert checks["channels_last"]["conv_calls"] > 0
    assert set(checks["finite"]["last"]) >= {"D/d_loss", "G/g_loss", "D/r1"}


def test_checks_fail_on_unfused_optimizers_channels_first_and_frozen_weights():
    # Syncs counted rather than raised, so that every other check still gives its verdict.
    result = gc.correctness_check([*TINY, "trainer.precision=32-true", "model.fused_optimizer=false",
                                   "model.channels_last=false", "model.optimizer.lr=0", "model.mapping_lr=0",
                                   "model.optimizer.weight_decay=0"], sync_mode="count")
    assert result["status"] == "failed"
    assert _ok(result) == {"no_host_sync": False, "finite": True, "weights_changed": False, "channels_last": False,
                           "fused_optimizer": False, "r1_fp32": True}
    assert "item" in result["checks"]["no_host_sync"]["syncs"]  # unfused Adam reads its step count on the host
    assert result["checks"]["fused_optimizer"]["unfused"] == ["Adam"]
    assert len(result["checks"]["weights_changed"]["unchanged"]) == 4  # D; G, E, F


def test_the_r1_check_fails_when_r1_runs_in_bf16(monkeypatch):
    import lit_gans.models.stargan_v2 as sg

    def bf16_eager(module):  # a bug: R1's discriminator pass under autocast
        def call(*args):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return module(*args)

        return call

    monkeypatch.setattr(sg, "eager", bf16_eager)
    result = gc.correctness_check([*TINY, "trainer.precision=32-true"])
    assert result["status"] == "failed"
    assert {k: v for k, v in _ok(result).items() if v is not True} == {"r1_fp32": False}
    assert any("bfloat16" in p for p in result["checks"]["r1_fp32"]["problems"])


def test_a_nonfinite_loss_fails_the_run():
    result = gc.correctness_check([*TINY, "trainer.precision=32-true", "loss.w_cyc=inf"])
    assert result["status"] == "failed" and result["checks"]["finite"]["ok"] is False
    assert "g_loss" in result["checks"]["finite"]["error"]


def test_a_host_sync_in_the_step_fails_the_run(monkeypatch):
    from lit_gans.models.stargan_v2 import StarGANv2

    step = StarGANv2.training_step

    def syncing_step(self, batch, batch_idx):
        if batch["x_src"].abs().sum() > 0:  # a host sync
            return step(self, batch, batch_idx)

    monkeypatch.setattr(StarGANv2, "training_step", syncing_step)
    result = gc.correctness_check([*TINY, "trainer.precision=32-true"])
    assert result["status"] == "failed" and result["checks"]["no_host_sync"]["ok"] is False
    assert "__bool__" in result["checks"]["no_host_sync"]["error"]


def test_the_runner_records_errors_timeouts_skips_and_writes_after_each_item(tmp_path):
    written = []

    def boom():
        raise ValueError("broken on purpose")

    def slow():
        time.sleep(30)
        return {"status": "passed"}

    items = [gc.Item("a", "correctness", lambda: {"status": "passed", "checks": {}}, 0, 10),
             gc.Item("b", "correctness", boom, 0, 10),
             gc.Item("c", "speed", slow, 0, 1),
             gc.Item("d", "speed", lambda: {"status": "passed"}, 10_000, 10),
             gc.Item("e", "compile", lambda: {"status": "passed"}, 0, 10, skip="not here")]
    report = {"meta": {"dry_run": True}, "items": []}
    opts = gc.Options(dry_run=True, budget_s=60, out_dir=str(tmp_path))
    t0 = time.monotonic()
    gc.run_plan(items, opts, report, lambda r: written.append(len(r["items"])))
    assert time.monotonic() - t0 < 20
    status = {e["id"]: e["status"] for e in report["items"]}
    assert status == {"a": "passed", "b": "error", "c": "timeout", "d": "skipped", "e": "skipped"}
    by_id = {e["id"]: e for e in report["items"]}
    assert "broken on purpose" in by_id["b"]["error"] and "time budget" in by_id["d"]["reason"]
    assert by_id["e"]["reason"] == "not here"
    assert written[:5] == [1, 2, 3, 4, 5]  # the report is rewritten after every item
    assert report["summary"]["ok"] is False and report["summary"]["failed"] == ["b", "c"]


def test_resume_keeps_finished_items_and_reruns_the_others(tmp_path):
    def never():
        raise AssertionError("a finished item ran again")

    done = {"a": {"id": "a", "section": "speed", "status": "measured", "bench": {"img_per_s": 3.0}},
            "b": {"id": "b", "section": "speed", "status": "skipped", "reason": "time budget"}}
    items = [gc.Item("a", "speed", never, 0, 10), gc.Item("b", "speed", lambda: {"status": "measured"}, 0, 10)]
    opts = gc.Options(dry_run=True, budget_s=60, out_dir=str(tmp_path),
                      done={k: v for k, v in done.items() if v["status"] != "skipped"})
    report = gc.run_plan(items, opts, {"meta": {"dry_run": True}, "items": []}, lambda r: None)
    by_id = {e["id"]: e for e in report["items"]}
    assert by_id["a"]["resumed"] is True and by_id["a"]["bench"]["img_per_s"] == 3.0
    assert by_id["b"]["status"] == "measured" and "resumed" not in by_id["b"]


def _fake_official(root):
    core = root / "core"
    core.mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "model.py").write_text("import cv2\nfrom munch import Munch\n\ndef build_model(args):\n"
                                   "    return Munch(), Munch()\n")
    (core / "solver.py").write_text("import ffmpeg\nfrom scipy import linalg\n\ndef compute_d_loss(*a):\n"
                                    "    return linalg.sqrtm(1)\n\ncompute_g_loss = moving_average = compute_d_loss\n")
    (core / "utils.py").write_text("def he_init(module):\n    pass\n")
    return str(root)


def test_the_official_code_loads_with_labelled_stubs_and_leaves_no_trace(tmp_path):
    assert official.find_official(str(tmp_path / "absent")) is None
    path = official.find_official(_fake_official(tmp_path / "stargan-v2"))
    ns = official.load_official(path)
    missing = [m for m in ("cv2", "ffmpeg", "scipy") if not official._installed(m)]
    assert set(missing) <= set(ns.stand_ins)
    assert not any(m.split(".")[0] in ("core", "metrics") for m in sys.modules)
    for m in missing:
        assert m not in sys.modules  # the stubs served the import only
    if "scipy" in missing:
        with pytest.raises(RuntimeError, match="gpu_check stub"):
            ns.compute_d_loss()
    assert ns.Munch(a=1).a == 1


def test_the_gpu_plan_covers_the_issue_matrix():
    plan = gc.build_plan(gc.Options(dry_run=False))
    ids = [i.id for i in plan]
    assert len(ids) == len(set(ids)) and not any(i.skip for i in plan if "official" not in i.id)
    for name in gc.MODELS:
        for precision in ("32-true", "bf16-mixed", "16-mixed"):
            assert f"correctness/{name}/{precision}/eager" in ids
            assert (f"correctness/{name}/{precision}/compiled" in ids) == (name in gc.COMPILED_MODELS)
    for row in ("stargan_256/b8", "stargan_256/b32", "stargan_latent_32/b32", "stargan_latent_32/b128"):
        assert {f"speed/{row}/lit_gans/bf16-mixed", f"speed/{row}/official/fp32",
                f"speed/{row}/official/bfloat16"} <= set(ids)
    assert {"speed/cyclegan_256/b1/lit_gans/32-true", "speed/cyclegan_256/b8/lit_gans/bf16-mixed",
            "speed/stargan_256/b8/lit_gans/bf16-mixed/compiled", "ddp/stargan", "env"} <= set(ids)
    by_id = {i.id: i for i in plan}
    assert "net=stargan_official" in by_id["speed/stargan_256/b8/lit_gans/bf16-mixed"].meta["overrides"]
    assert "loss.r1_interval=1" in by_id["speed/stargan_256/b32/lit_gans/bf16-mixed"].meta["overrides"]
    assert "model.img_size=256" in by_id["correctness/stargan/16-mixed/eager"].meta["overrides"]
    # What matters most comes first: every model in bf16 before any other precision or compilation.
    assert max(ids.index(f"correctness/{n}/bf16-mixed/eager") for n in gc.MODELS) < min(
        ids.index(i) for i in ids if i.endswith("/compiled") or "/32-true/" in i or "/16-mixed/" in i)


def test_without_the_official_code_its_rows_are_skipped_with_the_way_to_get_it(tmp_path):
    plan = gc.build_plan(gc.Options(dry_run=True, official_dir=str(tmp_path), only=("speed",)))
    rows = [i for i in plan if "/official/" in i.id and i.skip != gc.DRY_ONE_ROW]
    assert len(rows) == 4 and all(official.HOW_TO_GET in i.skip for i in rows)
    assert {i.section for i in plan} == {"env", "speed"}


def _gpu_report():
    return {"meta": {"dry_run": False, "command": "python -m lit_gans.bench.gpu_check", "budget_s": 480},
            "items": [{"id": "env", "section": "env", "status": "measured",
                       "env": {"gpu": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0",
                               "bf16_matmul_peak": {"n": 8192, "tflops": 780.0}}},
                      {"id": "speed/stargan_256/b8/lit_gans/bf16-mixed", "section": "speed", "status": "passed",
                       "config": "stargan_256", "title": "StarGAN v2", "batch_size": 8, "impl": "lit_gans",
                       "precision": "bf16-mixed", "compile": False,
                       "bench": {"img_per_s": 60.0, "s_per_step": 8 / 60, "lightning_overhead_pct": 1.0}},
                      {"id": "speed/stargan_256/b8/official/fp32", "section": "speed", "status": "measured",
                       "config": "stargan_256", "title": "StarGAN v2", "batch_size": 8, "impl": "official",
                       "precision": "32-true", "bench": {"img_per_s": 12.0, "s_per_step": 8 / 12}}]}


def test_targets_compare_with_the_official_code():
    summary = gc.summarize(_gpu_report())
    first = summary["targets"][0]
    assert first["value"] == pytest.approx(5.0) and first["met"] is True
    assert summary["targets"][3]["value"] == 1.0 and summary["targets"][3]["met"] is True
    assert summary["targets"][2]["met"] is None  # batch 32 was not measured
    assert "| StarGAN v2 | 8 | 12.0 | — | 60.0 | 5.00 | — |" in gc.render_markdown(_gpu_report())


def test_update_docs_takes_gpu_reports_only(tmp_path):
    docs = tmp_path / "performance.md"
    docs.write_text(f"# Perf\n\nbefore\n\n{gc.DOC_BEGIN}\nold\n{gc.DOC_END}\n\nafter\n")
    report = tmp_path / "gpu_check.json"
    report.write_text(json.dumps(_gpu_report()))
    copy = gc.update_docs(str(report), str(docs))
    text = docs.read_text()
    assert "old" not in text and "NVIDIA H200" in text and text.startswith("# Perf\n\nbefore") and text.endswith("after\n")
    assert json.loads(open(copy).read())["meta"]["dry_run"] is False
    dry = _gpu_report()
    dry["meta"]["dry_run"] = True
    report.write_text(json.dumps(dry))
    with pytest.raises(ConfigError, match="dry run"):
        gc.update_docs(str(report), str(docs))


def test_the_shell_script_runs_and_reports(tmp_path):
    env = {**os.environ, "PY": sys.executable, "GPU_CHECK_OUT": str(tmp_path)}
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--dry-run", "--only", "env"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [e["id"] for e in report["items"]] == ["env"] and report["items"][0]["status"] == "measured"
    assert report["items"][0]["env"]["bf16_matmul_peak"]["tflops"] > 0
    assert (tmp_path / "gpu_check.log").read_text().count("[gpu_check]") >= 2


@pytest.mark.slow
def test_dry_run_rehearses_the_whole_plan(tmp_path):
    """The full plan on the CPU at tiny sizes: every item runs (or is skipped for a stated reason) and passes."""
    rc = gc.main(["--dry-run", "--out-dir", str(tmp_path), "--official-dir", str(tmp_path / "absent"),
                  "--budget-s", "1800"])  # a loaded CI machine must not turn items into budget skips
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    items = {e["id"]: e for e in report["items"]}
    assert rc == 0, [(k, e.get("error")) for k, e in items.items() if e["status"] not in ("passed", "measured", "skipped")]
    for name in gc.MODELS:
        for precision in ("32-true", "bf16-mixed"):
            e = items[f"correctness/{name}/{precision}/eager"]
            assert e["status"] == "passed", (name, precision, e)
            want_r1 = True if name.startswith("stargan") else None
            assert {k: c["ok"] for k, c in e["checks"].items()} == {
                "no_host_sync": True, "finite": True, "weights_changed": True, "channels_last": True,
                "fused_optimizer": True, "r1_fp32": want_r1}
        assert "CUDA" in items[f"correctness/{name}/16-mixed/eager"]["reason"]
    assert "--dry-run-compile" in items["correctness/stargan/bf16-mixed/compiled"]["reason"]
    ddp = items["ddp/stargan"]
    assert ddp["status"] == "passed" and ddp["checks"]["ddp_started"]["backend"] == "gloo"
    assert ddp["checks"]["trained"]["global_step"] > 0
    ours = [e for e in report["items"] if e["section"] == "speed" and e.get("impl") == "lit_gans"
            and e["status"] != "skipped"]
    assert {e["config"] for e in ours} == {"stargan_256", "stargan_latent_32", "cyclegan_256"} and len(ours) == 3
    assert len([e for e in report["items"] if e.get("reason") == gc.DRY_ONE_ROW]) == 10
    for e in ours:
        assert e["status"] == "passed" and e["bench"]["img_per_s"] > 0 and e["bench"]["tflop_per_step"] > 0
        assert "lightning_overhead_pct" in e["bench"] and e["checks"]["no_host_sync"]["count"] == 0
    theirs = [e for e in report["items"] if e.get("impl") == "official" and "git clone" in e.get("reason", "")]
    assert len(theirs) == 4 and all(e["status"] == "skipped" for e in theirs)
    assert report["items"][0]["env"]["bf16_matmul_peak"]["tflops"] > 0
    assert all(t["met"] is None for t in report["summary"]["targets"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in md and "#### Correctness" in md and "#### Speed" in md and "#### Targets" in md


def test_out_names_the_report_file(tmp_path, capsys):
    """``--out FILE.json`` writes the report there and its markdown beside it; a folder is one line."""
    out = tmp_path / "reports" / "run1.json"
    rc = gc.main(["--dry-run", "--only", "env", "--out", str(out)])
    assert rc == 0 and json.loads(out.read_text())["meta"]["dry_run"] is True
    assert (tmp_path / "reports" / "run1.md").is_file() and not (tmp_path / "reports" / "gpu_check.json").exists()
    with pytest.raises(SystemExit) as exit_:
        gc.main(["--dry-run", "--only", "env", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "ending in .json" in capsys.readouterr().err
