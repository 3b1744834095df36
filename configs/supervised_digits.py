"""An MLP on scikit-learn's bundled digits: the base of the label-smoothing, distillation,
adversarial and greedy-pretraining studies (``configs/studies/``).

    python -m rl_repr.main --config=configs/supervised_digits.py --workdir=/tmp/digits_mlp
    python -m rl_repr.main --config=configs/supervised_digits.py:teacher --workdir=/tmp/teacher   # the wide teacher

1,437 training and 360 test images of 8x8 pixels (test = every 5th image). Two hidden layers
of 256 ReLU units, Adam (learning rate 1e-3, batch 128, cosine), 60 epochs (660 steps). ``teacher``: two
layers of 1,200 units (Hinton et al. 2015's MNIST teacher width) with 1-pixel translations.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.supervised.config import supervised_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/supervised_digits.py", tokens=("teacher", "runlocal"))
    c = supervised_defaults()
    c.dataset = "digits"
    c.model.update(kind="mlp", hidden=(256, 256), activation="relu", norm="none")
    c.batch_size = 128
    c.epochs = 60.0
    c.optimizer = "adamw"
    c.base_lr = 1e-3
    c.lr_scaling = "none"
    c.weight_decay = 0.0
    c.momentum = 0.9
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    if "teacher" in args:
        c.model.hidden = (1200, 1200)
        c.augment_enabled = True
        c.augment.update(translate_fraction=0.125)
    if "runlocal" in args:
        c.epochs = 2.0
    return c
