"""Memory and time of one SimCLR step as the batch grows, with and without representation caching.

For each batch size B the real trainer's step (``rl_repr.core.runner.build``: augmentation,
ResNet, projection head, NT-Xent, LARS) is compiled three times: plainly; with
``gradient_cache_chunks = B / chunk_examples`` (GradCache; ``rl_repr/train/gradient_cache.py``),
so every chunk holds ``chunk_examples`` examples (2 x that many views) whatever B is; and with
caching plus the blockwise NT-Xent (``loss_chunk_size``), whose [2B, 2B] similarities are never
materialised at once, so that nothing but the inputs and embeddings grows with B. Reported:

* ``temp_mib``: XLA's temporary buffers of the compiled step (``memory_analysis()``), i.e. the
  activations and workspace: the memory that limits the batch;
* ``peak_rss_mib``: the peak resident memory of a fresh process that compiles and runs only
  that step (each measurement runs in its own child process, read with ``os.wait4``);
* ``seconds_per_step``: mean over ``--steps`` steps after a warm-up step.

    python benchmarks/large_batch.py                                   # CPU, a few minutes
    python benchmarks/large_batch.py --batch-sizes 256,1024,4096,16384 --image-size 32   # GPU

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2 ** 20


def _config(batch_size: int, chunks: int, loss_chunk: int, args):
    from rl_repr.simclr.config import simclr_defaults  # noqa: PLC0415 (child process only)

    c = simclr_defaults()
    c.dataset = "synthetic"
    c.synthetic_examples = batch_size
    c.synthetic_shape = (args.image_size, args.image_size, args.channels)
    c.model.update(depth=args.depth, width_multiplier=args.width, small_image_stem=args.image_size <= 32)
    c.head.update(num_layers=2, output_dim=64)
    c.batch_size = batch_size
    c.gradient_cache_chunks = chunks
    c.loss_chunk_size = loss_chunk
    c.parallel, c.num_devices = "jit", 1
    c.augment.update(blur_prob=0.0, crop_area=(0.6, 1.0))
    c.baselines = False
    return c


def measure_one(batch_size: int, chunks: int, loss_chunk: int, args) -> dict:
    """Compiles and times one step configuration in this process."""
    import jax  # noqa: PLC0415

    from rl_repr.core import runner  # noqa: PLC0415

    run = runner.build(_config(batch_size, chunks, loss_chunk, args))
    placed, batch = run.driver.put_state(run.state), run.batch_for_step(0)
    start = time.perf_counter()
    compiled = run.step_fn.lower(placed, batch).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    placed, metrics = compiled(placed, batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        placed, metrics = compiled(placed, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / args.steps
    return {"batch_size": batch_size, "gradient_cache_chunks": chunks,
            "chunk_examples": batch_size // chunks if chunks else batch_size, "loss_chunk_size": loss_chunk,
            "temp_mib": round(memory.temp_size_in_bytes / MIB, 2) if memory else None,
            "argument_mib": round(memory.argument_size_in_bytes / MIB, 2) if memory else None,
            "seconds_per_step": round(seconds, 4), "compile_seconds": round(compile_seconds, 1),
            "loss": round(float(metrics["loss"]), 5)}


def measure_in_child(batch_size: int, chunks: int, loss_chunk: int, argv: list[str]) -> dict:
    """Runs :func:`measure_one` in a fresh process so its peak RSS is its own."""
    command = [sys.executable, os.path.abspath(__file__), *argv, "--one", f"{batch_size},{chunks},{loss_chunk}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"measuring batch {batch_size}, {chunks} chunks, loss chunk {loss_chunk} failed: "
                           f"{output[-2000:]}")
    row = json.loads(output.strip().splitlines()[-1])
    row["peak_rss_mib"] = round(usage.ru_maxrss * 1024 / MIB, 1)  # Linux reports KiB
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="128,512,2048")
    parser.add_argument("--chunk-examples", type=int, default=128, help="examples per cached chunk")
    parser.add_argument("--loss-chunk-size", type=int, default=128, help="NT-Xent columns per block")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=8)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: one child measurement
    args, _ = parser.parse_known_args()
    if args.one:
        batch_size, chunks, loss_chunk = (int(x) for x in args.one.split(","))
        print(json.dumps(measure_one(batch_size, chunks, loss_chunk, args)))
        return

    argv = list(sys.argv[1:])
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        if batch_size % args.chunk_examples or batch_size % args.loss_chunk_size:
            raise SystemExit(f"--batch-sizes: {batch_size} is not a multiple of --chunk-examples "
                             f"{args.chunk_examples} and --loss-chunk-size {args.loss_chunk_size}; pick multiples.")
        chunks = batch_size // args.chunk_examples
        for mode in ((0, 0), (chunks, 0), (chunks, args.loss_chunk_size)):
            rows.append(measure_in_child(batch_size, *mode, argv))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    import jax  # noqa: PLC0415 (device description only)

    print(json.dumps({
        "benchmark": "large_batch", "device": jax.devices()[0].device_kind, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "jax": jax.__version__,
        "model": f"ResNet-{args.depth} x{args.width}, {args.image_size}x{args.image_size}x{args.channels} "
                 "images, 2-layer head (batch norm), NT-Xent, LARS; jit on one device",
        "chunk_examples": args.chunk_examples,
        "note": "gradient_cache_chunks=0 is the plain step; otherwise each chunk encodes "
                "chunk_examples examples (2x views); loss_chunk_size>0 is the blockwise NT-Xent. "
                "temp_mib = XLA temporary buffers of the compiled step; peak_rss_mib = peak RSS "
                "of a process running only that step. The model has batch norm, so cached losses "
                "differ slightly from plain ones (per-chunk statistics). Cached steps on a CPU "
                "use explicit convolution gradients (model.explicit_conv_gradients='auto').",
        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
