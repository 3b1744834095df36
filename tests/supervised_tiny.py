"""A supervised config small enough to train a few steps in a test (shared by the supervised tests)."""
from rl_repr.supervised.config import supervised_defaults


def tiny_supervised_config(**overrides):
    """An MLP (16 units, batch norm) on 8x8 synthetic images, 6 steps of batch 32."""
    c = supervised_defaults()
    c.dataset = "synthetic"
    c.synthetic_examples = 192
    c.synthetic_shape = (8, 8, 1)
    c.model.update(kind="mlp", hidden=(16,), norm="batch")
    c.batch_size = 32
    c.epochs = 1.0
    c.optimizer = "sgd"
    c.base_lr = 0.5
    c.checkpoint_every_steps = 2
    c.log_every_steps = 1
    c.eval_batch_size = 64
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return c
