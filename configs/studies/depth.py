"""Plain against residual networks as they deepen (He et al. 2016, Section 4.2 and Figure 6).

    python experiments/study_depth.py                      # trains the cells, writes experiments/results/depth/
    python -m rl_repr.sweep --sweep=configs/studies/depth.py --dir=workdirs/studies/depth   # the cells alone

The published shape: plain networks get a *higher training error* as they deepen (plain-56
above plain-20 throughout training; not overfitting, an optimisation difficulty), while
residual networks get a lower one (residual-56 below residual-20). Cells: depth 20 and 56 (and
110 with the argument 'with110') x plain / residual on ``configs/supervised_characters.py``
(half-width, 20 made-up character classes at 16x16, 8 epochs), one seed (argument
``seeds=N`` for more), the train/test monitor every epoch.
"""
from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file
import os

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = sweeps.TableLayout(rows="model.depth", columns="model.residual", metrics=("train_accuracy",),
                            row_label="depth", value_labels={False: "plain", True: "residual"})


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/depth.py", tokens=("with110",), values={"seeds": int})
    base = load_config_file(os.path.join(_CONFIGS, "supervised_characters.py"))
    depths = (20, 56, 110) if "with110" in args else (20, 56)
    grid = sweeps.product(sweeps.axis("model.depth", depths), sweeps.axis("model.residual", [False, True]),
                          sweeps.axis("seed", list(range(args.get("seeds", 1)))))
    return sweeps.Sweep(name="depth", base=base, cells=sweeps.cells(grid), layout=LAYOUT,
                        description="Plain vs residual CIFAR-style ResNets on made-up characters (He et al. 2016 Fig. 6).")
