"""Greedy layer-wise pretraining (Bengio et al. 2007; Hinton et al. 2006) against random
initialisation, with 1%, 10% and 100% of the labels.

    python experiments/study_greedy_pretraining.py         # writes experiments/results/greedy_pretraining/

An MLP of three hidden layers of 256 units on the bundled digits, each layer first trained
alone as an autoencoder on all 1,437 training images (1,000 Adam steps per layer), then the
whole network fine-tuned with the labels of a class-balanced 1% (10 images), 10% (144) or 100%
(1,437) of them for about 600 steps (Adam 1e-3). Twice: sigmoid units and no norm (where
pretraining helped historically), and ReLU units with batch norm (where modern techniques
make it unnecessary: the slides' point). 3 seeds.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES = 1437
LABELLED = {0.01: 10, 0.1: 144, 1.0: 1437}   # images kept per fraction (at least one per class)
STEPS = 600
UNITS = ({"model.activation": "sigmoid", "model.norm": "none"}, {"model.activation": "relu", "model.norm": "batch"})
LAYOUT = sweeps.TableLayout(rows="label_fraction", columns="greedy_pretraining.enabled", metrics=("test_accuracy",))


def _fractions():
    """Each fraction with a batch that fits its labelled images and epochs that make ~STEPS steps."""
    return [{"label_fraction": f, "batch_size": min(32, n), "epochs": round(STEPS * min(32, n) / n, 2)}
            for f, n in LABELLED.items()]


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/greedy_pretraining.py", values={"seeds": int})
    base = load_config_file(os.path.join(_CONFIGS, "supervised_digits.py"))
    base.model.hidden = (256, 256, 256)
    base.greedy_pretraining.update(steps_per_layer=1000, learning_rate=1e-3, batch_size=64)
    grid = sweeps.product(sweeps.axis("seed", list(range(args.get("seeds", 3)))), UNITS, _fractions(),  # seeds outermost
                          sweeps.axis("greedy_pretraining.enabled", [False, True]))
    cells = sweeps.cells(grid, name_keys=("model.activation", "model.norm", "label_fraction",
                                          "greedy_pretraining.enabled", "seed"))
    return sweeps.Sweep(name="greedy_pretraining", base=base, cells=cells, layout=LAYOUT,
                        description="Greedy layer-wise autoencoder pretraining vs random init on digits.")
