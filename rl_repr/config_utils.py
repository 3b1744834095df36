"""Config validation: reject bad values before anything compiles.

Every recipe's ``get_config`` returns an ``ml_collections.ConfigDict``. Two kinds
of mistakes are caught, each with one sentence that names the key:

* **Unknown keys.** ``ml_collections.config_flags`` locks the loaded ConfigDict,
  so ``--config.batch_sze=16`` fails inside absl flag parsing with
  ``AttributeError: 'batch_sze' Did you mean "batch_size"...`` (verified with
  ml-collections in ``tests/test_config_utils.py``). By default that surfaces as
  a traceback; pass :func:`parse_flags_reporting_config_errors` as
  ``absl.app.run(main, flags_parser=...)`` to get one line and exit status 1.
  Values of the wrong type (``--config.batch_size=abc``) are already rejected by
  config_flags with a "Flags parsing error" naming the flag.
* **Invalid values** (negative batch size, unknown optimizer, temperature <= 0,
  ...). A trainer lists :class:`Rule` s -- a key, a predicate and a phrase
  saying what is allowed -- and calls :func:`validate_config` first thing.

Why a list of rules rather than a schema mapping keys to types: the checks we
need are about values (ranges, choices, divisibility, relations between
keys), types are already enforced by ConfigDict's type-safe fields, and a flat
list reads top to bottom and composes (``optim.optimizer_rules() + [...]``).
"""
from __future__ import annotations

import dataclasses
import json
import numbers
import os
import sys
import tempfile
from typing import Any, Callable, Iterable, Sequence

_MISSING = object()


class ConfigError(ValueError):
    """A config value is missing or outside what is allowed."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """One check on one config field.

    Attributes:
      key: dotted path of the field, e.g. ``'model.width'``.
      predicate: ``predicate(value, config) -> bool``; True when the value is
        fine. ``config`` is there for relations between fields.
      allowed: what is allowed, as a phrase ("a positive integer"), or a
        function of the config returning one.
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

    Each violation is one sentence naming the key, the bad value and what is
    allowed, e.g. ``config key 'optimizer' has invalid value 'lamb'; it must be
    one of ('lars', 'sgd', 'adamw').``
    """
    problems = [p for p in (rule.violation(config) for rule in rules) if p is not None]
    if problems:
        raise ConfigError("\n".join(problems))


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


def divisible_by(key: str, divisor: int, what: str = "") -> Rule:
    """An integer > 0 that is a multiple of ``divisor`` (``what`` says why, e.g. 'the 8 devices')."""
    reason = f" ({what})" if what else ""
    def multiple(v, _):
        return _is_int(v) and v > 0 and v % divisor == 0
    def allowed(_):
        return f"a positive multiple of {divisor}{reason}"
    return Rule(key, multiple, allowed)


def check_choice(config: Any, key: str, choices: Sequence[Any]) -> None:
    """Raises :class:`ConfigError` unless ``config.<key>`` is one of ``choices``."""
    validate_config(config, [one_of(key, choices)])


def check_positive(config: Any, key: str) -> None:
    """Raises :class:`ConfigError` unless ``config.<key>`` is a number > 0."""
    validate_config(config, [positive(key)])


# ------------------------------------------------------------------ writing and flags

def config_to_json(config: Any, path: str | os.PathLike) -> str:
    """Writes the resolved config as indented, key-sorted JSON; returns the path.

    Field references are resolved; values JSON cannot hold (tuples become
    lists, other objects their ``repr``) are written best-effort. The file is
    written to a temporary name and renamed, so an existing config.json is
    never left half-written. In a multi-host run call it on process 0 only.
    """
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    text = json.dumps(config, indent=2, sort_keys=True, default=repr)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _innermost_message(error: BaseException) -> str:
    """config_flags wraps a KeyError in an AttributeError; dig out the text."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    return str(error.args[0]) if error.args else str(error)


def parse_flags_reporting_config_errors(argv: list[str]) -> list[str]:
    """An ``absl.app.run`` ``flags_parser`` that turns config-override errors into one line.

    ``config_flags`` raises a bare ``AttributeError`` (a traceback) for an
    override of a key the locked ConfigDict lacks. This parser catches it,
    prints ``Unknown config key 'batch_sze' in --config.batch_sze=16; the config
    file does not define it. Did you mean "batch_size" instead of "batch_sze"?``
    to stderr and exits with status 1. Other flag errors get absl's usual
    one-line "FATAL Flags parsing error" and status 1.
    """
    from absl import flags  # absl is only needed by command-line entry points.

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(1)
    except AttributeError as error:
        first, _, hint = _innermost_message(error).partition("\n")
        key = first.strip("'\"")
        culprit = next((arg for arg in argv[1:] if arg.startswith("--")
                        and key in arg.split("=", 1)[0].split(".")[1:]), None)
        if culprit is None:  # Not an override typo: an error inside the config file.
            raise
        suffix = f" {hint.strip()}" if hint.strip() else ""
        print(f"Unknown config key {key!r} in {culprit}; the config file does not "
              f"define it.{suffix}", file=sys.stderr)
        sys.exit(1)


def import_recipe_file(path: str | os.PathLike, arg: str | None, kind: str,
                       example: str) -> tuple[Any, str | None]:
    """Imports a Python recipe file given as ``path[:arg]``; returns ``(module, arg)``.

    ``kind`` and ``example`` name the file in the error raised when it does not exist
    (e.g. ``"config"``, ``"configs/simclr_digits.py"``).
    """
    import importlib.util  # noqa: PLC0415

    path = os.fspath(path)
    if arg is None and ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{kind} file {path!r} does not exist; pass one from "
                                f"{os.path.dirname(example)}/, e.g. {example}.")
    spec = importlib.util.spec_from_file_location(f"_rl_repr_{kind}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, arg


def load_config_file(path: str | os.PathLike, arg: str | None = None) -> Any:
    """``get_config(arg)`` of a recipe file, as ``--config=path[:arg]`` would load it.

    For programmatic launches (the demo, sweeps, tests); the command line goes through
    ``ml_collections.config_flags``, which locks the result the same way.
    """
    module, arg = import_recipe_file(path, arg, "config", "configs/simclr_digits.py")
    config = module.get_config(arg) if arg is not None else module.get_config()
    if hasattr(config, "lock"):
        config.lock()
    return config
