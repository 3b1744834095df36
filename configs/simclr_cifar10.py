"""SimCLR's CIFAR-10 recipe (Chen et al. 2020, Appendix B.9): about 91% linear eval.

ResNet-18 with the small-image stem, batch 512, 1000 epochs, LARS LR 1.0 x B/256,
weight decay 1e-4, temperature 0.5, colour strength 0.5, no blur.

    python -m rl_repr.main --config=configs/simclr_cifar10.py --workdir=... --config.data_dir=~/tfds
    python -m rl_repr.main --config=configs/simclr_cifar10.py:runlocal ...   # CPU smoke run on generated images
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.simclr.config import simclr_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/simclr_cifar10.py", tokens=("runlocal",))
    c = simclr_defaults()
    c.dataset = "cifar10"
    c.model.update(depth=18, width_multiplier=1.0, small_image_stem=True)
    c.head.update(num_layers=2, output_dim=128)
    c.temperature = 0.5
    c.batch_size = 512
    c.epochs = 1000.0
    c.warmup_epochs = 10.0
    c.base_lr = 1.0
    c.lr_scaling = "linear"
    c.weight_decay = 1e-4
    c.augment.update(color_jitter_strength=0.5, blur_prob=0.0)
    c.checkpoint_every_steps = 1000
    c.eval_every_steps = 5000
    if "runlocal" in args:
        _shrink(c)
    return c


def _shrink(c):
    c.dataset = "synthetic"
    c.synthetic_examples = 64
    c.synthetic_shape = (32, 32, 3)
    c.model.width_multiplier = 0.125
    c.batch_size = 16
    c.epochs = 1.0
    c.warmup_epochs = 0.5
    c.eval_every_steps = 0
    c.baselines = False
