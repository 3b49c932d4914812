"""pyproject.toml's dependency floors against the APIs lit_gans and its tests call: a floor below the first release
that has an API the code uses fails here, naming the file, the API and the release. (The floors themselves were
proven by running the suite with every dependency at its floor; pyproject.toml says how.)"""

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# (distribution, first release that works, a regex of the use in lit_gans/ or tests/, what needs it). Each was found
# by installing the release before it (fails) and this one (works) with everything else at its floor.
NEEDS = [
    ("lightning", "2.5.2", r"\.toggled_optimizer\(", "LightningModule.toggled_optimizer (new in 2.5.2)"),
    ("lightning", "2.6.0", r"\btotal_flops\b", "ModelSummary.summarize(..., total_flops, ...) (new in 2.6.0)"),
    ("diffusers", "0.33.0", r"\bAutoencoderKL\b", "AutoencoderKL save/load with today's huggingface_hub (before "
     "0.33 diffusers relied on the hub importing safetensors.torch, which the hub no longer does)"),
    ("litserve", "0.2.12", r"\bls\.LitAPI\b", "LitAPI(api_path=...) (0.2.11) and a server whose processes end on "
     "SIGTERM (0.2.11 hangs in its shutdown)"),
    ("onnxscript", "0.6.0", r"dynamo=True", "torch.onnx.export(dynamo=True) under the pinned torch 2.14 (imports "
     "onnxscript._framework_apis.torch_2_11, new in onnxscript 0.6.0)"),
    ("torchmetrics", "1.6.1", r"FrechetInceptionDistance\([^)]*feature_extractor_weights_path",
     "FrechetInceptionDistance(feature_extractor_weights_path=...) (new in 1.6.1)"),
]


def floors() -> dict[str, Version | None]:
    """``{distribution: its lowest allowed version}`` from ``[project] dependencies`` (None: no lower bound)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for line in deps:
        req = Requirement(line)
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=", "===")]
        out[canonicalize_name(req.name)] = max(lows) if lows else None
    return out


def users(pattern: str) -> list[str]:
    files = [*(ROOT / "lit_gans").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    return sorted(str(p.relative_to(ROOT)) for p in files
                  if p.name != Path(__file__).name and re.search(pattern, p.read_text(encoding="utf-8")))


def test_every_dependency_has_a_floor():
    assert [name for name, low in floors().items() if low is None] == []


@pytest.mark.parametrize("dist, first, pattern, api", NEEDS, ids=[f"{d}>={v}" for d, v, *_ in NEEDS])
def test_floor_covers_the_apis_the_code_uses(dist, first, pattern, api):
    where = users(pattern)
    if not where:
        pytest.skip(f"nothing uses {api} any more: the floor may come down (prove it in a venv first)")
    floor = floors().get(canonicalize_name(dist))
    assert floor is not None and floor >= Version(first), (
        f"pyproject.toml allows {dist} {floor}, but {where[0]} uses {api}, which needs {dist}>={first}: raise the floor")
