"""rl_repr.norms: normalization layers as pure functions, plus thin Linen wrappers.

Pure functions (feature axis last; scale/bias ``[C]``; see each docstring)::

    y, (mean, var) = norms.batch_norm(x, scale, bias, mean, var, training=True)
    y = norms.layer_norm(x, scale, bias)
    y = norms.instance_norm(x, scale, bias)
    y = norms.group_norm(x, scale, bias, num_groups=32)
    kernel, bias = norms.fold_batch_norm(kernel, bias, scale, bn_bias, mean, var)

Linen modules with flax's variable names (``params``: scale, bias;
``batch_stats``: mean, var): ``BatchNorm``, ``LayerNorm``, ``InstanceNorm``,
``GroupNorm``.
"""
from rl_repr.norms.functional import *  # noqa: F401,F403
from rl_repr.norms.fold import *  # noqa: F401,F403
from rl_repr.norms.modules import *  # noqa: F401,F403
from rl_repr.norms import fold as _fold, functional as _functional, modules as _modules

__all__ = [*_functional.__all__, *_fold.__all__, *_modules.__all__]
