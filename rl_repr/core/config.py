"""Config validation: every bad value is one sentence naming the key, before anything compiles.

Every recipe's ``get_config`` returns an ``ml_collections.ConfigDict``. Two kinds of mistakes
are caught, each with one sentence that names the key:

* **Unknown keys.** A key the method does not define (``batch_sze``) is refused by
  :func:`check_known_keys` against the method's defaults; on the command line
  ``ml_collections.config_flags`` locks the loaded config, and
  :func:`rl_repr.core.recipes.parse_flags` turns its ``AttributeError`` into one line.
* **Invalid values** (negative batch size, unknown optimizer, temperature <= 0, ...). A method
  lists :class:`Rule` s -- a key, a predicate and a phrase saying what is allowed -- and the
  runner checks them with :func:`validate_config` first thing. Rule lists compose: a method's
  rules are ``rl_repr.core.system.system_rules() + rl_repr.core.optim.optimizer_rules() +
  [its own]``.

Why a list of rules rather than a schema mapping keys to types: the checks we need are about
values (ranges, choices, divisibility, relations between keys), types are already enforced by
ConfigDict's type-safe fields, and a flat list reads top to bottom and composes.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Iterable, Sequence

from rl_repr.core.errors import ConfigError
from rl_repr.core.extras import require

ml_collections = require("ml_collections")

__all__ = ["ConfigError", "Rule", "check_known_keys", "divides", "get_dotted", "in_interval", "is_int",
           "leaf_keys", "non_negative", "non_negative_int", "one_of", "positive", "positive_int", "tuple_of",
           "validate_config"]

_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Rule:
    """One check on one config field.

    Attributes:
      key: dotted path of the field, e.g. ``'model.width'``.
      predicate: ``predicate(value, config) -> bool``; True when the value is fine. ``config``
        is there for relations between fields.
      allowed: what is allowed, as a phrase ("a positive integer"), or a function of the
        config returning one.
    """

    key: str
    predicate: Callable[[Any, Any], bool]
    allowed: str | Callable[[Any], str]

    def violation(self, config: Any) -> str | None:
        """The one-sentence complaint for ``config``, or None when it passes."""
        value = get_dotted(config, self.key)
        allowed = self.allowed(config) if callable(self.allowed) else self.allowed
        if value is _MISSING:
            return f"config key {self.key!r} is missing; it must be {allowed}."
        try:
            ok = bool(self.predicate(value, config))
        # e.g. comparing a string with a number, or a related key that is itself missing
        except (TypeError, ValueError, AttributeError, KeyError):
            ok = False
        if ok:
            return None
        return f"config key {self.key!r} has invalid value {value!r}; it must be {allowed}."


def get_dotted(config: Any, key: str, default: Any = _MISSING) -> Any:
    """``config.a.b.c`` for ``key='a.b.c'``; ``default`` when a part is absent."""
    node = config
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return default
    return node


def validate_config(config: Any, rules: Iterable[Rule]) -> None:
    """Checks every rule and raises one :class:`ConfigError` listing all violations.

    Each violation is one sentence naming the key, the bad value and what is allowed, e.g.
    ``config key 'optimizer' has invalid value 'lamb'; it must be one of ('lars', 'sgd', 'adamw').``
    """
    problems = [p for p in (rule.violation(config) for rule in rules) if p is not None]
    if problems:
        raise ConfigError("\n".join(problems))


def leaf_keys(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf of a ConfigDict."""
    keys = set()
    for name, value in config.items():
        path = f"{prefix}{name}"
        keys |= leaf_keys(value, path + ".") if isinstance(value, ml_collections.ConfigDict) else {path}
    return keys


def check_known_keys(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict,
                     where: str) -> None:
    """Raises :class:`ConfigError` naming every key of ``config`` that ``defaults`` lacks.

    ``where`` names the module that lists the keys (e.g. ``'rl_repr/simclr/config.py'``).
    """
    unknown = sorted(leaf_keys(config) - leaf_keys(defaults))
    if unknown:
        raise ConfigError(f"config keys {unknown} are not {config.get('method', 'this method')!s} settings; "
                          f"remove or correct them (the keys and their defaults are in {where}).")


# ------------------------------------------------------------------ rule factories
def _is_number(value: Any) -> bool:
    # bool is an int subclass; True as a learning rate is a bug, not a 1.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def one_of(key: str, choices: Sequence[Any]) -> Rule:
    """The value is one of ``choices``."""
    choices = tuple(choices)
    return Rule(key, lambda v, _: v in choices, f"one of {choices}")


def positive(key: str) -> Rule:
    """A number > 0."""
    return Rule(key, lambda v, _: _is_number(v) and v > 0, "a number > 0")


def non_negative(key: str) -> Rule:
    """A number >= 0."""
    return Rule(key, lambda v, _: _is_number(v) and v >= 0, "a number >= 0")


def positive_int(key: str) -> Rule:
    """An integer > 0."""
    return Rule(key, lambda v, _: _is_int(v) and v > 0, "an integer > 0")


def non_negative_int(key: str) -> Rule:
    """An integer >= 0."""
    return Rule(key, lambda v, _: _is_int(v) and v >= 0, "an integer >= 0")


def in_interval(key: str, low: float, high: float, *, low_inclusive: bool = True,
                high_inclusive: bool = True) -> Rule:
    """A number in the interval from ``low`` to ``high`` (ends as requested)."""
    def inside(v, _):
        return (_is_number(v) and (v >= low if low_inclusive else v > low)
                and (v <= high if high_inclusive else v < high))
    brackets = ("[" if low_inclusive else "(") + f"{low}, {high}" + ("]" if high_inclusive else ")")
    return Rule(key, inside, f"a number in {brackets}")


def divides(key: str, total_key: str, meaning: str) -> Rule:
    """0 (off) or a positive divisor of ``config.<total_key>``; ``meaning`` says what 0 means."""
    return Rule(key, lambda k, c: _is_int(k) and (k == 0 or (k > 0 and get_dotted(c, total_key) % k == 0)),
                f"0 ({meaning}) or a divisor of config.{total_key}")


def tuple_of(key: str, predicate: Callable[[Any], bool], allowed: str, *, non_empty: bool = True) -> Rule:
    """A tuple (or list) whose items all pass ``predicate``; non-empty unless told otherwise."""
    return Rule(key, lambda v, _: isinstance(v, (tuple, list)) and (len(v) > 0 or not non_empty)
                and all(predicate(x) for x in v), allowed)


def is_int(value: Any) -> bool:
    """An integer that is not a bool (for :func:`tuple_of` predicates)."""
    return _is_int(value)
