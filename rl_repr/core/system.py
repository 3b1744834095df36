"""The settings every method shares: seed, driver, devices, multi-host, bookkeeping.

A method's defaults start from :func:`system_defaults` and its rules from
:func:`system_rules`, so these keys mean the same thing, with the same checks, everywhere.
"""
from __future__ import annotations

import jax.numpy as jnp

from rl_repr.core import config as cfg
from rl_repr.core.drivers import DRIVERS
from rl_repr.core.extras import require

ml_collections = require("ml_collections")

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def system_defaults(method: str) -> ml_collections.ConfigDict:
    """The shared keys; each method adds its own and may change these defaults."""
    c = ml_collections.ConfigDict()
    c.method = method
    c.seed = 0
    c.parallel = "jit"            # 'jit' | 'shard_map' | 'pmap' (rl_repr.core.drivers)
    c.num_devices = 0             # 0 = every device
    c.cpu_devices = 0             # CPU: split the host into this many devices first (0 = JAX's default)
    c.distributed = ml_collections.ConfigDict(dict(
        coordinator_address="", num_processes=1, process_id=0))
    c.checkpoint_every_steps = 500
    c.log_every_steps = 10
    return c


def system_rules() -> list[cfg.Rule]:
    """Rules of the shared keys."""
    return [
        cfg.non_negative_int("seed"), cfg.one_of("parallel", DRIVERS),
        cfg.non_negative_int("num_devices"), cfg.non_negative_int("cpu_devices"),
        cfg.positive_int("checkpoint_every_steps"), cfg.positive_int("log_every_steps"),
    ]


def compute_dtype_rule() -> cfg.Rule:
    """``compute_dtype`` is one of :data:`COMPUTE_DTYPES` (params stay float32)."""
    return cfg.one_of("compute_dtype", tuple(COMPUTE_DTYPES))


def compute_dtype(config: ml_collections.ConfigDict):
    """The jnp dtype named by ``config.compute_dtype``."""
    return COMPUTE_DTYPES[config.compute_dtype]
