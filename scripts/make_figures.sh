#!/usr/bin/env bash
# Regenerates the README figures from quickstart runs (`make train`'s settings) on the built-in shapes, one run per
# seed in $SEEDS (default 0 1 2):
#   docs/images/sample_grid.png          the first seed's last sample grid (source | reference | ref-guided |
#                                        latent-guided), labelled and enlarged by the ImageGrid callback itself
#   docs/images/curves_D.png, curves_G.png   the first seed's curves (python -m lit_gans.curves)
#   docs/images/quickstart_judge.json    per seed: the judge's verdict (lit_gans.metrics.judge: a small classifier
#                                        trained on the same data) and StarGAN v2's hallmarks (lit_gans.metrics.
#                                        hallmarks: reference colour followed, diversity over codes, position kept),
#                                        and the run's CPU and wall time
# Usage: scripts/make_figures.sh  (or `make figures`); SEEDS="0" scripts/make_figures.sh for one run; extra train.py
# overrides: scripts/make_figures.sh trainer.max_epochs=30
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/figures/run}
OUT=${OUT:-docs/images}
SEEDS=${SEEDS:-0 1 2}
TIMES=$(mktemp -d)
trap 'rm -rf "$TIMES"' EXIT

mkdir -p "$OUT" "$(dirname "$RUN")"
# bash's `time` (user, sys, wall seconds) of each training alone; its own output goes to <run>.log
TIMEFORMAT='%U %S %R'
for seed in $SEEDS; do
  rm -rf "${RUN}_seed$seed"
  { time "$PY" train.py experiment=quickstart seed="$seed" trainer.log_every_n_steps=1 trainer.enable_progress_bar=false \
      trainer.limit_val_batches=0 callbacks.image_grid.num_samples=6 hydra.run.dir="${RUN}_seed$seed" "$@" \
      > "${RUN}_seed$seed.log" 2>&1 ; } 2> "$TIMES/$seed"
done
FIRST=${RUN}_seed${SEEDS%% *}
"$PY" -m lit_gans.curves "$FIRST" --out "$FIRST/curves" --explain > "$FIRST/curves.txt"
cp "$FIRST/curves/D.png" "$OUT/curves_D.png"
cp "$FIRST/curves/G.png" "$OUT/curves_G.png"
cp "$(ls "$FIRST"/tensorboard/samples/*.png | sort | tail -n 1)" "$OUT/sample_grid.png"

# Per seed: the judge (the fraction of latent-guided translations, every held-out source to every other domain with 4
# random style codes, that a classifier trained on the built-in data assigns to the target domain) and the hallmarks.
"$PY" - "$RUN" "$OUT/quickstart_judge.json" "$TIMES" "$*" $SEEDS <<'PY'
import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf

from lit_gans.inference import load_model
from lit_gans.metrics.judge import default_cache_dir, judge_multidomain_model

run, out, times, extra, seeds = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5:]
HALLMARKS = ("judge_accuracy_ref", "ref_retrieval", "latent_diversity", "shapes_target_ref", "shapes_target_latent",
             "shapes_colour_followed", "shapes_colour_diversity", "shapes_position_error")
per_seed, epochs = {}, None
for seed in seeds:
    folder = Path(f"{run}_seed{seed}")
    user, sys_s, wall = (float(v) for v in (times / seed).read_text().split()[-3:])
    model, _ = load_model(folder / "checkpoints" / "last.ckpt")
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    epochs = int(cfg.trainer.max_epochs)
    dm = hydra.utils.instantiate(cfg.data)
    r = judge_multidomain_model(model, dm, cache_dir=default_cache_dir(dm))
    per_seed[seed] = {
        "latent_guided_in_target_domain": round(r["judge_accuracy"], 4),
        "per_pair": {k: round(v, 4) for k, v in r["judge_accuracy_pairs"].items()},
        "frechet_distance_judge_features": round(r["judge_fd"], 3),
        **{k: round(r[k], 4) for k in HALLMARKS},
        "train_cpu_seconds": round(user + sys_s, 1),
        "train_wall_seconds": round(wall, 1),
    }
report = {
    "command": "scripts/make_figures.sh" + (f" {extra}" if extra else "")
               + f"  (train.py experiment=quickstart seed=S, {epochs} epochs, for S in {' '.join(seeds)})",
    "seeds": per_seed,
    "judge_accuracy_on_real_held_out": round(r["judge_real_accuracy"], 4),
    "chance": round(r["judge_chance"], 4),
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
}
out.write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
for seed, v in per_seed.items():
    print(f"seed {seed}: target shape {v['shapes_target_ref']:.2f} (reference-guided) / {v['shapes_target_latent']:.2f} "
          f"(latent-guided), judge {v['latent_guided_in_target_domain']:.2f}; reference colour followed "
          f"{v['shapes_colour_followed']:.2f}, colour diversity {v['shapes_colour_diversity']:.2f}, position error "
          f"{v['shapes_position_error']:.3f} widths; {v['train_cpu_seconds']:.0f} CPU s, {v['train_wall_seconds']:.0f} s wall")
PY
ls -l "$OUT"
