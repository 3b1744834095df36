"""Sweeps as data: a base recipe plus a list of overrides, each cell an ordinary run.

    python -m rl_repr.sweep --sweep=configs/ablations/batch_size.py:digits --dir=workdirs/sweeps/bs

Define a sweep with :class:`Sweep`, :func:`axis`, :func:`product` and :func:`cells`
(``definition``); run it with :func:`run_sweep` (``runner``); its table and chart come from a
:class:`TableLayout` (``report``).
"""
from rl_repr.sweeps.definition import (Cell, Sweep, ablation_base, axis, cell_config, cell_name, cells,
                                       load_sweep_file, only_cells, product)
from rl_repr.sweeps.report import TableLayout, bar_chart, markdown_table
from rl_repr.sweeps.runner import SUMMARY_FILES, cell_status, collect, publish, run_sweep

__all__ = ["Cell", "Sweep", "TableLayout", "SUMMARY_FILES", "ablation_base", "axis", "bar_chart", "cell_config",
           "cell_name", "cell_status", "cells", "collect", "load_sweep_file", "markdown_table", "only_cells", "product",
           "publish", "run_sweep"]
