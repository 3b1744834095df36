"""A sweep's results as a table laid out like SimCLR's Table B.1 and a bar chart like Figure 9.

Both read the sweep's collected entries (``rl_repr.sweeps.runner.collect``): one dict per cell with
its ``overrides`` (the config keys the cell sets), its ``status`` ('done', 'pending',
'diverged', 'failed') and, when done, its ``results`` (the cell's ``results.json``).
A :class:`TableLayout` names which override keys become rows, columns and the values that
share one table cell (Table B.1 shows "linear/sqrt" LR scaling in each cell).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

from rl_repr.core.extras import require

Entry = Mapping[str, Any]
STATUS_MARKS = {"pending": "…", "diverged": "div", "failed": "err"}


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """How a sweep's cells are laid out in its table and chart.

    Attributes:
      rows: override key whose values are the table rows (e.g. ``'batch_size'``).
      columns: override key whose values are the columns (e.g. ``'epochs'``), or None to
        make one column per metric (an ablation whose cells differ in one key).
      split: override key whose values share one table cell, written ``a/b`` in the order
        they first appear (e.g. ``'lr_scaling'`` -> "linear/sqrt"); None for one value.
      metrics: result keys shown, as accuracies in percent; with ``columns`` set only the
        first is shown.
      row_label / column_label: headings; default the keys.
      value_labels: display names of row/column values, e.g. ``{0: 'none', 1: 'linear'}``.
      metric_labels: display names of the metrics.
    """

    rows: str
    columns: str | None = None
    split: str | None = None
    metrics: tuple[str, ...] = ("linear_probe_accuracy",)
    row_label: str = ""
    column_label: str = ""
    value_labels: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    metric_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def keys(self) -> tuple[str, ...]:
        """The override keys every cell must set."""
        return tuple(k for k in (self.rows, self.columns, self.split) if k is not None)

    def label(self, value: Any) -> str:
        if value in self.value_labels:
            return self.value_labels[value]
        return f"{value:g}" if isinstance(value, float) else str(value)

    def metric_label(self, metric: str) -> str:
        return self.metric_labels.get(metric, metric)


def _distinct(values: Sequence[Any]) -> list[Any]:
    """Values in order of first appearance (sorted when all are numbers)."""
    seen = list(dict.fromkeys(values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return sorted(seen)
    return seen


def _value(entry: Entry | None, metric: str) -> float | None:
    if entry is None or entry.get("status") != "done":
        return None
    value = entry.get("results", {}).get(metric)
    return None if value is None else float(value)


def _mark(entry: Entry | None, metric: str) -> str:
    value = _value(entry, metric)
    if value is not None:
        return f"{100 * value:.1f}"
    return "–" if entry is None else STATUS_MARKS.get(entry.get("status"), "–")


def _index(entries: Sequence[Entry], layout: TableLayout) -> dict[tuple, Entry]:
    return {tuple(e["overrides"].get(k) for k in layout.keys()): e for e in entries}


def markdown_table(entries: Sequence[Entry], layout: TableLayout, title: str = "") -> str:
    """The sweep as a Markdown table: accuracies in percent (1 decimal), ``a/b`` per cell when
    ``layout.split`` is set; '…' a cell not yet run, 'div' a diverged one, 'err' a failure."""
    by_key = _index(entries, layout)
    rows = _distinct([e["overrides"][layout.rows] for e in entries])
    splits = _distinct([e["overrides"][layout.split] for e in entries]) if layout.split else [None]
    if layout.columns is not None:
        columns = _distinct([e["overrides"][layout.columns] for e in entries])
        headings = [f"{layout.label(c)} {layout.column_label}".strip() for c in columns]
        cell_keys = [(c, layout.metrics[0]) for c in columns]
    else:
        headings = [layout.metric_label(m) for m in layout.metrics]
        cell_keys = [(None, m) for m in layout.metrics]

    def lookup(row, column, split):
        key = (row,) + ((column,) if layout.columns is not None else ()) + ((split,) if layout.split else ())
        return by_key.get(key)

    lines = []
    if title:
        lines += [f"**{title}**", ""]
    what = layout.metric_label(layout.metrics[0]) if layout.columns is not None else "accuracy"
    legend = f"{what} (%)"
    if layout.split:
        legend += f"; each cell {'/'.join(layout.label(s) for s in splits)} ({layout.split})"
    lines += [legend, ""]
    lines.append("| " + " | ".join([layout.row_label or layout.rows] + headings) + " |")
    lines.append("|" + "---|" * (len(headings) + 1))
    for row in rows:
        marks = ["/".join(_mark(lookup(row, column, s), metric) for s in splits) for column, metric in cell_keys]
        lines.append("| " + " | ".join([layout.label(row)] + marks) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(entries: Sequence[Entry], layout: TableLayout, path: str, title: str = "") -> str:
    """A grouped bar chart like SimCLR's Figure 9; writes a PNG to ``path`` and returns it.

    With ``layout.columns`` (Figure 9): groups along x are the column values (epochs), one
    bar per row value (batch size), y the first metric in percent. Without: groups are the
    row values and the bars are the metrics. One panel per ``split`` value. Cells not
    finished are left out (their bar is missing).
    """
    matplotlib = require("matplotlib")  # only needed when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    by_key = _index(entries, layout)
    rows = _distinct([e["overrides"][layout.rows] for e in entries])
    splits = _distinct([e["overrides"][layout.split] for e in entries]) if layout.split else [None]
    if layout.columns is not None:
        groups = _distinct([e["overrides"][layout.columns] for e in entries])
        bars = rows
        group_label = layout.column_label or layout.columns
    else:
        groups, bars = rows, list(layout.metrics)
        group_label = layout.row_label or layout.rows

    def height(group, bar, split):
        if layout.columns is not None:
            key, metric = (bar, group), layout.metrics[0]
        else:
            key, metric = (group,), bar
        value = _value(by_key.get(key + ((split,) if layout.split else ())), metric)
        return None if value is None else 100 * value

    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False, sharey=True)
    width = 0.8 / len(bars)
    values = [h for g in groups for b in bars for s in splits if (h := height(g, b, s)) is not None]
    for ax, split in zip(axes[0], splits):
        for j, bar in enumerate(bars):
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(groups))]
            hs = [height(g, bar, split) for g in groups]
            label = layout.label(bar) if layout.columns is not None else layout.metric_label(bar)
            ax.bar([x for x, h in zip(xs, hs) if h is not None], [h for h in hs if h is not None],
                   width=width, label=label)
        ax.set_xticks(range(len(groups)), [layout.label(g) for g in groups])
        ax.set_xlabel(group_label)
        ax.set_title(f"{layout.split} = {layout.label(split)}" if layout.split else title)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("linear evaluation accuracy (%)" if layout.columns is not None else "accuracy (%)")
    if values:  # like Figure 9, start the axis near the data so the differences show
        low, high = min(values), max(values)
        axes[0][0].set_ylim(max(0.0, low - max(2.0, 0.25 * (high - low))), min(100.0, high + 1.0))
    # outside the last panel, so it never covers a bar
    axes[0][-1].legend(title=(layout.row_label or layout.rows) if layout.columns is not None else None,
                       fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title and layout.split:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
