"""Which dtype a model's parameters and outputs take for a compute dtype.

Mixed precision keeps parameters, norm statistics and outputs in float32 while convolutions
and matmuls run in the compute dtype (bfloat16 on TPUs and recent GPUs). A float64 model
(gradient checks, numerics studies) is float64 throughout, which JAX allows only with
``jax.config.update('jax_enable_x64', True)``; without it a float64 request is refused in one
sentence rather than silently computed in float32.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["parameter_dtype"]


def parameter_dtype(compute_dtype: Any, who: str) -> jnp.dtype:
    """float64 for a float64 model, else float32 (``who`` names the module in the message)."""
    if jnp.dtype(compute_dtype) == jnp.float64:
        if not jax.config.jax_enable_x64:
            raise ValueError(f"{who}: dtype=float64 needs 64-bit JAX; call jax.config.update('jax_enable_x64', "
                             "True) before creating arrays, or use dtype=jnp.float32.")
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)
