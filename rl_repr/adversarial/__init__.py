"""rl_repr.adversarial: adversarial examples and adversarial training.

    from rl_repr import adversarial
    x_adv = adversarial.fgsm(logits_fn, x, labels, epsilon=0.1)
    x_adv = adversarial.pgd(logits_fn, x, labels, key, epsilon=8 / 255, step_size=2 / 255, steps=7)
    inputs, labels, weights = adversarial.adversarial_batch(adversarial.Attack("pgd", 0.1), 1.0, logits_fn, x, y, key)

Modules: ``attacks`` (FGSM, PGD, an :class:`Attack` by name) and ``robustness`` (the inputs and
loss weights of adversarial training, accuracy under attack).
"""
from rl_repr.adversarial.attacks import *  # noqa: F401,F403
from rl_repr.adversarial.robustness import *  # noqa: F401,F403
from rl_repr.adversarial import attacks as _attacks, robustness as _robustness

__all__ = [*_attacks.__all__, *_robustness.__all__]
