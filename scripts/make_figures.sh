#!/usr/bin/env bash
# Regenerates the README figures from a short real run on the built-in shapes data:
#   docs/images/sample_grid.png   the run's last sample grid (source | reference | ref-guided | latent-guided)
#   docs/images/curves_D.png      its discriminator curves (python -m lit_gans.curves)
#   docs/images/curves_G.png      its generator curves
# Usage: scripts/make_figures.sh   (the quickstart run: 12 epochs of 3 x 256 shapes, 3 min 44 s on an idle 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-12}
PER_DOMAIN=${PER_DOMAIN:-256}
RUN=${RUN:-outputs/figures/run}
OUT=docs/images

rm -rf "$RUN"
"$PY" train.py experiment=quickstart seed=0 trainer.max_epochs="$EPOCHS" data.per_domain="$PER_DOMAIN" \
  trainer.log_every_n_steps=1 \
  trainer.enable_progress_bar=false trainer.limit_val_batches=0 \
  callbacks.image_grid.every_n_steps=0 callbacks.image_grid.num_samples=6 hydra.run.dir="$RUN"
"$PY" -m lit_gans.curves "$RUN" --out "$RUN/curves" --explain > "$RUN/curves.txt"
mkdir -p "$OUT"
cp "$RUN/curves/D.png" "$OUT/curves_D.png"
cp "$RUN/curves/G.png" "$OUT/curves_G.png"
# The grid is written at the data's 32 px; enlarged 4x (nearest) to be readable in the README.
"$PY" - "$RUN" "$OUT/sample_grid.png" <<'PY'
import sys
from pathlib import Path

from PIL import Image

grid = sorted((Path(sys.argv[1]) / "tensorboard" / "samples").glob("*.png"))[-1]
img = Image.open(grid)
img.resize((img.width * 4, img.height * 4), Image.NEAREST).save(sys.argv[2], optimize=True)
PY
ls -l "$OUT"
