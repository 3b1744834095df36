"""FaceNet-style triplet training on Labeled Faces in the Wild (tfds ``lfw``), verified on
identities held out from training.

    python -m rl_repr.main --config=configs/metric_lfw.py --workdir=/tmp/metric_lfw \
        --config.data_dir=/path/to/tensorflow_datasets
    python -m rl_repr.main --config=configs/metric_lfw.py:batch_hard ...   # another strategy

Needs ``lfw`` prepared under the data dir (``tfds build lfw``); nothing is downloaded, and
a missing dataset stops the run with the command that prepares it. tfds's lfw has one split
of 13,233 250x250 RGB images of 5,749 people, labelled by name, and no official pairs, so:
people whose (alphabetical) id is a multiple of 10 are held out; the rest with at least two
images train the network; verification uses pairs drawn from the held-out people (half
matching) with LFW's 10-fold threshold selection; episodes are 5-way with one query per
class (few held-out people have 20 images). Images are resized to 64x64 (shorter side,
centre crop). The launch argument picks the mining strategy (default semi-hard, FaceNet's).
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.metric_learning.config import LOSSES, metric_learning_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/metric_lfw.py", tokens=LOSSES + ("runlocal",), at_most_one=[LOSSES])
    c = metric_learning_defaults()
    c.loss = args.first(LOSSES, "semi_hard")
    c.dataset = "lfw"
    c.image_size = 64
    c.train_split = "train"
    c.eval_splits = ("train",)
    c.eval_classes = ()
    c.eval_every_nth_class = 10
    c.min_images_per_class = 2
    c.classes_per_batch = 32      # 32 people x 4 images: batch 128
    c.examples_per_class = 4
    c.model.update(architecture="resnet", depth=18, width_multiplier=0.5, small_image_stem=False,
                   norm="batch", embedding_dim=128)
    c.margin = 0.2
    c.num_steps = 20000
    c.warmup_steps = 500
    c.optimizer = "adamw"
    c.base_lr = 1e-3
    c.weight_decay = 1e-4
    c.augment.update(crop_area=(0.7, 1.0), crop_aspect=(0.9, 1.1), flip=True,
                     color_jitter_strength=0.4, grayscale_prob=0.1, rotate_degrees=0.0,
                     cutout_prob=0.0)
    c.eval.update(num_queries=1, num_pairs=6000)
    c.checkpoint_every_steps = 1000
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    if "runlocal" in args:
        c.num_steps = 20
        c.warmup_steps = 2
        c.classes_per_batch = 8
        c.model.width_multiplier = 0.125
        c.eval.update(num_episodes=100, num_pairs=600)
        c.eval_every_steps = 0
        c.baselines = False
    return c
