"""MoCo v1's ImageNet recipe (He et al. 2020, arXiv:1911.05722): 60.6% linear eval at 200 epochs.

ResNet-50 whose fc layer outputs the 128-d embedding (``head.num_layers=1``, no MLP); temperature
0.07; a queue of 65,536 keys; key-encoder momentum 0.999; batch 256, SGD lr 0.03 x B/256,
momentum 0.9, weight decay 1e-4, lr x0.1 at epochs 120 and 160; augmentation: crop area 0.2-1,
grey p = 0.2, colour jitter always applied, flip, no blur; shuffled batch norm in the key encoder.
The paper's jitter is 0.4 for brightness, contrast, saturation *and hue*; rl_repr's jitter ties
hue to 0.2 x strength, so strength 0.5 gives 0.4/0.4/0.4 with hue 0.1. Everything else is
``configs/moco_v2_imagenet.py``.

    python -m rl_repr.main --config=configs/moco_v1_imagenet.py --workdir=... --config.data_dir=gs://...
    python -m rl_repr.main --config=configs/moco_v1_imagenet.py:runlocal ...   # CPU smoke run
"""
import os

from rl_repr.core.recipes import launch_arguments, load_config_file


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/moco_v1_imagenet.py", tokens=("runlocal",))
    v2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moco_v2_imagenet.py")
    c = load_config_file(v2, "runlocal" if "runlocal" in args else None)
    c.head.update(num_layers=1, hidden_dim=0, output_dim=128, norm="none")
    c.temperature = 0.07
    c.lr_schedule = "steps"
    c.lr_decay_epochs = (0.5,) if "runlocal" in args else (120.0, 160.0)
    c.lr_decay_factor = 0.1
    c.augment.update(crop_area=(0.2, 1.0), color_jitter_strength=0.5, color_jitter_prob=1.0,
                     grayscale_prob=0.2, blur_prob=0.0)
    return c
