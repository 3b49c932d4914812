#!/usr/bin/env bash
# Regenerates the README figures from the quickstart run (`make train`'s settings, seed 0) on the built-in shapes:
#   docs/images/sample_grid.png          its last sample grid (source | reference | ref-guided | latent-guided),
#                                        labelled and enlarged by the ImageGrid callback itself
#   docs/images/curves_D.png, curves_G.png   its curves (python -m lit_gans.curves)
#   docs/images/quickstart_judge.json    the judge's verdict on its latent-guided translations (lit_gans.metrics.judge:
#                                        a small classifier trained on the same data), and the run's CPU and wall time
# Usage: scripts/make_figures.sh  (or `make figures`); extra train.py overrides: scripts/make_figures.sh trainer.max_epochs=30
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-outputs/figures/run}
OUT=${OUT:-docs/images}
TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT

rm -rf "$RUN"
mkdir -p "$OUT" "$(dirname "$RUN")"
# bash's `time` (user, sys, wall seconds) of the training alone; its own output goes to $RUN.log
TIMEFORMAT='%U %S %R'
{ time "$PY" train.py experiment=quickstart seed=0 trainer.log_every_n_steps=1 trainer.enable_progress_bar=false \
    trainer.limit_val_batches=0 callbacks.image_grid.num_samples=6 hydra.run.dir="$RUN" "$@" > "$RUN.log" 2>&1 ; } 2> "$TIMES"
"$PY" -m lit_gans.curves "$RUN" --out "$RUN/curves" --explain > "$RUN/curves.txt"
cp "$RUN/curves/D.png" "$OUT/curves_D.png"
cp "$RUN/curves/G.png" "$OUT/curves_G.png"
cp "$(ls "$RUN"/tensorboard/samples/*.png | sort | tail -n 1)" "$OUT/sample_grid.png"

# The judge: the fraction of latent-guided translations (every held-out source to every other domain, 4 random
# style codes each) that a classifier trained on the built-in data assigns to the target domain.
"$PY" - "$RUN" "$OUT/quickstart_judge.json" "$TIMES" "$*" <<'PY'
import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf

from lit_gans.inference import load_model
from lit_gans.metrics.judge import default_cache_dir, judge_multidomain_model

run, out, times, extra = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
user, sys_s, wall = (float(v) for v in open(times).read().split()[-3:])
model, _ = load_model(run / "checkpoints" / "last.ckpt")
cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
dm = hydra.utils.instantiate(cfg.data)
r = judge_multidomain_model(model, dm, cache_dir=default_cache_dir(dm))
report = {
    "command": "scripts/make_figures.sh" + (f" {extra}" if extra else "")
               + f"  (train.py experiment=quickstart seed=0, {int(cfg.trainer.max_epochs)} epochs)",
    "latent_guided_in_target_domain": round(r["judge_accuracy"], 4),
    "per_pair": {k: round(v, 4) for k, v in r["judge_accuracy_pairs"].items()},
    "judge_accuracy_on_real_held_out": round(r["judge_real_accuracy"], 4),
    "chance": round(r["judge_chance"], 4),
    "frechet_distance_judge_features": round(r["judge_fd"], 3),
    "train_cpu_seconds": round(user + sys_s, 1),
    "train_wall_seconds": round(wall, 1),
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
}
out.write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
print(f"judge: {100 * r['judge_accuracy']:.1f} % of latent-guided translations judged in their target domain "
      f"(chance {100 * r['judge_chance']:.0f} %); training took {user + sys_s:.0f} CPU s, {wall:.0f} s wall")
PY
ls -l "$OUT"
