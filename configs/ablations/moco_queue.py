"""Queue size K on digits: MoCo's Figure 3 question (He et al. 2020: larger K helps, 256 to 65536).

    python -m rl_repr.sweep --sweep=configs/ablations/moco_queue.py:seed=0 --dir=workdirs/sweeps/moco_queue-seed0
    python -m rl_repr.sweep --sweep=configs/ablations/moco_queue.py:seed=0,own_image_out \
        --dir=workdirs/sweeps/moco_queue-own_image_out-seed0

K from one batch (256) up to the training set: a multiple of the batch, at most the 1,437
training digits, so 256, 512, 768, 1024 and 1280. MoCo v2 at the study budget
(``moco_table1.moco_study_base``); one sweep per seed, ``rl_repr.sweeps.seed_summary`` for mean ± std.

``own_image_out``: the same with the queue's keys of a query's own image left out of its negatives.
A longer queue holds more of them (at batch 256: 3% of queries meet one at K = 256, 36% at
K = 1,024, 54% at K = 1,280), so without it a longer queue brings more negatives and more false
ones at once.
"""
import os

from rl_repr.core.recipes import import_recipe_file

_TABLE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_table1.py")
one_axis_sweep = import_recipe_file(_TABLE1, None, "sweep", "one_axis_sweep", _TABLE1)[0].one_axis_sweep

QUEUE_SIZES = (256, 512, 768, 1024, 1280)


def get_sweep(arg=None):
    return one_axis_sweep("moco_queue", arg, "queue_size", QUEUE_SIZES, lambda k: f"K={k}", "queue size K",
                          lambda base, seed: (f"Queue size on digits, seed {seed}: MoCo v2, {base.epochs:g} epochs, "
                                              f"batch {base.batch_size}, m = {base.key_momentum}."))
