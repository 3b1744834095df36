"""MoCo v2's Table 1 on digits: what each of v2's three changes adds to v1 (Chen et al. 2020).

    python -m rl_repr.sweep --sweep=configs/ablations/moco_table1.py:seed=0 --dir=workdirs/sweeps/moco_table1-seed0
    python -m rl_repr.sweeps.seed_summary --sweeps workdirs/sweeps/moco_table1-seed{0,1,2} \\
        --out experiments/results/moco-table1-digits --title "MoCo v2 Table 1 on digits"

One sweep per seed (``seed=N``); ``rl_repr.sweeps.seed_summary`` gives mean ± std over the seeds.
Rows as in the paper (ImageNet linear accuracy, 200 epochs): v1 60.6; + MLP 66.2; + aug+ 63.4;
+ MLP + aug+ 67.3; + cosine (= v2) 67.5. The MLP rows use temperature 0.2, the others v1's 0.07
(the paper's optimum for each). Augmentations as in ``configs/moco_digits.py`` (v1's and aug+,
mapped to 8x8 grey digits); v1's steps drop the learning rate x0.1 at 60% and 80% of the run.
The study budget (``moco_study_base``): a 1/8-width ResNet-18, 30 epochs (150 steps).
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments, load_config_file

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = sweeps.TableLayout(rows="head.num_layers", columns="augment.rotate_degrees", split="lr_schedule",
                            row_label="head", column_label="", metrics=("linear_probe_accuracy", "knn_accuracy"),
                            value_labels={1: "linear (v1)", 2: "MLP", 0.0: "v1 aug", 12.0: "aug+"})


def moco_study_base(**overrides):
    """The MoCo studies' shared base: the digits recipe (v2) at a study budget, batch 256 (the papers'
    and the recipe's until it moved to 128), key momentum 0.99 (the recipe's until it moved to 0.995
    for its 2,475 steps; the studies' 150 steps want the faster key encoder)."""
    base = sweeps.ablation_base(os.path.join(_CONFIGS, "moco_digits.py"), epochs=30.0, warmup_epochs=3.0,
                                lr_decay_epochs=(18.0, 24.0), batch_size=256,
                                **{"key_momentum": 0.99, **overrides})
    base.model.width_multiplier = 0.125
    return base


def one_axis_sweep(study: str, arg, key: str, values, cell_name, row_label: str, note) -> sweeps.Sweep:
    """The sweep ``<study>-seed<N>`` of MoCo v2 at the study budget with ``key`` set to each of
    ``values`` (cells named ``cell_name(value)``); ``note(base, seed)`` describes it. The launch
    argument ``own_image_out`` leaves the queue's keys of a query's own image out of its negatives
    (``config.queue_excludes_own_image``), as a sweep ``<study>-own_image_out-seed<N>``."""
    args = launch_arguments(arg, f"configs/ablations/{study}.py", tokens=("own_image_out",), values={"seed": int})
    seed, own_image_out = args.get("seed", 0), "own_image_out" in args
    base = moco_study_base(queue_excludes_own_image=own_image_out)
    cells = tuple(sweeps.Cell(cell_name(value), {key: value, "seed": seed}) for value in values)
    layout = sweeps.TableLayout(rows=key, row_label=row_label, metrics=("linear_probe_accuracy", "knn_accuracy"))
    name = f"{study}{'-own_image_out' if own_image_out else ''}-seed{seed}"
    description = note(base, seed) + (" The queue's keys of a query's own image are left out of its negatives."
                                      if own_image_out else "")
    return sweeps.Sweep(name=name, base=base, cells=cells, layout=layout, description=description)


def augmentations() -> tuple[dict, dict]:
    """The ``augment.*`` overrides of the digits recipe's v1 and v2 ("aug+") augmentations (the keys
    where they differ)."""
    v1, v2 = (load_config_file(os.path.join(_CONFIGS, "moco_digits.py"), v).augment for v in ("v1", "v2"))
    differ = [key for key in v1 if v1[key] != v2[key]]
    return ({f"augment.{key}": v1[key] for key in differ}, {f"augment.{key}": v2[key] for key in differ})


def get_sweep(arg=None) -> sweeps.Sweep:
    seed = launch_arguments(arg, "configs/ablations/moco_table1.py", values={"seed": int}).get("seed", 0)
    linear, mlp = {"head.num_layers": 1, "temperature": 0.07}, {"head.num_layers": 2, "temperature": 0.2}
    v1_aug, aug_plus = augmentations()
    steps, cosine = {"lr_schedule": "steps", "seed": seed}, {"lr_schedule": "cosine", "seed": seed}
    cells = (sweeps.Cell("v1", {**linear, **v1_aug, **steps}), sweeps.Cell("v1+mlp", {**mlp, **v1_aug, **steps}),
             sweeps.Cell("v1+aug+", {**linear, **aug_plus, **steps}),
             sweeps.Cell("v1+mlp+aug+", {**mlp, **aug_plus, **steps}), sweeps.Cell("v2", {**mlp, **aug_plus, **cosine}))
    base = moco_study_base()
    note = (f"MoCo v2 Table 1 on digits, seed {seed}: {base.epochs:g} epochs, batch {base.batch_size}, "
            f"K = {base.queue_size}, m = {base.key_momentum}, 1/8-width ResNet-18; each cell lr_schedule steps/cosine.")
    return sweeps.Sweep(name=f"moco_table1-seed{seed}", base=base, cells=cells, layout=LAYOUT, description=note)
