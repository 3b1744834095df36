"""Speed and memory of NT-Xent loss + gradient: ours (dense, chunked) vs optax.ntxent.

For each N (views per side; 2N views of width d) and each method it compiles
``jax.value_and_grad(loss, argnums=(0, 1))`` on [N, d] float32 inputs and reports

* ``xla_temp_gib``: the compiled executable's ``memory_analysis()`` temporary
  buffers (what the loss needs beyond its inputs and outputs). It needs no run,
  so it is also given for the cases that are skipped because it exceeds
  ``--memory-limit-gib``.
* ``peak_rss_increase_gib``: the measured peak of the process's resident memory
  during the timed runs minus its level just before them (sampled every 2 ms
  from /proc/self/statm). Each case runs in a fresh subprocess, so one case's
  allocations cannot hide another's.
* ``device_peak_gib`` (accelerators only, where ``memory_stats()`` exists):
  the device allocator's peak bytes in use over the whole subprocess, inputs
  and compilation scratch included; resident memory says nothing there.
* ``seconds``: the median wall time of up to ``--repeats`` runs after
  compilation (fewer for slow cases, see ``--time-budget``), and each run.

The methods are ``rl_repr.losses.nt_xent`` dense (``chunk_size=None``), chunked
(``chunk_size=--chunk-size``), and ``optax.ntxent`` on the stacked views
``[z1; z2]`` with labels ``[0..N-1, 0..N-1]`` marking the pairs (it equals our
loss; each row records the loss value to show it). It uses JAX's default
backend, so the same script runs on a GPU.

Usage::

    python benchmarks/contrastive_loss.py --out benchmarks/results/contrastive_loss-cpu.json

On a GPU, XLA fuses optax's ``[2N, 2N, d]`` broadcast (it fits) but compiling
it grows steeply (about 6 minutes at N=16384 on an H100): add
``--methods dense,chunked`` beyond that, and ``--memory-limit-gib`` to suit
the card.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

METHODS = ("dense", "chunked", "optax")
TEMPERATURE = 0.1


# ------------------------------------------------------------- one case
def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakResidentMemory:
    """Samples resident memory in a thread; ``peak`` is the highest value seen."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s, self.peak = interval_s, _resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _resident_bytes())
            time.sleep(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _resident_bytes())


def _loss_fn(method: str, n: int, chunk_size: int):
    import jax.numpy as jnp
    import optax

    from rl_repr.losses import nt_xent

    if method == "dense":
        return lambda z1, z2: nt_xent(z1, z2, TEMPERATURE)
    if method == "chunked":
        return lambda z1, z2: nt_xent(z1, z2, TEMPERATURE, chunk_size=chunk_size)
    labels = jnp.concatenate([jnp.arange(n), jnp.arange(n)])
    return lambda z1, z2: optax.ntxent(jnp.concatenate([z1, z2]), labels, TEMPERATURE)


def run_case(method: str, n: int, dim: int, chunk_size: int, repeats: int,
             time_budget_s: float, memory_limit_gib: float) -> dict:
    """Compiles, checks the memory estimate, times and measures one (method, N)."""
    import jax
    import numpy as np

    gib = 2.0 ** 30
    row = {"method": method, "n": n, "views": 2 * n, "dim": dim}
    if method == "chunked":
        row["chunk_size"] = chunk_size
    step = jax.jit(jax.value_and_grad(_loss_fn(method, n, chunk_size), argnums=(0, 1)))
    spec = jax.ShapeDtypeStruct((n, dim), np.float32)
    start = time.perf_counter()
    compiled = step.lower(spec, spec).compile()
    row["compile_seconds"] = round(time.perf_counter() - start, 3)
    analysis = compiled.memory_analysis()
    if analysis is not None:
        row["xla_temp_gib"] = round(analysis.temp_size_in_bytes / gib, 4)
        if analysis.temp_size_in_bytes / gib > memory_limit_gib:
            row["skipped"] = (f"compiled temporaries need {analysis.temp_size_in_bytes / gib:.1f} "
                              f"GiB > the {memory_limit_gib:g} GiB limit")
            return row

    rng = np.random.default_rng(0)
    z1, z2 = (jax.device_put(rng.normal(size=(n, dim)).astype(np.float32)) for _ in range(2))
    times = []
    before = _resident_bytes()
    with _PeakResidentMemory() as memory:
        while len(times) < repeats:
            start = time.perf_counter()
            loss, grads = jax.block_until_ready(compiled(z1, z2))
            times.append(time.perf_counter() - start)
            if sum(times) > time_budget_s:
                break
    row["seconds"] = round(float(np.median(times)), 4)
    row["runs_seconds"] = [round(t, 4) for t in times]
    row["peak_rss_increase_gib"] = round((memory.peak - before) / gib, 4)
    device_stats = jax.devices()[0].memory_stats()
    if device_stats and "peak_bytes_in_use" in device_stats:
        row["device_peak_gib"] = round(device_stats["peak_bytes_in_use"] / gib, 4)
    row["loss"] = float(loss)
    row["finite_grads"] = bool(all(np.isfinite(np.asarray(g)).all() for g in grads))
    return row


# ----------------------------------------------------------- the driver
def _machine() -> dict:
    import jax

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(),
            "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
            "devices": [str(d.device_kind) for d in jax.local_devices()]}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo
                               if line.startswith("model name"))
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2 ** 20, 1)
    except (OSError, StopIteration):
        pass
    return info


def _ratio(numerator, denominator):
    return round(numerator / denominator, 2) if numerator and denominator else None


def _summarise(n: int, cases: dict) -> dict:
    """One row per N: the cases run and optax's time/memory over ours."""
    row = {"n": n, "views": 2 * n, **cases}
    optax = cases.get("optax", {})
    for ours in ("dense", "chunked"):
        row[f"optax_over_{ours}_time"] = _ratio(optax.get("seconds"),
                                                cases.get(ours, {}).get("seconds"))
        row[f"optax_over_{ours}_xla_temp"] = _ratio(optax.get("xla_temp_gib"),
                                                    cases.get(ours, {}).get("xla_temp_gib"))
    return row


def _run_in_subprocess(method: str, n: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--case", f"{method}:{n}",
               "--dim", str(args.dim), "--chunk-size", str(args.chunk_size),
               "--repeats", str(args.repeats), "--time-budget", str(args.time_budget),
               "--memory-limit-gib", str(args.memory_limit_gib)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"method": method, "n": n, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-n", type=int, default=1024)
    parser.add_argument("--max-n", type=int, default=32768)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=30.0,
                        help="stop repeating a case once its runs took this many seconds")
    parser.add_argument("--memory-limit-gib", type=float, default=16.0)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: 'method:N'
    args = parser.parse_args(argv)
    unknown = set(args.methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"--methods has unknown {sorted(unknown)}; choose from {', '.join(METHODS)}")

    if args.case:
        method, n = args.case.split(":")
        print(json.dumps(run_case(method, int(n), args.dim, args.chunk_size, args.repeats,
                                  args.time_budget, args.memory_limit_gib)))
        return

    started = time.time()
    load_before = os.getloadavg()
    rows, n = [], args.min_n
    while n <= args.max_n:
        cases = {}
        for method in args.methods.split(","):
            cases[method] = _run_in_subprocess(method, n, args)
            print(json.dumps(cases[method]), file=sys.stderr, flush=True)
        rows.append(_summarise(n, cases))
        n *= 2
    result = {
        "benchmark": "nt_xent loss + gradient w.r.t. (z1, z2), float32",
        "machine": _machine(), "temperature": TEMPERATURE,
        "memory_method": ("xla_temp_gib: compiled.memory_analysis().temp_size_in_bytes; "
                          "peak_rss_increase_gib: peak resident memory sampled every 2 ms "
                          "during the timed runs minus the level before them, each case "
                          "in a fresh subprocess"),
        "timing_method": "median wall time of compiled runs after compilation",
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "total_seconds": round(time.time() - started, 1),
        "note": args.note,
        "rows": rows,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
