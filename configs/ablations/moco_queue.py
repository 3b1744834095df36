"""Queue size K on digits: MoCo's Figure 3 question (He et al. 2020: larger K helps, 256 to 65536).

    python -m rl_repr.sweep --sweep=configs/ablations/moco_queue.py:seed=0 --dir=workdirs/sweeps/moco_queue-seed0

K from one batch (256) up to the training set: a multiple of the batch, at most the 1,437
training digits, so 256, 512, 768, 1024 and 1280. MoCo v2 at the study budget
(``moco_table1.moco_study_base``); one sweep per seed, ``rl_repr.sweeps.seed_summary`` for mean ± std.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import import_recipe_file, launch_arguments

_TABLE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_table1.py")
moco_study_base = import_recipe_file(_TABLE1, None, "sweep", "moco_study_base", _TABLE1)[0].moco_study_base

QUEUE_SIZES = (256, 512, 768, 1024, 1280)
LAYOUT = sweeps.TableLayout(rows="queue_size", row_label="queue size K",
                            metrics=("linear_probe_accuracy", "knn_accuracy"))


def get_sweep(arg=None) -> sweeps.Sweep:
    seed = launch_arguments(arg, "configs/ablations/moco_queue.py", values={"seed": int}).get("seed", 0)
    base = moco_study_base()
    cells = tuple(sweeps.Cell(f"K={k}", {"queue_size": k, "seed": seed}) for k in QUEUE_SIZES)
    note = f"Queue size on digits, seed {seed}: MoCo v2, {base.epochs:g} epochs, batch {base.batch_size}, m = {base.key_momentum}."
    return sweeps.Sweep(name=f"moco_queue-seed{seed}", base=base, cells=cells, layout=LAYOUT, description=note)
