"""Triplet / Siamese metric learning on the bundled digits: train on 0-4, one-shot on 5-9.

    python -m rl_repr.main --config=configs/metric_digits.py:semi_hard --workdir=/tmp/metric
    python -m rl_repr.main --config=configs/metric_digits.py:batch_hard,runlocal ...  # smoke run

The launch argument is a comma-separated list: one mining strategy (``batch_all``,
``batch_hard``, ``batch_hard_soft``, ``semi_hard`` [default], ``random_triplets``,
``siamese_pairs``), optionally one of the instance-term recipes, and optionally
``runlocal`` (a few steps, small evaluation):

* ``instance``: the strategy's loss at weight 0.1 plus NT-Xent (tau 0.1) between two
  augmented views of each image, on the flattened (position-keeping) conv trunk, with
  shifts and rotations added to the augmentation;
* ``instance_only``: the same without the labelled loss (exemplar learning on the
  training digits' images; the held-out digits are never seen, labelled or not).

    python -m rl_repr.main --config=configs/metric_digits.py:semi_hard,instance --workdir=...

The
held-out benchmarks are 5-way 1-shot and 5-shot episodes (600 each, 15 queries per class),
verification with 10-fold thresholds, and recall@k on digits 5-9 of both splits (~900
images the network never saw), next to raw pixels and the network at random init.
"""
from rl_repr.train.metric_learning_config import LOSSES, metric_learning_defaults


INSTANCE_RECIPES = ("instance", "instance_only")


def get_config(arg: str | None = None):
    tokens = [t for t in (arg or "").split(",") if t]
    unknown = [t for t in tokens if t not in LOSSES + INSTANCE_RECIPES and t != "runlocal"]
    if unknown or sum(t in LOSSES for t in tokens) > 1 or sum(t in INSTANCE_RECIPES for t in tokens) > 1:
        raise ValueError(f"configs/metric_digits.py takes one of {LOSSES}, optionally one of "
                         f"{INSTANCE_RECIPES}, and/or 'runlocal' (comma-separated), not {arg!r}.")
    c = metric_learning_defaults()
    c.loss = next((t for t in tokens if t in LOSSES), "semi_hard")
    c.dataset = "digits"
    c.eval_classes = (5, 6, 7, 8, 9)
    c.classes_per_batch = 5       # all five training classes in every batch
    c.examples_per_class = 16     # global batch 80 (a multiple of 8 devices)
    c.model.update(architecture="conv", conv_widths=(32, 64, 128), norm="batch", embedding_dim=64)
    c.margin = 0.2
    c.pair_margin = 1.0
    c.num_steps = 400
    c.warmup_steps = 20
    c.optimizer = "adamw"
    c.base_lr = 3e-3
    c.weight_decay = 1e-4
    c.checkpoint_every_steps = 200
    c.log_every_steps = 50
    if any(t in INSTANCE_RECIPES for t in tokens):
        # NT-Xent keeps what tells images apart inside a class (see experiments/compare_mining.py
        # for what each piece adds); flattening keeps where the strokes are.
        c.instance_weight = 1.0
        c.metric_weight = 0.0 if "instance_only" in tokens else 0.1
        c.instance_temperature = 0.1
        c.model.global_pool = False
        c.augment.update(translate_fraction=0.15, rotate_degrees=15.0)
    if "runlocal" in tokens:
        c.num_steps = 10
        c.warmup_steps = 2
        c.examples_per_class = 8
        c.model.conv_widths = (8, 16)
        c.eval.update(num_episodes=100, num_pairs=400)
        c.baselines = False
    return c
