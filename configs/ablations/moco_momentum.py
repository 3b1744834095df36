"""Key-encoder momentum m on digits: MoCo's momentum ablation (He et al. 2020, Section 4.1).

    python -m rl_repr.sweep --sweep=configs/ablations/moco_momentum.py:seed=0 --dir=workdirs/sweeps/moco_momentum-seed0

The paper (ResNet-50, K = 4096): m = 0 fails to train; 0.9: 55.2; 0.99: 57.8; 0.999: 59.0;
0.9999: 58.9. Its ImageNet runs take ~1,000 times more steps than the study budget here (150), and
the key encoder's time constant is 1 / (1 - m) steps, so expect the optimum at a smaller m.
MoCo v2 at the study budget; one sweep per seed, ``rl_repr.sweeps.seed_summary`` for mean ± std.
"""
import os

from rl_repr.core.recipes import import_recipe_file

_TABLE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_table1.py")
one_axis_sweep = import_recipe_file(_TABLE1, None, "sweep", "one_axis_sweep", _TABLE1)[0].one_axis_sweep

MOMENTA = (0.0, 0.9, 0.99, 0.999, 0.9999)


def get_sweep(arg=None):
    return one_axis_sweep("moco_momentum", arg, "key_momentum", MOMENTA, lambda m: f"m={m:g}", "momentum m",
                          lambda base, seed: (f"Key momentum on digits, seed {seed}: MoCo v2, {base.epochs:g} epochs, "
                                              f"batch {base.batch_size}, K = {base.queue_size}."))
