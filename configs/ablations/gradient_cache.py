"""Representation caching with batch norm: what per-chunk statistics do to the digits demo.

    python -m rl_repr.sweep --sweep=configs/ablations/gradient_cache.py:digits --dir=workdirs/sweeps/gradient_cache

With batch norm, representation caching (``gradient_cache_chunks = K``) normalises each chunk
of 2B/K views by its own statistics instead of the batch's (``rl_repr/simclr/gradient_cache.py``
says exactly what differs). The digits recipe (batch 256, batch norm in the ResNet and the
head) is trained plainly and with K = 4 and 16 chunks (128 and 32 views per chunk's
statistics), everything else equal. Without batch norm the cached gradient is the
full-batch gradient (tested in tests/test_gradient_cache.py), so there is nothing to measure.

Arguments: 'digits' (the recipe's 150 epochs) or 'digits_quick' (30 epochs). On CPU a cached
step is several times slower than a plain one (XLA:CPU runs convolution gradients inside a
loop body slowly; see benchmarks/large_batch.py).
"""
import os

from rl_repr import sweeps
from rl_repr.core.recipes import launch_arguments

_CONFIGS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNKS = (0, 4, 16)

LAYOUT = sweeps.TableLayout(rows="gradient_cache_chunks", row_label="chunks (0 = plain step)",
                     metrics=("linear_probe_accuracy", "knn_accuracy"),
                     metric_labels={"linear_probe_accuracy": "linear evaluation", "knn_accuracy": "kNN"})


def get_sweep(arg=None) -> sweeps.Sweep:
    arg = launch_arguments(arg, "configs/ablations/gradient_cache.py", tokens=("digits", "digits_quick"),
                           exactly_one=("digits", "digits_quick")).tokens[0]
    base = sweeps.ablation_base(os.path.join(_CONFIGS, "simclr_digits.py"), quick=arg == "digits_quick")
    reduced = "Reduced budget, a first look; " if arg == "digits_quick" else ""
    note = (f"{reduced}Representation caching with batch norm ({arg}): digits recipe, {base.epochs:g} epochs, "
            f"batch {base.batch_size}; K chunks = batch statistics over {2 * base.batch_size}/K views.")
    return sweeps.Sweep(name=f"gradient_cache-{arg}", base=base,
                        cells=sweeps.cells(sweeps.axis("gradient_cache_chunks", CHUNKS)), layout=LAYOUT,
                        description=note)
