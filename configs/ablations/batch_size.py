"""Batch size x training epochs x LR scaling: SimCLR Figure 9 / Table B.1 (Chen et al. 2020).

    python -m rl_repr.sweep --sweep=configs/ablations/batch_size.py:digits --dir=workdirs/sweeps/batch_size
    python -m rl_repr.sweep --sweep=configs/ablations/batch_size.py:imagenet --dir=gs://.../batch_size

Arguments:
  imagenet  the paper's grid: ResNet-50, batch 256...8192 x 100/200/400/800 epochs, LARS with
            0.3 x B/256 (linear) or 0.075 x sqrt(B) (sqrt), as in Table B.1. A pod's job.
  cifar10   the same axes on the CIFAR-10 recipe (ResNet-18, Appendix B.9): batch 256...4096 x
            100/200/400/800 epochs; linear 1.0 x B/256 (the recipe) and a sqrt base chosen so
            both scalings give the recipe's LR at its batch of 512.
  digits    the offline grid on the bundled digits (1,437 training images): batch 32...1024 x
            10/25/50 epochs x both scalings, 36 cells (``--list`` prints the expected time
            from the cost model below). sqrt keeps the recipe's base 0.3; linear's base
            (4.8) gives the same LR at the recipe's batch of 256.
  digits_quick  a 12-cell subset (batch 64/256/1024 x 5/15 epochs) for a first look.

Warmup: the paper's 10 epochs on ImageNet and CIFAR-10; on digits 10% of each budget (10 of 100,
as in the paper, where a fixed 10 would be all of the shortest budget). The shape to look for
(Table B.1): larger batches help most when training is short, and the gap closes as it
lengthens; sqrt scaling beats linear at small batches and short training.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_TRAIN_IMAGES = 1437
# Cost model of the digits recipe for that estimate (a small CPU): ~0.2 s per 256-image step, and
# about 20 s per cell to build, compile, checkpoint and evaluate.
SECONDS_PER_IMAGE = 0.2 / 256
SECONDS_PER_CELL = 20.0

LAYOUT = sweeps.TableLayout(rows="batch_size", columns="epochs", split="lr_scaling",
                     metrics=("linear_probe_accuracy", "knn_accuracy"), row_label="batch size",
                     column_label="epochs", metric_labels={"linear_probe_accuracy": "linear evaluation",
                                                           "knn_accuracy": "kNN"})


def _epochs(values, warmup_epochs=None):
    """Epoch budgets; warmup fixed (the paper's 10 epochs) or, when None, 10% of each budget."""
    return [{"epochs": float(e), "warmup_epochs": float(warmup_epochs if warmup_epochs is not None else 0.1 * e)}
            for e in values]


def _scalings(linear_base: float, sqrt_base: float):
    return [{"lr_scaling": "linear", "base_lr": linear_base}, {"lr_scaling": "sqrt", "base_lr": sqrt_base}]


def digits_cost_seconds(batch_sizes, epochs, num_scalings: int = 2) -> float:
    """Expected wall time of a digits grid: images processed x seconds per image + per-cell cost."""
    images = sum((DIGITS_TRAIN_IMAGES // b) * b * e for b in batch_sizes for e in epochs) * num_scalings
    cells = len(batch_sizes) * len(epochs) * num_scalings
    return images * SECONDS_PER_IMAGE + cells * SECONDS_PER_CELL


def get_sweep(arg=None) -> sweeps.Sweep:
    grids = ("digits", "digits_quick", "imagenet", "cifar10")
    arg = launch_arguments(arg, "configs/ablations/batch_size.py", tokens=grids, exactly_one=grids).tokens[0]
    warmup = 10.0
    if arg in ("digits", "digits_quick"):
        batch_sizes, epochs = ((32, 64, 128, 256, 512, 1024), (10, 25, 50)) if arg == "digits" else \
            ((64, 256, 1024), (5, 15))
        base = sweeps.ablation_base(os.path.join(_CONFIGS, "simclr_digits.py"))
        scalings = _scalings(linear_base=0.3 * 256 ** 0.5, sqrt_base=0.3)  # both 4.8 at B=256
        warmup = None
        minutes = digits_cost_seconds(batch_sizes, epochs) / 60
        reduced = "Reduced grid, a first look; " if arg == "digits_quick" else ""
        note = (f"{reduced}Offline reproduction on digits ({arg}): ResNet-18 x0.25, batch sizes {list(batch_sizes)}, "
                f"epochs {list(epochs)}, LARS with linear (4.8 x B/256) or sqrt (0.3 x sqrt(B)) LR scaling; "
                f"expected about {minutes:.0f} min on a small idle CPU.")
    elif arg == "imagenet":
        batch_sizes, epochs = (256, 512, 1024, 2048, 4096, 8192), (100, 200, 400, 800)
        base = load_config_file(os.path.join(_CONFIGS, "simclr_imagenet.py"))
        scalings = _scalings(linear_base=0.3, sqrt_base=0.075)
        note = "SimCLR Table B.1: ResNet-50 on ImageNet, LARS 0.3 x B/256 (linear) or 0.075 x sqrt(B) (sqrt)."
    elif arg == "cifar10":
        batch_sizes, epochs = (256, 512, 1024, 2048, 4096), (100, 200, 400, 800)
        base = load_config_file(os.path.join(_CONFIGS, "simclr_cifar10.py"))
        scalings = _scalings(linear_base=1.0, sqrt_base=1.0 * 512 / 256 / 512 ** 0.5)
        note = "SimCLR Appendix B.9 axes on CIFAR-10: ResNet-18, LARS 1.0 x B/256 (linear) or 0.088 x sqrt(B)."
    # Epochs vary slowest: a sweep stopped part-way has whole short-training columns first.
    grid = sweeps.product(_epochs(epochs, warmup), sweeps.axis("batch_size", batch_sizes), scalings)
    return sweeps.Sweep(name=f"batch_size-{arg}", base=base,
                        cells=sweeps.cells(grid, name_keys=("batch_size", "epochs", "lr_scaling")),
                        layout=LAYOUT, description=note)
