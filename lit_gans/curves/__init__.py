"""Look back at past runs: ``python -m lit_gans.curves RUN_DIR... [--out DIR] [--explain] [--html]``.

Reads the TensorBoard event files (or ``loss_history.jsonl``) of one or several runs, writes one PNG per curve
group with epoch means and per-step bands, runs overlaid, and with ``--explain`` says what each curve is and
flags patterns worth a look (:mod:`lit_gans.curves.rules`).
"""

from lit_gans.curves.explain import Explanation, explain_curve
from lit_gans.curves.reading import Curve, Run, load_runs
from lit_gans.curves.report import explain_runs, plot_runs
from lit_gans.curves.rules import RULES, Finding, check_run

__all__ = ["Curve", "Explanation", "Finding", "RULES", "Run", "check_run", "explain_curve", "explain_runs",
           "load_runs", "plot_runs"]
