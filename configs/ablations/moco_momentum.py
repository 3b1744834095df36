"""Key-encoder momentum m on digits: MoCo's momentum ablation (He et al. 2020, Section 4.1).

    python -m rl_repr.sweep --sweep=configs/ablations/moco_momentum.py:seed=0 --dir=workdirs/sweeps/moco_momentum-seed0

The paper (ResNet-50, K = 4096): m = 0 fails to train; 0.9: 55.2; 0.99: 57.8; 0.999: 59.0;
0.9999: 58.9. Its ImageNet runs take ~1,000 times more steps than the study budget here (150), and
the key encoder's time constant is 1 / (1 - m) steps, so expect the optimum at a smaller m.
MoCo v2 at the study budget; one sweep per seed, ``rl_repr.sweeps.seed_summary`` for mean ± std.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import import_recipe_file, launch_arguments

_TABLE1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_table1.py")
moco_study_base = import_recipe_file(_TABLE1, None, "sweep", "moco_study_base", _TABLE1)[0].moco_study_base

MOMENTA = (0.0, 0.9, 0.99, 0.999, 0.9999)
LAYOUT = sweeps.TableLayout(rows="key_momentum", row_label="momentum m",
                            metrics=("linear_probe_accuracy", "knn_accuracy"))


def get_sweep(arg=None) -> sweeps.Sweep:
    seed = launch_arguments(arg, "configs/ablations/moco_momentum.py", values={"seed": int}).get("seed", 0)
    base = moco_study_base()
    cells = tuple(sweeps.Cell(f"m={m:g}", {"key_momentum": m, "seed": seed}) for m in MOMENTA)
    note = f"Key momentum on digits, seed {seed}: MoCo v2, {base.epochs:g} epochs, batch {base.batch_size}, K = {base.queue_size}."
    return sweeps.Sweep(name=f"moco_momentum-seed{seed}", base=base, cells=cells, layout=LAYOUT, description=note)
