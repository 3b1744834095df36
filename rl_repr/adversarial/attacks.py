"""Adversarial examples: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

Both perturb inputs ``x`` in pixel units (images in ``[0, 1]``, so CIFAR's eps = 8/255) to
raise the cross-entropy ``L(f(x), y)`` of a classifier ``logits_fn: x -> logits``, within the
L-infinity ball of radius ``epsilon`` around the clean inputs and inside the valid pixel range:

    FGSM: x' = clip(x + epsilon * sign(grad_x L(f(x), y)), lo, hi)
    PGD:  x_0 = clip(x + U(-epsilon, epsilon), lo, hi)          (random start; x_0 = x without)
          x_{t+1} = clip(Proj_{||x' - x||_inf <= epsilon}(x_t + step_size * sign(grad L(f(x_t), y))), lo, hi)

The gradient is that of the *summed* cross-entropy, so each example's perturbation follows
its own loss whatever the batch size. Attacks are pure functions of their arguments (PGD's
random start of its ``key``), so they jit, and the same key gives the same examples.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["ATTACKS", "Attack", "fgsm", "pgd", "perturb"]

ATTACKS = ("fgsm", "pgd")
LogitsFn = Callable[[jax.Array], jax.Array]


def _input_gradient(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array) -> jax.Array:
    def total_loss(inputs):
        return optax.softmax_cross_entropy_with_integer_labels(logits_fn(inputs), labels).sum()
    return jax.grad(total_loss)(x)


def _uniform_start(key: jax.Array, x: jax.Array, epsilon: float) -> jax.Array:
    """U(-epsilon, epsilon) noise shaped like ``x``, from one key or from one key per example."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if key.ndim == (1 if typed else 2):  # one key per example
        return jax.vmap(lambda k: jax.random.uniform(k, x.shape[1:], x.dtype, -epsilon, epsilon))(key)
    return jax.random.uniform(key, x.shape, x.dtype, -epsilon, epsilon)


def fgsm(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, epsilon: float, *,
         clip: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
    """The fast gradient sign method: one step of ``epsilon * sign(grad)``, then clipped.

    Args:
      logits_fn: ``x [N, ...] -> logits [N, k]`` (the model, with its variables bound).
      x: clean inputs ``[N, ...]`` in ``clip``'s range.
      labels: ``[N]`` integer labels.
      epsilon: the L-infinity radius, in the inputs' units.
      clip: the valid input range.

    Returns:
      Adversarial inputs shaped like ``x``; where the gradient is 0 the input is unchanged.
    """
    grad = _input_gradient(logits_fn, x, labels)
    return jnp.clip(x + epsilon * jnp.sign(grad), *clip)


def pgd(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, key: jax.Array, *, epsilon: float,
        step_size: float, steps: int, random_start: bool = True,
        clip: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
    """Projected gradient descent on the loss (Madry et al. 2018): ``steps`` signed steps of
    ``step_size``, each projected back into the epsilon-ball around ``x`` and the valid range.

    Args:
      logits_fn, x, labels, epsilon, clip: as for :func:`fgsm`.
      key: draws the random start (unused without ``random_start``): one key, or one per
        example (``[N]`` keys, e.g. ``rl_repr.data.images.augment.example_keys``, so that the
        start of each example does not depend on how the batch is split over devices).
      step_size: alpha, the size of each signed step (Madry et al.: 2.5 * epsilon / steps).
      steps: k, the number of steps (a ``jax.lax.fori_loop``).
      random_start: start from a uniform point of the ball rather than from ``x``.

    Returns:
      Adversarial inputs with ``|x' - x| <= epsilon`` elementwise and inside ``clip``.
    """
    low, high = x - epsilon, x + epsilon
    start = x + _uniform_start(key, x, epsilon) if random_start else x

    def step(_, current):
        moved = current + step_size * jnp.sign(_input_gradient(logits_fn, current, labels))
        return jnp.clip(jnp.clip(moved, low, high), *clip)

    return jax.lax.fori_loop(0, steps, step, jnp.clip(start, *clip))


@dataclasses.dataclass(frozen=True)
class Attack:
    """An attack by name and its settings (hashable: close over it or pass it as static).

    Attributes:
      kind: 'fgsm' or 'pgd'.
      epsilon: L-infinity radius in pixel units (inputs in [0, 1]).
      steps: PGD's number of steps.
      step_size: PGD's step; 0 means Madry et al.'s 2.5 * epsilon / steps.
      random_start: PGD starts at a random point of the ball.
    """

    kind: str
    epsilon: float
    steps: int = 10
    step_size: float = 0.0
    random_start: bool = True

    def __post_init__(self):
        if self.kind not in ATTACKS:
            raise ValueError(f"attack {self.kind!r} is not one of {ATTACKS}.")
        if self.epsilon < 0 or self.steps < 1 or self.step_size < 0:
            raise ValueError(f"attack {self} needs epsilon >= 0, steps >= 1 and step_size >= 0.")


def perturb(attack: Attack, logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, key: jax.Array, *,
            clip: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
    """Adversarial inputs for ``attack`` (:func:`fgsm` or :func:`pgd`); ``key`` is PGD's start."""
    if attack.kind == "fgsm":
        return fgsm(logits_fn, x, labels, attack.epsilon, clip=clip)
    step_size = attack.step_size or 2.5 * attack.epsilon / attack.steps
    return pgd(logits_fn, x, labels, key, epsilon=attack.epsilon, step_size=step_size, steps=attack.steps,
               random_start=attack.random_start, clip=clip)
