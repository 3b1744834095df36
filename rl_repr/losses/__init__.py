"""rl_repr.losses: pure, typed, jit- and vmap-safe losses.

Each private module groups one kind of loss and lists its public names in
``__all__``; this namespace re-exports all of them::

    from rl_repr import losses
    loss = losses.nt_xent(z1, z2, temperature=0.5)

Every loss propagates NaN: NaN or infinite inputs give a NaN loss (never a finite one that
hides them), so a diverged run is caught by the training loop's check.

Modules: ``contrastive`` (NT-Xent, InfoNCE, MoCo's queue), ``metric`` and ``distances``
(triplet mining, Siamese pairs), ``metric_learning`` (a mining strategy by name, the instance
term), ``word2vec`` (skip-gram), ``classification`` (label smoothing, distillation) and
``collectives`` (gathers a per-device program needs).
"""
from rl_repr.losses.contrastive import *  # noqa: F401,F403
from rl_repr.losses.moco import *  # noqa: F401,F403
from rl_repr.losses.distances import *  # noqa: F401,F403
from rl_repr.losses.metric import *  # noqa: F401,F403
from rl_repr.losses.word2vec import *  # noqa: F401,F403
from rl_repr.losses.classification import *  # noqa: F401,F403
from rl_repr.losses.collectives import *  # noqa: F401,F403
from rl_repr.losses.metric_learning import *  # noqa: F401,F403
