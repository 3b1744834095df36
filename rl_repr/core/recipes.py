"""Recipe files: ``configs/<name>.py:<launch argument>`` and ``--config.key=value`` overrides.

A recipe is a Python file with ``get_config(arg=None) -> ConfigDict`` (a sweep file has
``get_sweep(arg=None)``). Its launch argument is a comma-separated list of *tokens* (named
variants such as ``runlocal``) and ``key=value`` settings, read by :func:`launch_arguments` so
that every recipe accepts and refuses the same way::

    def get_config(arg=None):
        args = recipes.launch_arguments(arg, "configs/simclr_imagenet.py",
                                        tokens=("sqrt", "runlocal"), values={"epochs": float})
        ...
        if "runlocal" in args: ...
        c.epochs = args.get("epochs", c.epochs)

The command line goes through ``ml_collections.config_flags`` (which locks the config, so a
misspelt ``--config.batch_sze=64`` is an error) with :func:`parse_flags` as absl's flags
parser: a recipe that cannot be loaded, an unknown key or a value of the wrong type is one
line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from typing import Any, Mapping, Sequence

from rl_repr.core.config import ConfigError
from rl_repr.core.files import atomic_open


class RecipeNotFoundError(ConfigError, FileNotFoundError):
    """The recipe (or sweep) file named on the command line does not exist."""


# ------------------------------------------------------------------ launch arguments
@dataclasses.dataclass(frozen=True)
class LaunchArguments:
    """A parsed launch argument: the tokens given and the ``key=value`` settings (typed)."""

    tokens: tuple[str, ...]
    values: Mapping[str, Any]

    def __contains__(self, token: str) -> bool:
        return token in self.tokens

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def first(self, choices: Sequence[str], default: str | None = None) -> str | None:
        """The token among ``choices`` that was given, else ``default``."""
        return next((t for t in self.tokens if t in choices), default)


def launch_arguments(arg: str | None, recipe: str, *, tokens: Sequence[str] = (),
                     values: Mapping[str, type] | None = None,
                     at_most_one: Sequence[Sequence[str]] = (),
                     exactly_one: Sequence[str] = ()) -> LaunchArguments:
    """Parses ``'token,token,key=value'`` for the recipe file ``recipe``.

    Args:
      arg: the text after the colon in ``--config=recipe.py:arg`` (None or '' for none).
      recipe: the recipe's path, for messages.
      tokens: the names this recipe accepts.
      values: ``key -> type`` of the settings it accepts (``epochs=800`` -> ``float('800')``).
      at_most_one: groups of tokens of which at most one may be given.
      exactly_one: tokens of which exactly one must be given (a sweep's grid, say).

    Raises:
      ConfigError: an unknown token or key, a value of the wrong type, two tokens of one
        group, or not exactly one of ``exactly_one``; one sentence listing what is accepted.
    """
    values = dict(values or {})
    accepted = ", ".join([repr(t) for t in tokens] + [f"'{k}=<{v.__name__}>'" for k, v in values.items()])
    usage = f"{recipe} takes {accepted or 'no launch argument'} (comma-separated)"
    given, settings = [], {}
    for part in [p.strip() for p in (arg or "").split(",") if p.strip()]:
        key, is_setting, text = part.partition("=")
        if is_setting:
            if key not in values:
                raise ConfigError(f"{usage}; {key!r} in {part!r} is not one of them.")
            try:
                settings[key] = values[key](text)
            except ValueError:
                raise ConfigError(f"{usage}; {part!r} is not a {values[key].__name__}.") from None
        elif part in tokens:
            given.append(part)
        else:
            raise ConfigError(f"{usage}; {part!r} is not one of them.")
    for group in at_most_one:
        chosen = [t for t in given if t in group]
        if len(chosen) > 1:
            raise ConfigError(f"{recipe}: pick at most one of {tuple(group)}, not {chosen}.")
    if exactly_one and sum(t in exactly_one for t in given) != 1:
        raise ConfigError(f"{recipe} needs exactly one of {tuple(exactly_one)} as its launch argument, "
                          f"not {arg!r}.")
    return LaunchArguments(tuple(given), settings)


# ------------------------------------------------------------------ loading recipe files
def import_recipe_file(path: str | os.PathLike, arg: str | None, kind: str, function: str,
                       example: str) -> tuple[Any, str | None]:
    """Imports a Python recipe file given as ``path[:arg]``; returns ``(module, arg)``.

    ``kind`` and ``example`` name the file in messages (e.g. ``"config"``,
    ``"configs/simclr_digits.py"``); ``function`` is what it must define (``get_config``).

    Raises:
      ConfigError: the file does not exist, is not valid Python, fails on import, or does
        not define ``function``.
    """
    path = os.fspath(path)
    if arg is None and ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise RecipeNotFoundError(f"{kind} file {path!r} does not exist; pass one from "
                          f"{os.path.dirname(example)}/, e.g. {example}.")
    spec = importlib.util.spec_from_file_location(f"_rl_repr_{kind}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise ConfigError(f"{kind} file {path!r} is not valid Python (line {error.lineno}: {error.msg}); "
                          "fix it or pass another recipe.") from None
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the file raised, say it in one line
        raise ConfigError(f"{kind} file {path!r} failed on import ({type(error).__name__}: {error}); "
                          "fix it or pass another recipe.") from None
    if not callable(getattr(module, function, None)):
        raise ConfigError(f"{kind} file {path!r} defines no {function}(arg=None); a recipe must "
                          f"(see {example}).")
    return module, arg


def load_config_file(path: str | os.PathLike, arg: str | None = None) -> Any:
    """``get_config(arg)`` of a recipe file, as ``--config=path[:arg]`` would load it; locked.

    For programmatic launches (the demo, sweeps, tests) and to check a recipe before the
    command line's own loading. Raises :class:`ConfigError` in one sentence for a missing or
    broken file and for a launch argument the recipe refuses.
    """
    module, arg = import_recipe_file(path, arg, "config", "get_config", "configs/simclr_digits.py")
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{os.fspath(path)}: {error}") from None
    if hasattr(config, "lock"):
        config.lock()
    return config


def config_to_json(config: Any, path: str | os.PathLike) -> str:
    """Writes the resolved config as indented, key-sorted JSON, atomically; returns the path.

    Field references are resolved; values JSON cannot hold (tuples become lists, other
    objects their ``repr``) are written best-effort. In a multi-host run call it on process 0.
    """
    data = config.to_dict() if hasattr(config, "to_dict") else config
    with atomic_open(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=True, default=repr) + "\n")
    return os.fspath(path)


def config_as_json_data(config: Any) -> Any:
    """The config as :func:`config_to_json` writes it, read back (for comparisons)."""
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(data, sort_keys=True, default=repr))


# ------------------------------------------------------------------ the command line
def _innermost_message(error: BaseException) -> str:
    """config_flags wraps a KeyError in an AttributeError; dig out the text."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    return str(error.args[0]) if error.args else str(error)


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    """An ``absl.app.run`` ``flags_parser``: every command-line mistake is one line, status 1.

    * the ``--config`` recipe is loaded first with :func:`load_config_file`, so a missing
      file, a syntax error, a file without ``get_config`` or a refused launch argument is
      one sentence (``config_flags`` would print a traceback);
    * an override of a key the locked config lacks prints ``Unknown config key 'batch_sze' in
      --config.batch_sze=16; the config file does not define it. Did you mean "batch_size"...``;
    * other flag errors (a value of the wrong type) get absl's one-line "Flags parsing error".
    """
    from absl import flags  # noqa: PLC0415 (absl is only needed by command-line entry points)

    recipe = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
    if recipe:
        try:
            load_config_file(os.path.expanduser(recipe))
        except ConfigError as error:
            _fail(f"Invalid config: {error}")
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        first = str(error).strip().splitlines()[0]
        _fail(f"FATAL Flags parsing error: {first}\nPass --helpshort or --helpfull to see help on flags.")
    except AttributeError as error:
        first, _, hint = _innermost_message(error).partition("\n")
        key = first.strip("'\"")
        culprit = next((arg for arg in argv[1:] if arg.startswith("--")
                        and key in arg.split("=", 1)[0].split(".")[1:]), None)
        if culprit is None:  # Not an override typo: an error inside the config file.
            raise
        suffix = f" {hint.strip()}" if hint.strip() else ""
        _fail(f"Unknown config key {key!r} in {culprit}; the config file does not define it.{suffix}")
    return []
