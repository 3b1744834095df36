"""Which single change lifts MoCo v2 on digits towards SimCLR? One-factor search at the study budget.

    python -m rl_repr.sweep --sweep=configs/ablations/moco_recipe_search.py:seed=0 \\
        --dir=workdirs/sweeps/moco_recipe_search-seed0

The offline recipe (``configs/moco_digits.py``, v2 at batch 256 then) trailed the SimCLR demo by 2.4 points of
linear probe. Each cell changes one setting of the MoCo studies' base (``moco_table1.moco_study_base``:
v2, 1/8-width ResNet-18, 30 epochs, K = 1,024, m = 0.99, temperature 0.2, SGD 0.12): the
temperature, the learning rate, batch norm in the head, SimCLR's optimizer (LARS 0.3 x sqrt(B),
weight decay 1e-5), v1's augmentation, and m = 0.999. Compare with Table 1's v1 and v2 cells of
the same seed (``moco_table1.py``) and SimCLR's 256 cell (``moco_table2.py``).
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import import_recipe_file, launch_arguments

_TABLE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_table1.py")
moco_table1 = import_recipe_file(_TABLE1, None, "sweep", "moco_study_base", _TABLE1)[0]

LAYOUT = sweeps.TableLayout(rows="seed", row_label="seed", metrics=("linear_probe_accuracy", "knn_accuracy"))


def get_sweep(arg=None) -> sweeps.Sweep:
    seed = launch_arguments(arg, "configs/ablations/moco_recipe_search.py", values={"seed": int}).get("seed", 0)
    v1_aug, _ = moco_table1.augmentations()
    changes = {
        "t0.1": {"temperature": 0.1}, "t0.5": {"temperature": 0.5},
        "lr0.3": {"base_lr": 0.3}, "lr0.03": {"base_lr": 0.03},
        "headbn": {"head.norm": "batch"},
        "lars": {"optimizer": "lars", "base_lr": 0.3, "lr_scaling": "sqrt", "weight_decay": 1e-5},
        "v1aug": v1_aug, "m0.999": {"key_momentum": 0.999},
    }
    cells = tuple(sweeps.Cell(name, {**change, "seed": seed}) for name, change in changes.items())
    base = moco_table1.moco_study_base()
    note = (f"MoCo v2 on digits, seed {seed}, one change per cell from the studies' base: {base.epochs:g} epochs, "
            f"batch {base.batch_size}, K = {base.queue_size}, m = {base.key_momentum}, 1/8-width ResNet-18.")
    return sweeps.Sweep(name=f"moco_recipe_search-seed{seed}", base=base, cells=cells, layout=LAYOUT,
                        description=note)
