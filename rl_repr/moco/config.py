"""MoCo's config: every key, its default, and the rule it must satisfy.

Defaults are MoCo v2 on ImageNet (Chen et al. 2020, arXiv:2003.04297): ResNet-50, MLP head
2048-ReLU-128 without batch norm, temperature 0.2, queue of 65,536 keys, key-encoder momentum
0.999, SGD lr 0.03 x B/256, weight decay 1e-4, cosine schedule, 200 epochs, shuffled batch norm
in the key encoder. ``configs/moco_v1_imagenet.py`` and ``configs/moco_v2_imagenet.py`` are the
two papers' recipes; ``configs/moco_digits.py`` the offline one.

MoCo's network f = encoder + head is SimCLR's (``rl_repr.simclr.model``) and it is evaluated by
SimCLR's code, so the data, ``model``, ``head`` and evaluation keys are SimCLR's, with SimCLR's
rules; only what MoCo adds (the queue, the key encoder, its batch norm, the schedules) is here.
"""
from __future__ import annotations

from rl_repr.core import config as cfg
from rl_repr.core.extras import require
from rl_repr.simclr.config import simclr_defaults, simclr_rules

ml_collections = require("ml_collections")

KEY_BATCH_NORMS = ("shuffle", "global", "local")
KEY_MOMENTUM_SCHEDULES = ("constant", "cosine")
LR_SCHEDULES = ("cosine", "steps")
# SimCLR keys MoCo has no use for: its chunked loss, representation caching, its batch-norm switch
_SIMCLR_ONLY = ("loss_chunk_size", "gradient_cache_chunks", "global_bn")


def moco_defaults() -> ml_collections.ConfigDict:
    """MoCo v2 on ImageNet-style data; recipes override these."""
    c = simclr_defaults()  # data, model, head, augment, compute_dtype and evaluation keys
    for key in _SIMCLR_ONLY:
        del c[key]
    c.method = "moco"
    c.model.explicit_conv_gradients = "off"  # SimCLR's 'auto' concerns its representation caching only
    # v1: one linear layer to 128 (the ResNet's fc); v2: an MLP, hidden = encoder width, ReLU, 128
    c.head.update(num_layers=2, hidden_dim=0, output_dim=128, norm="none")
    # ---- the contrastive task
    c.temperature = 0.2           # v1 0.07, v2 0.2
    c.queue_size = 65536          # K: a multiple of the keys per step (batch_size, x2 symmetric), at most the training set
    c.key_momentum = 0.999        # m in theta_k <- m theta_k + (1 - m) theta_q
    c.key_momentum_schedule = "constant"  # 'cosine': m rises to 1 over the run (BYOL's schedule)
    # key encoder's batch norm: 'shuffle' (MoCo: a global permutation of the key batch, statistics
    # per group, un-permuted), 'global' (synchronised over the whole batch), 'local' (per group,
    # no permutation: the leak MoCo shuffles to stop)
    c.key_bn = "shuffle"
    c.key_bn_groups = 0           # groups of the key batch with their own statistics; 0 = one per device
    # both views as queries, each against the other's key: (L(q, k) + L(q', k')) / 2, both key
    # batches enqueued (the MoCo authors' CIFAR-10 demo; MoCo v3); twice a step's encoder work and
    # queue_size a multiple of 2 x batch_size. The papers' v1/v2: False
    c.symmetric_loss = False
    # leave queued keys of a query's own image (earlier views of it) out of its negatives. The
    # papers do not: on ImageNet the queue holds one for ~0.1% of queries, on a small data set for
    # many (digits: 29% at K = 1,024, batch 128), pushing those images away from themselves
    c.queue_excludes_own_image = False
    # also report the key encoder f_k's h (linear probe and kNN, prefixed 'key_encoder_'): f_k is
    # an exponential moving average of f_q, the representation mean-teacher methods evaluate
    c.evaluate_key_encoder = False
    # ---- optimisation
    c.batch_size = 256
    c.epochs = 200.0
    c.warmup_epochs = 0.0
    c.optimizer = "sgd"
    c.base_lr = 0.03
    c.lr_scaling = "linear"       # 0.03 x B/256
    c.weight_decay = 1e-4
    c.momentum = 0.9              # SGD's momentum (the key encoder's is key_momentum)
    c.lr_schedule = "cosine"      # v2; 'steps' (v1): x lr_decay_factor at each of lr_decay_epochs
    c.lr_decay_epochs = (120.0, 160.0)
    c.lr_decay_factor = 0.1
    # ---- augmentation: v2's "aug+" (crop 0.2-1, jitter 0.4/0.4/0.4/0.1 p=0.8, grey 0.2, blur 0.5)
    c.augment.update(crop_area=(0.2, 1.0), color_jitter_strength=0.5, color_jitter_prob=0.8,
                     grayscale_prob=0.2, blur_prob=0.5)
    return c


def keys_per_step(config) -> int:
    """Keys a step enqueues: the global batch's, or both views' with the symmetric loss."""
    return config.batch_size * (2 if config.get("symmetric_loss") is True else 1)


def moco_rules() -> list[cfg.Rule]:
    """SimCLR's rules of the shared keys, and MoCo's own (the runner adds the system rules)."""
    return [rule for rule in simclr_rules() if rule.key not in _SIMCLR_ONLY] + [
        cfg.one_of("model.explicit_conv_gradients", ("on", "off")),
        cfg.Rule("queue_size", lambda k, c: cfg.is_int(k) and k > 0 and k % keys_per_step(c) == 0,
                 lambda c: f"a positive multiple of {keys_per_step(c)}, the keys each step enqueues "
                           f"(config.batch_size={c.batch_size}{', both views' if c.get('symmetric_loss') is True else ''})"),
        cfg.in_interval("key_momentum", 0.0, 1.0),
        cfg.one_of("key_momentum_schedule", KEY_MOMENTUM_SCHEDULES),
        cfg.one_of("key_bn", KEY_BATCH_NORMS),
        cfg.Rule("symmetric_loss", lambda v, _: isinstance(v, bool), "True or False"),
        cfg.Rule("queue_excludes_own_image", lambda v, _: isinstance(v, bool), "True or False"),
        cfg.Rule("evaluate_key_encoder", lambda v, _: isinstance(v, bool), "True or False"),
        cfg.divides("key_bn_groups", "batch_size", "one group per device"),
        cfg.one_of("lr_schedule", LR_SCHEDULES),
        cfg.Rule("lr_schedule", lambda s, c: s == "cosine" or c.optimizer == "sgd",
                 "'cosine' unless config.optimizer='sgd' (the step schedule is MoCo v1's SGD)"),
        cfg.tuple_of("lr_decay_epochs", lambda e: isinstance(e, (int, float)) and e > 0,
                     "a tuple of epochs > 0 at which the learning rate drops", non_empty=False),
        cfg.in_interval("lr_decay_factor", 0.0, 1.0, low_inclusive=False),
    ]
