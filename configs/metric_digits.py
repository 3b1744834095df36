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

More training classes (digits 5-9 stay held out, never seen labelled or not), any of:

* ``rotations`` / ``rotations_flips``: the digits 0-4 turned by 90/180/270 degrees (and
  mirrored) are new classes (Santoro et al. 2016; Vinyals et al. 2016): 20 / 40 classes;
* ``glyphs``: 39 printed letters rendered from matplotlib's fonts the way the digits were
  made (``rl_repr.data.rendered_glyphs``), 100 images each, one class per letter;
* ``strokes``: 3000 made-up handwritten characters (random pen trajectories written by
  jittered, bending hands, ``rl_repr.data.stroke_characters``), 10 images each; 2000 steps,
  no image augmentation (the made-up hands already vary each character) and a conv trunk
  twice as wide (64, 128, 256).

With any of them, PK batches hold 16 classes x 5 images (still 80). ``flat`` puts a 128-d
embedding on the flattened (position-keeping) trunk. More classes lift semi-hard from 53%
to 69% 5-way 1-shot on 5-9 (72% with ``flat``, raw pixels' level: 72.8%), and the made-up
characters to 83.5% (3 seeds; experiments/results/mining_comparison.md): 10.7 points above
raw pixels. The default stays plain semi-hard, FaceNet's loss; ``strokes`` is the
recipe for one-shot transfer to new classes.

    python -m rl_repr.main --config=configs/metric_digits.py:semi_hard,rotations_flips,strokes,flat --workdir=...

The
held-out benchmarks are 5-way 1-shot and 5-shot episodes (600 each, 15 queries per class),
verification with 10-fold thresholds, and recall@k on digits 5-9 of both splits (~900
images the network never saw), next to raw pixels and the network at random init.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.metric_learning.config import LOSSES, metric_learning_defaults


INSTANCE_RECIPES = ("instance", "instance_only")
# More training classes (rl_repr.data.pk_batches.training_set); digits 5-9 stay held out.
CLASS_RECIPES = ("rotations", "rotations_flips", "glyphs", "strokes")
# The flattened (position-keeping) conv trunk under a 128-d embedding.
MODEL_RECIPES = ("flat",)


def get_config(arg: str | None = None):
    tokens = launch_arguments(arg, "configs/metric_digits.py",
                              tokens=LOSSES + INSTANCE_RECIPES + CLASS_RECIPES + MODEL_RECIPES + ("runlocal",),
                              at_most_one=[LOSSES, INSTANCE_RECIPES, ("rotations", "rotations_flips")])
    c = metric_learning_defaults()
    c.loss = tokens.first(LOSSES, "semi_hard")
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
    if tokens.first(INSTANCE_RECIPES):
        # NT-Xent keeps what tells images apart inside a class (see experiments/compare_mining.py
        # for what each piece adds); flattening keeps where the strokes are.
        c.instance_weight = 1.0
        c.metric_weight = 0.0 if "instance_only" in tokens else 0.1
        c.instance_temperature = 0.1
        c.model.global_pool = False
        c.augment.update(translate_fraction=0.15, rotate_degrees=15.0)
    class_augmentation = tokens.first(("rotations", "rotations_flips"), "none")
    extra = "+".join(t for t in ("glyphs", "strokes") if t in tokens)
    if class_augmentation != "none" or extra:
        c.class_augmentation = class_augmentation
        c.extra_classes = extra or "none"
        c.classes_per_batch = 16      # more classes than 5: more negatives per batch, same batch 80
        c.examples_per_class = 5
    if "strokes" in tokens:
        c.num_steps = 2000            # 30k made-up images: 400 steps would see each once
        # The made-up hands vary the images; crops and cutout cost 2-5 points (the instance
        # term needs its two augmented views, so it keeps them).
        c.augment_enabled = c.instance_weight > 0
        c.stroke_warp = 0.1           # each hand also bends the whole trajectory a little
        c.model.conv_widths = (64, 128, 256)  # many classes: a wider trunk helps (+1 point)
    if "flat" in tokens:
        c.model.update(global_pool=False, embedding_dim=128)
    if "runlocal" in tokens:
        c.num_steps = 10
        c.warmup_steps = 2
        c.examples_per_class = 8
        c.model.conv_widths = (8, 16)
        c.eval.update(num_episodes=100, num_pairs=400)
        c.baselines = False
    return c
