"""Label smoothing under label noise (Szegedy et al. 2016; Müller et al. 2019; Lukasik et al. 2020).

    python experiments/study_label_smoothing.py            # writes experiments/results/label_smoothing/

Smoothing eps in {0, 0.05, 0.1, 0.2} (targets 1 - eps and eps / (k - 1), the slides' convention)
x symmetric training-label noise in {0, 20%, 40%} x 3 seeds, on ``configs/supervised_digits.py``
(MLP 256-256, Adam, 60 epochs: long enough to fit the wrong labels). Scores: test accuracy and
expected calibration error (15 bins). Published: smoothing lowers the calibration error and,
with noisy labels, raises test accuracy.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPSILONS = (0.0, 0.05, 0.1, 0.2)
NOISE = (0.0, 0.2, 0.4)
LAYOUT = sweeps.TableLayout(rows="label_smoothing", columns="label_noise", metrics=("test_accuracy",),
                            row_label="smoothing eps", column_label="noise")


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/label_smoothing.py", values={"seeds": int})
    base = load_config_file(os.path.join(_CONFIGS, "supervised_digits.py"))
    # seeds outermost: a first pass covers every setting once, later passes add seeds
    grid = sweeps.product(sweeps.axis("seed", list(range(args.get("seeds", 3)))), sweeps.axis("label_noise", NOISE),
                          sweeps.axis("label_smoothing", EPSILONS))
    return sweeps.Sweep(name="label_smoothing", base=base, cells=sweeps.cells(grid), layout=LAYOUT,
                        description="Label smoothing x label noise on digits (MLP).")
