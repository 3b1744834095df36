"""MoCo v2's ImageNet recipe (Chen et al. 2020, arXiv:2003.04297): 67.5% linear eval at 200 epochs.

ResNet-50; MLP head 2048-ReLU-128 (no batch norm); temperature 0.2; a queue of 65,536 keys;
key-encoder momentum 0.999; batch 256, SGD lr 0.03 x B/256, momentum 0.9, weight decay 1e-4,
cosine schedule; "aug+": crop area 0.2-1, colour jitter 0.4/0.4/0.4/0.1 with p = 0.8, grey
p = 0.2, Gaussian blur (sigma 0.1-2) p = 0.5, flip; shuffled batch norm in the key encoder (one
group per device). ``epochs=800`` is the paper's 71.1% run.

    python -m rl_repr.main --config=configs/moco_v2_imagenet.py --workdir=... --config.data_dir=gs://...
    python -m rl_repr.main --config=configs/moco_v2_imagenet.py:epochs=800 ...
    python -m rl_repr.main --config=configs/moco_v2_imagenet.py:runlocal ...   # CPU smoke run
    python -m rl_repr.main --config=configs/moco_v2_imagenet.py:runlocal --config.dataset=folder:DIR \
        --config.eval_split=val --workdir=...   # the smoke run streaming DIR/{train,val}/<class>/<image>

ImageNet streams as SimCLR's does (``rl_repr/simclr/streaming_input.py``): each host reads only
its part of the JPEGs and cuts the two random crops at full resolution; the evaluation is the
sharded kNN and the SGD linear classifier on the features sharded over the devices.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.moco.config import moco_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/moco_v2_imagenet.py", tokens=("runlocal",), values={"epochs": float})
    c = moco_defaults()  # MoCo v2 on ImageNet is the default
    c.dataset = "imagenet2012"
    c.eval_split = "validation"   # imagenet2012's labelled evaluation split (a torchvision folder: 'val')
    c.image_size = 224            # streamed: crops cut from the full-resolution JPEGs on each host
    c.model.update(depth=50, width_multiplier=1.0, small_image_stem=False)
    c.head.update(num_layers=2, hidden_dim=0, output_dim=128, norm="none")
    c.epochs = args.get("epochs", 200.0)
    c.compute_dtype = "bfloat16"
    c.checkpoint_every_steps = 2000
    c.baselines = False
    if "runlocal" in args:
        shrink(c)
    return c


def shrink(c):
    """Four steps on generated images on a CPU, or on ``--config.dataset=folder:DIR``, streamed."""
    c.dataset = "synthetic"
    c.synthetic_examples = 64
    c.synthetic_shape = (32, 32, 3)
    c.image_size = 32
    c.streaming = "on"
    c.eval_batch_size = 64
    c.linear_eval.update(epochs=10.0, batch_size=64)
    c.model.width_multiplier = 0.0625
    c.batch_size = 16
    c.queue_size = 32
    c.epochs = 1.0
    c.lr_decay_epochs = (0.5,)
    c.compute_dtype = "float32"
    c.log_every_steps = 1
