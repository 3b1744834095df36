"""A CIFAR-style ResNet on made-up handwritten characters at 16x16, generated offline.

    python -m rl_repr.main --config=configs/supervised_characters.py --workdir=/tmp/chars
    python -m rl_repr.main --config=configs/supervised_characters.py:depth=56,plain --workdir=...

The offline stand-in for CIFAR-10 in the depth and normalisation studies (``configs/studies/``):
the digits' 8x8 pixels leave no room for three stages of a 6n + 2 network, while made-up
characters (``rl_repr.data.images.stroke_characters``) can be drawn at any size and in as many
classes as a study needs: here 20 classes of 50 images at 16x16 (800 training and 200 test
images; every 5th image of a class is a test image). Half-width ResNet-20 (8/16/32 filters),
He et al.'s optimiser (SGD 0.1 for batch 128, i.e. 0.05 for batch 64; momentum 0.9, weight decay
1e-4; cosine), 8 epochs, the monitor every epoch.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.supervised.config import supervised_defaults

DATASET = "characters:classes=20,images=50,size=16"


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/supervised_characters.py", tokens=("plain", "runlocal"),
                            values={"depth": int})
    c = supervised_defaults()
    c.dataset = DATASET
    c.model.update(kind="cifar_resnet", depth=args.get("depth", 20), width_multiplier=0.5,
                   residual="plain" not in args, norm="batch")
    c.batch_size = 64
    c.epochs = 8.0
    c.optimizer = "sgd"
    c.base_lr = 0.2              # 0.1 at batch 128 (linear scaling: base * B / 256)
    c.lr_scaling = "linear"
    c.weight_decay = 1e-4
    c.eval_every_steps = 12
    c.checkpoint_every_steps = 100
    c.log_every_steps = 12
    if "runlocal" in args:
        c.dataset = "characters:classes=10,images=20,size=16"
        c.model.depth = 8
        c.batch_size = 32
        c.epochs = 2.0
        c.eval_every_steps = 0
    return c
