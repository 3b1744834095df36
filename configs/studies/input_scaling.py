"""Input standardisation (the slides' house-price example): raw vs standardised features.

    python experiments/study_input_scaling.py              # writes experiments/results/input_scaling/

An MLP with Adam (``configs/supervised_tabular.py``) on scikit-learn's bundled breast-cancer
table, whose 30 features span five orders of magnitude (means 0.004 to 881), with the raw
features or with each feature standardised by the training rows' mean and standard deviation;
3 seeds each; training and validation loss and accuracy every epoch. The published shape
(slides 003): the standardised run trains faster and generalises better.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = sweeps.TableLayout(rows="standardize_inputs", columns="seed", metrics=("test_accuracy",))


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/input_scaling.py", values={"seeds": int, "dataset": str})
    base = load_config_file(os.path.join(_CONFIGS, "supervised_tabular.py"),
                            f"dataset={args.get('dataset', 'breast_cancer')}")
    grid = sweeps.product(sweeps.axis("standardize_inputs", [False, True]),
                          sweeps.axis("seed", list(range(args.get("seeds", 3)))))
    return sweeps.Sweep(name="input_scaling", base=base, cells=sweeps.cells(grid), layout=LAYOUT,
                        description="Raw vs standardised features, MLP + Adam on a bundled table.")
