"""Representation caching with batch norm: what per-chunk statistics do to the digits demo.

    python -m rl_repr.sweep --sweep=configs/ablations/gradient_cache.py:digits --dir=workdirs/sweeps/gradient_cache

With batch norm, representation caching (``gradient_cache_chunks = K``) normalises each chunk
of 2B/K views by its own statistics instead of the batch's (``rl_repr/train/gradient_cache.py``
says exactly what differs). The digits recipe (batch 256, batch norm in the ResNet and the
head) is trained plainly and with K = 4 and 16 chunks (128 and 32 views per chunk's
statistics), everything else equal. Without batch norm the cached gradient is the
full-batch gradient (tested in tests/test_gradient_cache.py), so there is nothing to measure.

Arguments: 'digits' (the recipe's 150 epochs) or 'digits_quick' (30 epochs). On CPU a cached
step is several times slower than a plain one (XLA:CPU runs convolution gradients inside a
loop body slowly; see benchmarks/large_batch.py).
"""
import os

from rl_repr import sweep
from rl_repr.sweep_report import TableLayout
from rl_repr.train.simclr_config import validate_simclr_config

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNKS = (0, 4, 16)

LAYOUT = TableLayout(rows="gradient_cache_chunks", row_label="chunks (0 = plain step)",
                     metrics=("linear_probe_accuracy", "knn_accuracy"),
                     metric_labels={"linear_probe_accuracy": "linear evaluation", "knn_accuracy": "kNN"})


def get_sweep(arg=None) -> sweep.Sweep:
    if arg not in ("digits", "digits_quick"):
        raise ValueError(f"configs/ablations/gradient_cache.py takes 'digits' or 'digits_quick', not {arg!r}.")
    base = sweep.ablation_base(os.path.join(_CONFIGS, "simclr_digits.py"), quick=arg == "digits_quick")
    reduced = "Reduced budget, a first look; " if arg == "digits_quick" else ""
    note = (f"{reduced}Representation caching with batch norm ({arg}): digits recipe, {base.epochs:g} epochs, "
            f"batch {base.batch_size}; K chunks = batch statistics over {2 * base.batch_size}/K views.")
    return sweep.Sweep(name=f"gradient_cache-{arg}", base=base,
                       cells=sweep.cells(sweep.axis("gradient_cache_chunks", CHUNKS)), layout=LAYOUT,
                       description=note, validate=validate_simclr_config)
