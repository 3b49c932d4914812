"""The notebooks run top to bottom at tiny sizes (nbclient, the venv's own Python as kernel) and are kept in
git without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist_and_are_committed_without_outputs():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "latent_stargan.ipynb"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell is not 'parameters'"


def execute(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    # The kernel is this interpreter (jupyter_client swaps the spec's "python" for sys.executable) and imports
    # this checkout's lit_gans; runs go to tmp_path.
    monkeypatch.setenv("LIT_GANS_NB_TINY", "1")
    monkeypatch.setenv("LIT_GANS_NB_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def images_shown(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_quickstart_trains_and_shows_curves_grids_and_translations(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", tmp_path, monkeypatch)
    run = tmp_path / "quickstart" / "run"
    assert sorted(p.name for p in (run / "curves").glob("*.png")) == ["D.png", "G.png", "val.png"]  # val: the judge
    assert (run / "checkpoints" / "last.ckpt").is_file()
    # Two curve groups, the last two grids, one translation figure.
    assert images_shown(nb) == 3 + 2 + 1  # curves (D, G, the judge's val), ...
    text = printed(nb)
    assert "D/d_loss [adversarial]" in text


@pytest.mark.slow
def test_latent_stargan_encodes_trains_and_decodes(tmp_path, monkeypatch):
    nb = execute(ROOT / "notebooks" / "latent_stargan.ipynb", tmp_path, monkeypatch)
    out = tmp_path / "latent_stargan"
    assert (out / "tiny_vae" / "config.json").is_file() and (out / "latents.pt").is_file()
    assert (out / "run" / "checkpoints" / "last.ckpt").is_file()
    text = printed(nb)
    assert "circle" in text and "triangle" in text  # the domains read from the folder
    assert images_shown(nb) == 3 + 1 + 1  # curves (D, G, val), decoded translations, the decoded sample grid
