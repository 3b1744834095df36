"""Response-based knowledge distillation (Hinton, Vinyals & Dean 2015) on the bundled digits.

    python experiments/study_distillation.py               # trains the teacher, then the cells
    python -m rl_repr.main --config=configs/supervised_digits.py:teacher --workdir=workdirs/studies/distillation/teacher
    python -m rl_repr.sweep --sweep=configs/studies/distillation.py:teacher=workdirs/studies/distillation/teacher \
        --dir=workdirs/studies/distillation

A wide teacher (``configs/supervised_digits.py:teacher``: MLP 1200-1200 with 1-pixel
translations) and a small student (one hidden layer of 32 units, no augmentation): the student
alone, and distilled with temperature T in {1, 4, 8} and soft-target weight alpha in {0.5, 0.9},
3 seeds each. Published (MNIST): large net 67 test errors, small net 146, small net distilled 74.
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENT_HIDDEN = (32,)
LAYOUT = sweeps.TableLayout(rows="teacher.temperature", columns="teacher.alpha", metrics=("test_accuracy",))


def get_sweep(arg=None) -> sweeps.Sweep:
    args = launch_arguments(arg, "configs/studies/distillation.py", values={"seeds": int, "teacher": str})
    base = load_config_file(os.path.join(_CONFIGS, "supervised_digits.py"))
    base.model.hidden = STUDENT_HIDDEN
    seeds = sweeps.axis("seed", list(range(args.get("seeds", 3))))
    teacher = os.path.abspath(args.get("teacher", os.path.join(os.path.dirname(_CONFIGS), "workdirs", "studies",
                                                               "distillation", "teacher")))
    settings = [{"teacher.workdir": "", "teacher.temperature": 1.0, "teacher.alpha": 0.0}] + sweeps.product(
        [{"teacher.workdir": teacher}], sweeps.axis("teacher.temperature", [1.0, 4.0, 8.0]),
        sweeps.axis("teacher.alpha", [0.5, 0.9]))
    cells = sweeps.cells(sweeps.product(seeds, settings),  # seeds outermost
                         name_keys=("teacher.temperature", "teacher.alpha", "seed"))
    return sweeps.Sweep(name="distillation", base=base, cells=cells, layout=LAYOUT,
                        description="Student alone vs distilled from a wide teacher (Hinton et al. 2015).")
