"""Entry point for sweeps: every cell of a sweep file trained as an ordinary run, resumably.

    python -m rl_repr.sweep --sweep=configs/ablations/batch_size.py:digits --dir=workdirs/sweeps/bs \
        [--publish=experiments/results/batch_size-digits] [--devices=N] [--retry_failed] [--list] \
        [--cells=NAME,NAME]

A sweep file defines ``get_sweep(arg) -> rl_repr.sweeps.Sweep``. Each cell trains in
``<dir>/<cell name>`` through ``rl_repr.core.runner.run`` of its ``config.method``, exactly as
``python -m rl_repr.main --config=... --workdir=<dir>/<cell>`` would; finished cells are skipped,
interrupted ones resume (``rl_repr.sweeps.runner``). ``--cells`` runs (and summarises) only the
named cells, e.g. a new round added to a sweep whose other cells ran elsewhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="path[:arg] of a sweep file defining get_sweep(arg)")
    parser.add_argument("--dir", required=True, help="the sweep's directory (one workdir per cell)")
    parser.add_argument("--publish", default="", help="also copy results.json, table.md, plot.png here")
    parser.add_argument("--devices", type=int, default=0, help="simulated CPU devices (0 = JAX's default)")
    parser.add_argument("--retry_failed", action="store_true", help="rerun diverged or failed cells")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    parser.add_argument("--cells", default="", help="comma-separated cell names: run only these")
    parser.add_argument("--verbose", action="store_true", help="also show other libraries' INFO lines")
    args = parser.parse_args(argv)

    from rl_repr.core.log import show_messages  # noqa: PLC0415

    show_messages(verbose=args.verbose)
    from rl_repr import sweeps  # noqa: PLC0415
    from rl_repr.core.config import ConfigError  # noqa: PLC0415
    from rl_repr.core.mesh import request_cpu_devices  # noqa: PLC0415

    request_cpu_devices(args.devices)  # before anything starts JAX's backend
    try:
        sweep = sweeps.load_sweep_file(args.sweep)
        if args.cells:
            sweep = sweeps.only_cells(sweep, args.cells.split(","))
        if args.list:
            for cell in sweep.cells:
                print(f"{cell.name}: {json.dumps(dict(cell.overrides), default=str)}")
            print(f"{len(sweep.cells)} cells. {sweep.description}")
            return 0
        summary = sweeps.run_sweep(sweep, args.dir, retry_failed=args.retry_failed)
    except ConfigError as error:
        print(f"Invalid sweep: {error}", file=sys.stderr)
        return 1
    if args.publish:
        sweeps.publish(args.dir, args.publish)
        print(f"summary copied to {args.publish}")
    return 1 if any(e["status"] == "failed" for e in summary["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
