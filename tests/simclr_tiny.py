"""A SimCLR config small enough to train a few steps in a test (shared by several tests)."""
from rl_repr.simclr.config import simclr_defaults


def tiny_simclr_config(**overrides):
    c = simclr_defaults()
    c.dataset = "synthetic"
    c.synthetic_examples = 64
    c.synthetic_shape = (8, 8, 3)
    c.model.update(depth=18, width_multiplier=0.0625, small_image_stem=True)
    c.head.update(num_layers=2, output_dim=16)
    c.temperature = 0.5
    c.batch_size = 16
    c.epochs = 1.0
    c.warmup_epochs = 0.25
    c.base_lr = 0.5
    c.augment.update(crop_area=(0.5, 1.0), blur_prob=0.0)
    c.checkpoint_every_steps = 2
    c.log_every_steps = 1
    c.baselines = False
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return c
