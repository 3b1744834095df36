"""Projection head: none / linear / 2-layer / 3-layer MLP, evaluating h and g(h) (SimCLR Figure 8).

    python -m rl_repr.sweep --sweep=configs/ablations/projection_head.py:digits --dir=workdirs/sweeps/head

Every cell linear-probes (and kNN-classifies) both the encoder output h and the head output
z = g(h) (``evaluate_head=True``). The paper's finding (Figure 8, Section 4.2): a nonlinear
head beats a linear one, which beats none, by several points of linear evaluation of h; and
h is much better than g(h) (g removes information the loss does not need). With no head
z = h, so both rows agree.

Arguments: 'digits' (the digits recipe, 150 epochs),
'digits_quick' (30 epochs), 'imagenet' (ResNet-50, 100 epochs, output 128), 'cifar10'.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RECIPES = {"digits": "simclr_digits.py", "digits_quick": "simclr_digits.py",
            "imagenet": "simclr_imagenet.py", "cifar10": "simclr_cifar10.py"}
HEADS = {0: "none", 1: "linear", 2: "2-layer MLP", 3: "3-layer MLP"}

LAYOUT = sweeps.TableLayout(
    rows="head.num_layers", row_label="projection head", value_labels=HEADS,
    metrics=("linear_probe_accuracy", "head_linear_probe_accuracy", "knn_accuracy", "head_knn_accuracy"),
    metric_labels={"linear_probe_accuracy": "h, linear", "head_linear_probe_accuracy": "g(h), linear",
                   "knn_accuracy": "h, kNN", "head_knn_accuracy": "g(h), kNN"})


def get_sweep(arg=None) -> sweeps.Sweep:
    arg = launch_arguments(arg, "configs/ablations/projection_head.py", tokens=tuple(_RECIPES),
                           exactly_one=tuple(_RECIPES)).tokens[0]
    base = sweeps.ablation_base(os.path.join(_CONFIGS, _RECIPES[arg]), quick=arg == "digits_quick",
                               evaluate_head=True)
    reduced = "Reduced budget, a first look; " if arg == "digits_quick" else ""
    note = (f"{reduced}Projection-head ablation ({arg}): {base.epochs:g} epochs, batch {base.batch_size}, "
            f"head output {base.head.output_dim}, hidden width = encoder width.")
    return sweeps.Sweep(name=f"projection_head-{arg}", base=base,
                        cells=sweeps.cells(sweeps.axis("head.num_layers", list(HEADS))), layout=LAYOUT,
                        description=note)
