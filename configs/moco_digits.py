"""MoCo on scikit-learn's bundled digits: the offline recipe (v2 by default).

    python -m rl_repr.main --config=configs/moco_digits.py --workdir=/tmp/moco_digits
    python -m rl_repr.main --config=configs/moco_digits.py:v1 ...        # MoCo v1's choices
    python -m rl_repr.main --config=configs/moco_digits.py:runlocal ...  # a CPU smoke run

The SimCLR digits demo's encoder (quarter-width ResNet-18, small-image stem, 64-d output) and
its budget in time: batch 128 for 225 epochs (2,475 steps) on one device trains in 0.95x the
demo's wall time on its 8 simulated devices, on the same CPU seconds (149 s / 270 against 156 s /
267 on a 2-core Xeon; each alone, one after the other, ``experiments/results/moco_digits/``).
Linear probe over five seeds 98.3 +- 0.5, the demo's 99.0 +- 0.2 (README, MoCo section). One device, because MoCo's
step is 2.1x slower on 8 simulated devices than on one (SimCLR's 1.2x;
``benchmarks/device_count.py``): a batch of 16 per device and the key encoder's shuffle across
devices cost more than the arithmetic on 2 cores; the step's result does not depend on the
device count (shuffled batch norm always in 8 groups of 16). Batch 128 rather than 256 because
MoCo's negatives come from the queue, not the batch, so more, smaller steps lose nothing (at 75
epochs 97.6 against 96.7, ``configs/ablations/moco_recipe_screen.py``). The queue holds 1,024
keys (8 batches; K must be a multiple of the batch and at most the 1,437 training images), and
the key encoder's momentum is 0.995 (an average over ~200 steps): at the recipe's full length it
beat 0.99 by 0.7 points over five seeds (98.3 +- 0.5 against 97.6 +- 0.5; 0.998 and 0.99 with
BYOL's cosine rise to 1 did worse, ``experiments/results/moco_recipe_screen-225ep/``), though the
75-epoch screen could not tell them apart; 0.999 (ImageNet's, with ~500k steps) leaves the key
encoder too far behind in the 2,475 steps digits take.

Versions, as in MoCo v2's Table 1 (Chen et al. 2020), mapped to 8x8 grey digits:

* ``v2`` (default): MLP head (hidden = encoder width, ReLU, no batch norm), temperature 0.2,
  "aug+", cosine learning rate.
* ``v1``: one linear layer (the ResNet's fc), temperature 0.07, v1's augmentation, the learning
  rate x0.1 at 60% and 80% of training (v1's epochs 120 and 160 of 200).

On ImageNet v1's augmentation is crop + colour jitter (always on) + grey + flip, and aug+ adds
Gaussian blur and applies jitter with p = 0.8. Blur does nothing to 8x8 images (below 20 px the
blur kernel has no taps), flips do not suit digits, and there is no colour; so here v1's
augmentation is crops (area 0.6-1) + brightness/contrast jitter (always on), and aug+ adds what
the SimCLR digits recipe found to help in the same place: small rotations and shifts and cutout,
with jitter at p = 0.8.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.moco.config import moco_defaults

V1_AUGMENT = dict(crop_area=(0.6, 1.0), crop_aspect=(0.8, 1.25), flip=False, color_jitter_strength=0.5,
                  color_jitter_prob=1.0, grayscale_prob=0.0, blur_prob=0.0, rotate_degrees=0.0,
                  translate_fraction=0.0, cutout_prob=0.0, cutout_fraction=0.3)
AUG_PLUS = dict(V1_AUGMENT, color_jitter_prob=0.8, rotate_degrees=12.0, translate_fraction=0.1, cutout_prob=0.3)


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/moco_digits.py", tokens=("v1", "v2", "runlocal"),
                            at_most_one=(("v1", "v2"),))
    c = moco_defaults()
    c.dataset = "digits"
    c.model.update(depth=18, width_multiplier=0.25, small_image_stem=True)
    c.head.update(num_layers=2, hidden_dim=0, output_dim=64, norm="none")
    c.temperature = 0.2
    c.queue_size = 1024
    c.key_momentum = 0.995
    c.key_bn = "shuffle"
    c.key_bn_groups = 8
    c.batch_size = 128
    c.epochs = 225.0
    c.warmup_epochs = 5.0
    c.base_lr = 0.12
    c.lr_scaling = "linear"
    c.weight_decay = 1e-4
    c.lr_schedule = "cosine"
    c.lr_decay_epochs = (135.0, 180.0)  # used by v1's step schedule: 60% and 80% of the epochs
    c.augment.update(AUG_PLUS)
    c.finetune_fractions = (0.01, 0.1)
    c.finetune_steps = 300
    c.checkpoint_every_steps = 200
    c.eval_every_steps = 250
    if "v1" in args:
        c.head.num_layers = 1
        c.temperature = 0.07
        c.lr_schedule = "steps"
        c.augment.update(V1_AUGMENT)
    if "runlocal" in args:
        c.epochs = 3.0
        c.warmup_epochs = 1.0
        c.lr_decay_epochs = (2.0,)
        c.model.width_multiplier = 0.125
        c.eval_every_steps = 0
        c.baselines = False
        c.finetune_fractions = ()
    return c
