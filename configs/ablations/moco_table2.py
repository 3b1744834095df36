"""MoCo v2's Table 2 question on digits: SimCLR at MoCo's batch and at the largest batch, equal epochs.

    python -m rl_repr.sweep --sweep=configs/ablations/moco_table2.py:seed=0 --dir=workdirs/sweeps/moco_table2-seed0
    python -m rl_repr.sweeps.seed_summary --sweeps workdirs/sweeps/moco_table1-seed{0,1,2} \\
        workdirs/sweeps/moco_table2-seed{0,1,2} --cells v2 simclr-b256 simclr-b1024 ...

The paper (ImageNet, 200 epochs): MoCo v2 at batch 256 67.5; SimCLR at batch 256 61.9, and it
needs batch 8192 for 66.6. These are the SimCLR cells: the digits SimCLR recipe at the MoCo
studies' budget (1/8-width ResNet-18, 30 epochs, 10% warmup) at batch 256 and 1024 (the largest
power of two the 1,437 training digits allow: one step per epoch); the MoCo v2 row is the ``v2``
cell of ``moco_table1.py`` with the same seed.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = sweeps.TableLayout(rows="batch_size", row_label="SimCLR batch", metrics=("linear_probe_accuracy", "knn_accuracy"))


def get_sweep(arg=None) -> sweeps.Sweep:
    seed = launch_arguments(arg, "configs/ablations/moco_table2.py", values={"seed": int}).get("seed", 0)
    base = sweeps.ablation_base(os.path.join(_CONFIGS, "simclr_digits.py"), epochs=30.0, warmup_epochs=3.0)
    base.model.width_multiplier = 0.125
    cells = tuple(sweeps.Cell(f"simclr-b{b}", {"batch_size": b, "seed": seed}) for b in (256, 1024))
    note = f"SimCLR on digits at the MoCo studies' budget, seed {seed}: {base.epochs:g} epochs, 1/8-width ResNet-18."
    return sweeps.Sweep(name=f"moco_table2-seed{seed}", base=base, cells=cells, layout=LAYOUT, description=note)
