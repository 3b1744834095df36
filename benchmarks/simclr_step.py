"""Throughput of one SimCLR training step (augmentation + ResNet + NT-Xent + LARS), in images/s.

Runs the real trainer's compiled step (``rl_repr.core.runner.build``) on generated images,
and, side by side in the same run, the same step with the loss swapped for the peer
``optax.ntxent`` (on the stacked views with pair labels), so the JSON holds a ratio.

    python benchmarks/simclr_step.py                                  # CPU: ResNet-18, 32 px
    python benchmarks/simclr_step.py --depth 50 --image-size 224 --batch 256 --dtype bfloat16   # GPU

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from rl_repr.core import runner  # noqa: E402
from rl_repr.simclr import step as simclr_step  # noqa: E402
from rl_repr.simclr.config import simclr_defaults  # noqa: E402


def optax_nt_xent(z1, z2, temperature, axis_name=None, chunk_size=None):  # noqa: ARG001
    """The peer: optax.ntxent on the 2N stacked views, labels marking the pairs."""
    n = z1.shape[0]
    labels = jnp.concatenate([jnp.arange(n), jnp.arange(n)])
    return optax.ntxent(jnp.concatenate([z1, z2]).astype(jnp.float32), labels, temperature)


def config_for(args):
    c = simclr_defaults()
    c.dataset = "synthetic"
    c.synthetic_examples = args.batch
    c.synthetic_shape = (args.image_size, args.image_size, 3)
    c.model.update(depth=args.depth, width_multiplier=args.width, small_image_stem=args.image_size <= 32)
    c.batch_size = args.batch
    c.compute_dtype = args.dtype
    c.parallel = args.parallel
    c.augment.blur_prob = 0.5 if args.image_size > 32 else 0.0
    return c


def time_steps(config, steps: int) -> dict:
    start = time.perf_counter()
    run = runner.build(config)
    placed = run.driver.put_state(run.state)
    placed, metrics = run.step_fn(placed, run.batch_for_step(0))
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - start
    batch = run.batch_for_step(1)
    start = time.perf_counter()
    for _ in range(steps):
        placed, metrics = run.step_fn(placed, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    return {"seconds_per_step": round(seconds, 5), "images_per_second": round(config.batch_size / seconds, 1),
            "compile_seconds": round(compile_seconds, 1), "loss": float(metrics["loss"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--parallel", default="jit", choices=["jit", "shard_map", "pmap"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()

    config = config_for(args)
    ours = time_steps(config, args.steps)
    result = {"benchmark": "SimCLR training step (augment + ResNet + NT-Xent + LARS), generated images",
              "settings": vars(args),
              "machine": {"backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
                          "jax": jax.__version__, "python": platform.python_version(),
                          "cpu_count": os.cpu_count()},
              "rl_repr": ours}
    if not args.skip_peer:
        simclr_step.losses.nt_xent, original = optax_nt_xent, simclr_step.losses.nt_xent
        try:
            peer = time_steps(config, args.steps)
        finally:
            simclr_step.losses.nt_xent = original
        result["peer_optax_ntxent_loss"] = peer
        result["speedup_vs_peer"] = round(peer["seconds_per_step"] / ours["seconds_per_step"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
