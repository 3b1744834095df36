"""Sweeps as data: a base recipe plus a list of overrides, each cell an ordinary run.

A sweep file (``configs/ablations/*.py``) defines ``get_sweep(arg) -> Sweep``::

    grid = sweeps.product(sweeps.axis("batch_size", [256, 512]), sweeps.axis("epochs", [100.0, 200.0]))
    return sweeps.Sweep(name="batch_size", base=base, cells=sweeps.cells(grid), layout=LAYOUT)

``rl_repr.sweeps.runner`` trains the cells; ``rl_repr.sweeps.report`` lays them out.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from typing import Any, Mapping, Sequence

from rl_repr.core.config import ConfigError
from rl_repr.core.recipes import import_recipe_file, load_config_file
from rl_repr.sweeps.report import TableLayout

Overrides = Mapping[str, Any]


# ============================================================================ definition
@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: a name (its workdir) and the dotted config keys it overrides."""

    name: str
    overrides: Overrides


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A base config and the cells that override it.

    Attributes:
      name: short name, used in titles.
      base: the base recipe (an ``ml_collections.ConfigDict``, ideally locked so that a
        misspelt override key is an error).
      cells: the runs, in the order they are trained.
      layout: how the table and chart arrange the cells (its keys must be set by every cell).
      description: one paragraph for the table's heading (budget, what to look for).

    Every cell's config is checked by its method's rules (``rl_repr.core.runner.validate``)
    before the first cell trains.
    """

    name: str
    base: Any
    cells: tuple[Cell, ...]
    layout: TableLayout
    description: str = ""

    def __post_init__(self):
        names = [c.name for c in self.cells]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"sweep {self.name!r} has duplicate cell names {duplicates}; give the cells "
                             "distinct overrides or pass name_keys that tell them apart.")
        for cell in self.cells:
            missing = [k for k in self.layout.keys() if k not in cell.overrides]
            if missing:
                raise ValueError(f"cell {cell.name!r} of sweep {self.name!r} does not set {missing}, which "
                                 "its table layout uses; add them to every cell's overrides.")


def axis(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """One override per value of a dotted config key: ``axis('batch_size', [32, 64])``."""
    return [{key: v} for v in values]


def product(*axes: Sequence[Overrides]) -> list[dict[str, Any]]:
    """The Cartesian product of axes, each a list of override dicts, merged left to right.

    An axis may set several keys per value (``[{'lr_scaling': 'linear', 'base_lr': 4.8}, ...]``).
    The first axis varies slowest: ``product(axis('a', [1, 2]), axis('b', [3, 4]))`` is
    ``[{a:1,b:3}, {a:1,b:4}, {a:2,b:3}, {a:2,b:4}]``.
    """
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(_format(v) for v in value)
    return str(value)


def cell_name(overrides: Overrides, keys: Sequence[str] | None = None) -> str:
    """A directory name from the overrides: ``batch_size=32,epochs=10,lr_scaling=sqrt``.

    ``keys`` picks (and orders) the keys named; each is shortened to its last dotted part.
    """
    keys = list(overrides) if keys is None else keys
    name = ",".join(f"{k.split('.')[-1]}={_format(overrides[k])}" for k in keys)
    return re.sub(r"[^A-Za-z0-9._=,+-]", "-", name)


def cells(overrides: Sequence[Overrides], name_keys: Sequence[str] | None = None) -> tuple[Cell, ...]:
    """Cells named by :func:`cell_name` from a list of override dicts (e.g. :func:`product`)."""
    return tuple(Cell(cell_name(o, name_keys), dict(o)) for o in overrides)


def only_cells(sweep: Sweep, names: Sequence[str]) -> Sweep:
    """``sweep`` with only the cells named in ``names`` (in the sweep's order); a name the sweep
    lacks raises ``ConfigError`` listing the ones it has."""
    unknown = [name for name in names if name not in {cell.name for cell in sweep.cells}]
    if unknown:
        raise ConfigError(f"sweep {sweep.name!r} has no cell {', '.join(map(repr, unknown))}; its cells are "
                          f"{', '.join(cell.name for cell in sweep.cells)} (--list prints them).")
    return dataclasses.replace(sweep, cells=tuple(cell for cell in sweep.cells if cell.name in names))


def cell_config(base: Any, overrides: Overrides) -> Any:
    """A copy of ``base`` with the dotted ``overrides`` set (``ConfigDict.update_from_flattened_dict``);
    a key the base lacks (or a value of the wrong type) raises ``ConfigError`` naming it."""
    config = copy.deepcopy(base)
    try:
        config.update_from_flattened_dict(dict(overrides))
    except (KeyError, AttributeError, TypeError) as error:
        raise ConfigError(f"sweep override {_first_bad(base, overrides)} does not fit the base config ({error!r}); "
                          "use a key the recipe defines, with a value of its type.") from None
    return config


def _first_bad(base: Any, overrides: Overrides) -> str:
    """``key=value`` of the first override that ``base`` cannot take, for the message."""
    for key, value in overrides.items():
        try:
            copy.deepcopy(base).update_from_flattened_dict({key: value})
        except (KeyError, AttributeError, TypeError):
            return f"{key}={value!r}"
    return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


def ablation_base(recipe_path: str, *, quick: bool = False, **overrides: Any) -> Any:
    """A recipe as an ablation's base config: evaluated once at the end, with no baselines
    and no fine-tuning (each cell measures only its own change); ``quick`` cuts the budget to
    30 epochs with 3 of warmup, a first look. ``overrides`` are applied on top."""
    base = load_config_file(recipe_path)
    base.update(eval_every_steps=0, baselines=False, finetune_fractions=(), log_every_steps=50, **overrides)
    if quick:
        base.update(epochs=30.0, warmup_epochs=3.0)
    return base


def load_sweep_file(spec: str) -> Sweep:
    """``get_sweep(arg)`` of ``path[:arg]``, e.g. ``configs/ablations/batch_size.py:digits``."""
    module, arg = import_recipe_file(spec, None, "sweep", "get_sweep", "configs/ablations/batch_size.py:digits")
    return module.get_sweep(arg)
