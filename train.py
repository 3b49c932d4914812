"""Train a model: ``python train.py model=stargan_latent loss=hinge_r1 trainer.max_epochs=50``.

Configs live in conf/ (Hydra): groups model, loss, data, trainer, logger, callbacks, paths, and
experiment/debug presets. ``-m`` runs sweeps; ``resume=<run dir>`` continues a run with its own config.
See README.md.
"""

import sys

import hydra
from omegaconf import DictConfig

import lit_gans  # noqa: F401 - registers the OmegaConf resolvers conf/ uses


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lit_gans.cli import no_trace_of_refused_start, user_errors
    from lit_gans.train import train

    with user_errors(), no_trace_of_refused_start():
        metrics = train(cfg)
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    if metric not in metrics:
        raise SystemExit(f"error: optimized_metric={metric} was not logged; logged: {', '.join(sorted(metrics))}")
    print(f"optimized_metric {metric} = {metrics[metric]:.6g}", flush=True)
    return metrics[metric]


if __name__ == "__main__":
    from lit_gans.cli import note_existing_run_dir, prepare_train_argv, refuse_busy_run_dir, user_errors

    with user_errors():
        sys.argv[1:] = prepare_train_argv(sys.argv[1:])  # resume=<run dir>; never overwrite a run's .hydra/
    refuse_busy_run_dir(sys.argv[1:])  # before Hydra writes its files into a folder another run is training in
    note_existing_run_dir(sys.argv[1:])  # a refused start leaves no folder it made behind
    main()
