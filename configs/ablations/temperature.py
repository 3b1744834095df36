"""NT-Xent temperature: SimCLR Table 5 (Chen et al. 2020, Section 5.1).

    python -m rl_repr.sweep --sweep=configs/ablations/temperature.py:digits --dir=workdirs/sweeps/temperature

The paper (l2-normalised embeddings, ResNet-50, 100 epochs, batch 4096) finds an interior
optimum: tau = 0.1 best on ImageNet, with 0.05 and 0.5 to 1 worse; CIFAR-10 prefers 0.5.

Arguments: 'digits' (tau 0.05...1 on the digits recipe, 150 epochs), 'digits_quick' (30
epochs), 'imagenet', 'cifar10'.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RECIPES = {"digits": "simclr_digits.py", "digits_quick": "simclr_digits.py",
            "imagenet": "simclr_imagenet.py", "cifar10": "simclr_cifar10.py"}
TEMPERATURES = (0.05, 0.1, 0.2, 0.5, 1.0)

LAYOUT = sweeps.TableLayout(rows="temperature", row_label="temperature",
                     metrics=("linear_probe_accuracy", "knn_accuracy"),
                     metric_labels={"linear_probe_accuracy": "linear evaluation", "knn_accuracy": "kNN"})


def get_sweep(arg=None) -> sweeps.Sweep:
    arg = launch_arguments(arg, "configs/ablations/temperature.py", tokens=tuple(_RECIPES),
                           exactly_one=tuple(_RECIPES)).tokens[0]
    base = sweeps.ablation_base(os.path.join(_CONFIGS, _RECIPES[arg]), quick=arg == "digits_quick")
    reduced = "Reduced budget, a first look; " if arg == "digits_quick" else ""
    note = f"{reduced}Temperature ablation ({arg}): {base.epochs:g} epochs, batch {base.batch_size}."
    return sweeps.Sweep(name=f"temperature-{arg}", base=base,
                        cells=sweeps.cells(sweeps.axis("temperature", TEMPERATURES)), layout=LAYOUT,
                        description=note)
