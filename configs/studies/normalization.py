"""Normalisation against the per-device batch (Wu & He 2018, "Group Normalization", Figure 5).

    python experiments/study_normalization.py               # trains the cells, writes experiments/results/normalization/
    python -m rl_repr.sweep --sweep=configs/studies/normalization.py --dir=workdirs/studies/normalization --devices=8

Eight simulated devices, each normalising over its own rows (``parallel='shard_map'``,
``global_bn=False``: the per-GPU statistics of the paper), per-device batch 2, 4, 8, 16, 32:
batch, group (4 groups), layer and instance norm and none; plus batch norm with cross-device
statistics (``global_bn=True``) at the same sizes, the fix. Published shape: batch norm's error
rises as the per-device batch shrinks (ResNet-50 on ImageNet: 23.6% at 32, ~34.7% at 2), group
norm's stays flat. Base: ``configs/supervised_characters.py`` at depth 8 (half width, 20 made-up
character classes at 16x16), 6 epochs, learning rate 0.2 x B / 256 (the paper's linear scaling),
one seed (``seeds=N`` for more); ``quick``: 2, 8 and 32 images per device only (the same cells).
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 8
PER_DEVICE_BATCHES = (2, 4, 8, 16, 32)
NORMS = ({"model.norm": "batch", "global_bn": False}, {"model.norm": "group", "global_bn": False},
         {"model.norm": "batch", "global_bn": True}, {"model.norm": "layer", "global_bn": False},
         {"model.norm": "instance", "global_bn": False}, {"model.norm": "none", "global_bn": False})
LAYOUT = sweeps.TableLayout(rows="batch_size", columns="model.norm", split="global_bn",
                            metrics=("test_accuracy",), row_label="global batch")


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/normalization.py", tokens=("quick",),
                            values={"seeds": int, "epochs": float})
    # the ends first, so that a partial run already shows the shape
    batches = (2, 32, 8) if "quick" in args else (2, 32, 8, 4, 16)
    base = load_config_file(os.path.join(_CONFIGS, "supervised_characters.py"))
    base.update(parallel="shard_map", cpu_devices=DEVICES, num_devices=DEVICES, epochs=args.get("epochs", 6.0),
                eval_every_steps=0, checkpoint_every_steps=250, log_every_steps=50)
    base.model.update(depth=8, num_groups=4)
    grid = sweeps.product(sweeps.axis("seed", list(range(args.get("seeds", 1)))),
                          sweeps.axis("batch_size", [DEVICES * b for b in batches]), NORMS)
    return sweeps.Sweep(name="normalization", base=base, cells=sweeps.cells(grid), layout=LAYOUT,
                        description="Per-device normalisation on 8 simulated devices (Wu & He 2018, Figure 5).")
