"""ResNet-20 on CIFAR-10 (He et al. 2016, Section 4.2): the paper's recipe.

    python -m rl_repr.main --config=configs/supervised_cifar10.py --workdir=/tmp/r20 --config.data_dir=~/tensorflow_datasets
    python -m rl_repr.main --config=configs/supervised_cifar10.py:depth=56,plain --workdir=...   # the plain-56 of Figure 6
    python -m rl_repr.main --config=configs/supervised_cifar10.py:runlocal --workdir=/tmp/smoke   # CPU smoke run (synthetic)

SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 32k
and 48k iterations (here a cosine decay over the same 164 epochs), 4-pixel translations and
horizontal flips, option-A shortcuts. The paper reports 8.75 / 7.51 / 7.17 / 6.97 / 6.43% test
error for depth 20 / 32 / 44 / 56 / 110. CIFAR-10 is read from ``config.data_dir`` (tfds,
never downloaded).
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.supervised.config import supervised_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/supervised_cifar10.py", tokens=("plain", "runlocal"),
                            values={"depth": int})
    c = supervised_defaults()
    c.dataset = "cifar10"
    c.model.update(kind="cifar_resnet", depth=args.get("depth", 20), residual="plain" not in args, norm="batch",
                   shortcut="A")
    c.batch_size = 128
    c.epochs = 164.0
    c.optimizer = "sgd"
    c.base_lr = 0.1
    c.lr_scaling = "none"
    c.weight_decay = 1e-4
    c.momentum = 0.9
    c.augment_enabled = True
    c.augment.update(flip=True, translate_fraction=0.125)
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 100
    if "runlocal" in args:
        c.dataset = "synthetic"
        c.synthetic_examples = 256
        c.epochs = 2.0
        c.batch_size = 32
        c.eval_every_steps = 0
    return c
