#!/usr/bin/env bash
# One-shot GPU check of lit_gans, one call, at most 8 minutes on one H100/H200:
#   every model x trainer.precision {32-true, bf16-mixed, 16-mixed} x eager/compiled on CUDA with its checks
#   (finite losses, weights changed, no host sync, channels_last, fused optimizers, R1 in fp32), trainer=ddp
#   with one device (NCCL), and the speed of StarGAN v2 next to the official clovaai/stargan-v2 iteration.
# It writes gpu_check.json, gpu_check.md and gpu_check.log to $OUT when set (the device tool's folder), else
# to the current folder, rewriting the report after every item. Options go to
# `python -m lit_gans.bench.gpu_check` (--dry-run, --budget-s, --only SECTIONS, --models ..., --help).
#
# What a bare GPU machine lacks. Its python3 has torch, lightning, torchmetrics and tensorboard but not
# hydra-core, omegaconf, antlr4-python3-runtime (nor munch, for the official code), and it has no network.
# Bring them as wheels in the git-ignored wheels/ folder, filled here where pip reaches PyPI:
#     make wheels
# which runs (all pure-python wheels; antlr4 4.9.3 exists only as an sdist, so pip builds its wheel here):
#     pip download --no-deps --only-binary=:all: -d wheels hydra-core==1.3.8 omegaconf==2.3.1 munch==4.0.0
#     pip wheel --no-deps -w wheels antlr4-python3-runtime==4.9.3
# This script installs them offline (pip --no-index --no-deps --target, nothing else touched) when the
# modules are missing. diffusers is not needed: nothing the check runs imports it.
#
# The official StarGAN v2 code (CC BY-NC 4.0, never committed) goes into the git-ignored third_party/stargan-v2:
#     make official      # git clone --depth 1 https://github.com/clovaai/stargan-v2 third_party/stargan-v2
#     make official STARGAN_V2_REPO=<another clone or mirror>      # where GitHub is out of reach
# Without it only the comparison with it is skipped (the report says how to get it).
#
# With the device tool, from this repository's root (both carried folders are well under 1 MiB):
#     run(command="bash scripts/gpu_check.sh", carry=["wheels", "third_party/stargan-v2"], timeout_s=570)
# then, here, with the files it returns:
#     python -m lit_gans.bench.gpu_check --update-docs <files_at>/gpu_check.json   # docs/performance.md
# Items the budget skipped say "rerun with --resume": copy the returned report into the checkout (git-ignored
# name) and run only what is missing, keeping the finished items:
#     cp <files_at>/gpu_check.json gpu_check_prev.json
#     run(command="bash scripts/gpu_check.sh --resume gpu_check_prev.json --budget-s 200",
#         carry=["wheels", "third_party/stargan-v2", "gpu_check_prev.json"], timeout_s=260)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PY=${PY:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import torch, lightning" 2>/dev/null; then
    echo "error: $PY has no torch/lightning: set PY=<python with torch and lightning>" >&2
    exit 2
fi

if ! "$PY" -c "import hydra, omegaconf, antlr4, munch" 2>/dev/null; then
    if compgen -G "wheels/*.whl" >/dev/null; then
        SITE=${TMPDIR:-/tmp}/lit_gans_gpu_check_site
        echo "[gpu_check.sh] installing $(ls wheels/*.whl | xargs -n1 basename | tr '\n' ' ')into $SITE"
        "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --upgrade \
            --target "$SITE" wheels/*.whl || { echo "error: installing wheels/ failed (see above)" >&2; exit 2; }
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if ! "$PY" -c "import hydra, omegaconf, antlr4" 2>/dev/null; then
        echo "error: hydra-core/omegaconf/antlr4 are not installed for $PY and wheels/ does not provide them:" \
             "run 'make wheels' where pip reaches PyPI and carry wheels/" >&2
        exit 2
    fi
fi

# The checkout itself, whether or not lit_gans is installed in this python.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import lit_gans.train, lit_gans.bench.gpu_check"; then
    echo "error: lit_gans does not import with $PY (the module named above is missing there)" >&2
    exit 2
fi

OUT_DIR=${GPU_CHECK_OUT:-${OUT:-.}}
mkdir -p "$OUT_DIR"
echo "[gpu_check.sh] $PY ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')), report in $OUT_DIR"
"$PY" -m lit_gans.bench.gpu_check --out-dir "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
