"""Export a trained checkpoint's inference path to ONNX, TorchScript or a torch.export program, with its
metadata (model family, domains, sizes, value ranges, latent scale) inside the file.

    python -m lit_gans.export ckpt=run/checkpoints/last.ckpt format=onnx out=stargan.onnx
    python -m lit_gans.export info stargan.onnx

In Python: :func:`export_checkpoint` (what the command runs), :func:`build_graph` (the module that is
exported, also what ``python -m lit_gans.serve`` runs), :func:`load` (run an exported file),
:func:`read_metadata`, :func:`sample_palette` (Palette's sampler loop around an exported denoiser).
"""

from lit_gans.export.formats import FORMATS, read_metadata, sniff
from lit_gans.export.graphs import GraphSpec, build_graph, example_inputs, family_of
from lit_gans.export.runtime import Exported, load, sample_palette

__all__ = ["FORMATS", "Exported", "GraphSpec", "build_graph", "example_inputs", "export_checkpoint", "family_of",
           "load", "read_metadata", "sample_palette", "sniff"]


def export_checkpoint(*args, **kwargs):
    """See :func:`lit_gans.export.__main__.export_checkpoint`."""
    from lit_gans.export.__main__ import export_checkpoint as run

    return run(*args, **kwargs)
