"""SimCLR's ImageNet recipe (Chen et al. 2020): ResNet-50, batch 4096, 64.5% at 100 epochs.

LARS with LR 0.3 x B/256 (``lr_scaling='linear'``) or 0.075 x sqrt(B) (``:sqrt``, better at
small batches), weight decay 1e-6, temperature 0.1, Gaussian blur, 10 warmup epochs, cosine.

    python -m rl_repr.main --config=configs/simclr_imagenet.py --workdir=... --config.data_dir=gs://...
    python -m rl_repr.main --config=configs/simclr_imagenet.py:sqrt,epochs=800 ...
    python -m rl_repr.main --config=configs/simclr_imagenet.py:runlocal ...   # CPU smoke run
    python -m rl_repr.main --config=configs/simclr_imagenet.py:runlocal --config.dataset=folder:DIR \
        --config.eval_split=val --workdir=...   # the smoke run streaming DIR/{train,val}/<class>/<image>

ImageNet streams (``rl_repr/data/images/streaming.py``): each host reads only its part of the
JPEGs and cuts the two random crops at full resolution; the evaluation is the sharded kNN and
the SGD linear classifier on the features sharded over the devices.
"""
from rl_repr.core.recipes import launch_arguments
from rl_repr.simclr.config import simclr_defaults


def get_config(arg: str | None = None):
    args = launch_arguments(arg, "configs/simclr_imagenet.py", tokens=("sqrt", "runlocal"),
                            values={"epochs": float})
    c = simclr_defaults()
    c.dataset = "imagenet2012"
    c.eval_split = "validation"   # imagenet2012's labelled evaluation split (a torchvision folder: 'val')
    c.image_size = 224            # streamed: crops cut from the full-resolution JPEGs on each host
    c.model.update(depth=50, width_multiplier=1.0, small_image_stem=False)
    c.head.update(num_layers=2, output_dim=128)
    c.temperature = 0.1
    c.batch_size = 4096
    c.epochs = 100.0
    c.warmup_epochs = 10.0
    c.base_lr = 0.3
    c.lr_scaling = "linear"
    c.weight_decay = 1e-6
    c.compute_dtype = "bfloat16"
    c.checkpoint_every_steps = 2000
    c.eval_every_steps = 0
    c.baselines = False
    if "sqrt" in args:
        c.lr_scaling, c.base_lr = "sqrt", 0.075
    c.epochs = args.get("epochs", c.epochs)
    if "runlocal" in args:  # generated images, or --config.dataset=folder:DIR / a small tfds set, streamed
        c.dataset = "synthetic"
        c.synthetic_examples = 32
        c.synthetic_shape = (32, 32, 3)
        c.image_size = 32
        c.streaming = "on"
        c.model.width_multiplier = 0.0625
        c.batch_size = 16
        c.epochs = 1.0
        c.warmup_epochs = 0.5
        c.compute_dtype = "float32"
        c.eval_batch_size = 64
        c.linear_eval.update(epochs=10.0, batch_size=64)
    return c
