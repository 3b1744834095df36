"""`make demo`: SimCLR on the bundled digits through the sharded code path a pod runs.

On a CPU-only machine the mesh is made of simulated CPU devices
(``rl_repr.core.mesh.request_cpu_devices``), so the jitted step, the named shardings, the global
batch norm and the all-device negatives are exactly those of a multi-chip run. Prints
linear-probe and kNN(k=20) test accuracy next to two baselines computed in the same run:
logistic regression on raw pixels, and the same encoder at random initialisation.

    python -m rl_repr.demo [--workdir=workdirs/demo] [--seed=0] [--devices=8]
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="workdirs/demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices (CPU only)")
    parser.add_argument("--config", default=os.path.join(_repo_root(), "configs", "simclr_digits.py"))
    parser.add_argument("--verbose", action="store_true", help="also show other libraries' INFO lines")
    args = parser.parse_args(argv)

    from rl_repr.core.log import show_messages  # noqa: PLC0415 (cheap; sets TF's log level first)

    show_messages(verbose=args.verbose)
    import jax  # noqa: PLC0415

    from rl_repr.core import mesh, runner  # noqa: PLC0415
    from rl_repr.core.recipes import load_config_file  # noqa: PLC0415
    from rl_repr.evaluation.frozen import accuracy_table  # noqa: PLC0415

    mesh.request_cpu_devices(args.devices)  # before anything starts JAX's backend
    config = load_config_file(args.config)
    config.seed = args.seed
    workdir = os.path.join(args.workdir, f"seed{args.seed}")
    print(f"SimCLR on digits: {jax.device_count()} {jax.devices()[0].platform.upper()} devices, "
          f"batch {config.batch_size}, {config.epochs:g} epochs, workdir {workdir}", flush=True)
    start = time.perf_counter()
    results = runner.run("simclr", config, workdir)
    print(f"\nDone in {time.perf_counter() - start:.0f}s. Test accuracy on the 360 held-out digits:\n")
    print(accuracy_table(results, [("SimCLR encoder h (this run)", ""),
                                   ("raw pixels (logistic regression)", "raw_pixels_"),
                                   ("same encoder, random init", "random_init_")]))
    tuned = [(f, results[f"finetune_{f}_accuracy"], results.get(f"supervised_{f}_accuracy"))
             for f in ("1pct", "10pct") if f"finetune_{f}_accuracy" in results]
    if tuned:
        print("\nFine-tuned on a fraction of the training labels (SimCLR Table 7 protocol):\n")
        print("| labels | SimCLR, fine-tuned | same recipe from scratch |\n|---|---|---|")
        for fraction, ours, scratch in tuned:
            scratch_text = "-" if scratch is None else f"{100 * scratch:.2f}%"
            print(f"| {fraction.replace('pct', '%')} | {100 * ours:.2f}% | {scratch_text} |")
    print(f"\ntraining: {results['train_seconds']:.0f}s on {results['devices']} devices; "
          f"results: {os.path.join(workdir, 'results.json')}")
    return results


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    main(sys.argv[1:])
