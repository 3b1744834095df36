"""Training speed of the MoCo and SimCLR digits recipes on 1, 2 and 8 simulated CPU devices.

On a CPU, ``config.cpu_devices`` splits the host into simulated devices that share its cores.
This measures what that costs each method: every (method, devices) pair trains its recipe
(``configs/{moco,simclr}_digits.py``, no evaluation) in a fresh process, and the steady rate is
read from the progress lines between the first third of the run and its end, so compilation is
left out. The JSON gives steps/s, seconds per epoch, each method's slowdown on 8 devices against
1, and MoCo's epoch time as a fraction of SimCLR's at each device count (the peer in the same run).

    python benchmarks/device_count.py --out benchmarks/results/device_count-cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

from rl_repr.core.files import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_IMAGES = 1437  # scikit-learn's digits, training split
RECIPES = {"moco": ("configs/moco_digits.py", 128, 20.0), "simclr": ("configs/simclr_digits.py", 256, 40.0)}
PROGRESS = re.compile(r"step (\d+)/\d+ .*?\| ([\d.]+) steps/s")


def steady_steps_per_second(log: str) -> tuple[float, list[int]]:
    """The rate between the first third of the logged steps and the last one (each line's rate is
    the mean since the loop started, so the elapsed time at step s is s / rate)."""
    points = [(int(step), float(rate)) for step, rate in PROGRESS.findall(log)]
    if len(points) < 3:
        raise RuntimeError(f"too few progress lines to measure a rate:\n{log[-2000:]}")
    (a, rate_a), (b, rate_b) = points[len(points) // 3], points[-1]
    return (b - a) / (b / rate_b - a / rate_a), [a, b]


def measure(method: str, devices: int) -> dict:
    config, batch, epochs = RECIPES[method]
    with tempfile.TemporaryDirectory() as workdir:
        done = subprocess.run(
            [sys.executable, "-m", "rl_repr.main", f"--config={config}", f"--config.cpu_devices={devices}",
             f"--config.epochs={epochs}", "--config.eval_every_steps=0", "--config.baselines=False",
             "--config.finetune_fractions=()", f"--workdir={workdir}"],
            cwd=ROOT, capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    if done.returncode:
        raise RuntimeError(f"{method} on {devices} devices failed:\n{done.stderr[-2000:]}")
    rate, steps = steady_steps_per_second(done.stdout + done.stderr)
    return {"method": method, "devices": devices, "batch_size": batch, "steps_per_second": round(rate, 3),
            "seconds_per_epoch": round((TRAIN_IMAGES // batch) / rate, 3), "steps_measured": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    runs = [measure(method, d) for d in args.devices for method in RECIPES]
    epoch = {(r["method"], r["devices"]): r["seconds_per_epoch"] for r in runs}
    first, last = min(args.devices), max(args.devices)
    result = {
        "benchmark": "device_count", "machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": runs,
        f"slowdown_{last}_vs_{first}_devices": {m: round(epoch[m, last] / epoch[m, first], 2) for m in RECIPES},
        "moco_epoch_over_simclr_epoch": {str(d): round(epoch["moco", d] / epoch["simclr", d], 2) for d in args.devices},
    }
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
