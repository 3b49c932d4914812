"""The run's composed config in TensorBoard's HParams tab, beside its final numbers, so that runs and sweep jobs
can be compared there.

Lightning's ``log_hyperparams`` would log the model's constructor arguments (``save_hyperparameters`` keeps them
out of the logger here: they are partial and nested), and writes its metrics as points at step 0. This callback
declares, at fit start, the flattened composed config (``model.optimizer.lr``, ``loss.w_sty`` ...) as the hparams and
the curves' epoch means (``G/g_loss_epoch`` ...) and ``val/*`` metrics as the session's metrics; TensorBoard shows
the latest value of each of those scalar series, so the table fills in as the run goes and needs no extra point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams
from torch.utils.tensorboard.writer import FileWriter

# Config groups that describe where a run writes or how it is launched, not what it trains.
SKIP = ("hydra", "paths", "logger", "callbacks", "task_name")


def flatten_config(cfg: Mapping[str, Any] | DictConfig, skip: Iterable[str] = SKIP) -> dict[str, Any]:
    """``{"model.optimizer.lr": 1e-4, ...}``: the leaves of a (resolved) config as TensorBoard hparam values (numbers,
    booleans and strings; lists and None as their text). Keys of ``skip`` at the top level are left out."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if prefix or key not in skip:
                    walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, bool | int | str):
            out[prefix] = node
        elif isinstance(node, float):
            out[prefix] = node if math.isfinite(node) else str(node)
        elif isinstance(node, list | tuple | ListConfig):
            out[prefix] = str(list(node))
        else:
            out[prefix] = str(node)

    walk(cfg, "")
    return out


class HParams(Callback):
    """Writes the run's hparams (the composed config, see :func:`flatten_config`) and its metrics' names into
    every TensorBoard logger's folder at fit start, and the session's end status at fit end; other loggers get
    the same flattened config through their ``log_hyperparams``.

    ``lit_gans.train.build`` hands it the composed config (:meth:`set_run_config`); without one, the model's
    saved hyper-parameters are used.
    """

    def __init__(self, metrics: Iterable[str] = ()):
        self.extra_metrics = list(metrics)
        self.run_config: dict[str, Any] | None = None
        self._writers: list[FileWriter] = []

    def set_run_config(self, cfg: Mapping[str, Any] | DictConfig) -> None:
        self.run_config = flatten_config(cfg)

    def metric_names(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[str]:
        names: list[str] = []
        objective = getattr(pl_module, "objective", None)
        if objective is not None:
            names += [f"{name}_epoch" for name in objective.curve_names()]
        for cb in trainer.callbacks:
            declared = getattr(cb, "logged_metrics", None)
            if callable(declared):
                names += list(declared())
        return list(dict.fromkeys(names + self.extra_metrics))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.ckpt_path is not None:
            # A resumed run's folder holds the session already; another record at step 0 would read as a restart
            # to TensorBoard, which then drops every point logged before it.
            return
        params = self.run_config if self.run_config is not None else flatten_config(dict(pl_module.hparams))
        metrics = {name: math.nan for name in self.metric_names(trainer, pl_module)}
        experiment, session_start, _ = (_with_null_tensor(s) for s in hparams(params, metrics))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # A file of its own in the run's folder: TensorBoard reads every event file of a folder as one run.
                writer = FileWriter(logger.log_dir)
                writer.add_summary(experiment)
                writer.add_summary(session_start)
                writer.flush()
                self._writers.append(writer)
            else:  # CSV (hparams.yaml), MLflow (run params), W&B (run config): the same flattened config
                logger.log_hyperparams(params)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        session_end = _with_null_tensor(hparams({}, {})[2])  # status: success
        for writer in self._writers:
            writer.add_summary(session_end)
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()  # no end record: TensorBoard shows the session as not finished

    def _close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []


def _with_null_tensor(summary: Any) -> Any:
    """An hparams summary as TensorBoard's own writer makes it: each value also carries an empty tensor (torch's
    ``hparams`` leaves it out; readers that list tensors, like ``EventAccumulator``, then see the hparams)."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    for value in summary.value:
        value.tensor.CopyFrom(tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=0)])))
    return summary
