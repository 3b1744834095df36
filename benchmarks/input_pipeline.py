"""SimCLR's input pipeline on the host: images/s per core, ours vs torchvision, in one run.

Both sides do, per image: read a JPEG from ``DIR/train/<class>/<file>``, decode it, cut two
random resized crops (area 0.08-1, aspect 3/4-4/3) to 224 x 224, uint8, and batch:

* ``rl_repr``: ``rl_repr.data.images.streaming.train_batches`` on ``folder:DIR`` (tf.data with
  ``--workers`` decode threads; libjpeg decodes only the window holding both crops;
  bilinear resize without antialiasing, as Inception's preprocessing);
* ``torchvision``: ``ImageFolder`` + ``DataLoader(num_workers=--workers)`` + a transform
  applying ``RandomResizedCrop(224)`` twice and ``PILToTensor`` (PIL decodes the whole
  image; antialiased bilinear resize). It runs in its own environment
  (``requirements-bench.txt``: ``make bench-input`` builds ``.venv-bench``), so torch never
  enters rl_repr's.

Measured for each side in a fresh process, after a warm-up: ``images_per_second`` (wall
clock, the side using ``--workers`` workers) and ``images_per_cpu_second``: images over the
CPU time of every thread and worker process of the side (``/proc/<pid>/stat``), i.e. what
one fully busy host core delivers -- the per-core rate. The CPU measure barely depends on
other jobs sharing the machine; the wall-clock rate does. Sides alternate ``--repeats`` times;
the JSON gives every repeat and the medians, and the cores one accelerator needs to be fed at
the SimCLR ResNet-50 step rate measured on an H100 (``benchmarks/results/gpu-simclr_step-h100.json``).

Images: generated once into ``--dir``: colour noise with the 1/f amplitude spectrum of
natural images, 500 x 375 or 375 x 500, JPEG quality 90 (about 115 KB each, near ImageNet's
average file).

    make bench-input
    .venv/bin/python benchmarks/input_pipeline.py --peer-python .venv-bench/bin/python \
        --out benchmarks/results/input_pipeline-cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

H100_SIMCLR_IMAGES_PER_SECOND = 2454.5  # benchmarks/results/gpu-simclr_step-h100.json, ResNet-50 bf16 batch 256
SIZES = ((375, 500), (500, 375))


def make_images(directory: str, count: int, classes: int, seed: int = 0) -> None:
    """``count`` natural-spectrum JPEGs (quality 90) in ``classes`` folders of ``directory/train``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        path = os.path.join(directory, "train", f"class{i % classes:03d}", f"image{i:05d}.jpg")
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        height, width = SIZES[i % 2]
        fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
        amplitude = 1.0 / np.maximum(np.sqrt(fy ** 2 + fx ** 2), 1.0 / max(height, width))
        shared = rng.standard_normal(fy.shape[:1] + fx.shape[1:]) * (1 + 1j)
        channels = []
        for _ in range(3):  # correlated colour channels, as in photographs
            spectrum = 0.8 * shared + 0.6 * (rng.standard_normal(shared.shape) + 1j * rng.standard_normal(shared.shape))
            channel = np.fft.irfft2(spectrum * amplitude, s=(height, width))
            channels.append((channel - channel.mean()) / channel.std())
        pixels = np.stack(channels, -1) * 48 + rng.uniform(60, 190, size=3)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def cpu_seconds(pids) -> float:
    """User + system CPU seconds of the processes ``pids`` (every thread), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def time_batches(batches, pids, warmup: int, timed: int, batch_size: int) -> dict:
    """Reads ``warmup`` batches, then times ``timed`` more (wall and CPU of ``pids()``)."""
    for _ in range(warmup):
        next(batches)
    cpu0, wall0 = cpu_seconds(pids()), time.perf_counter()
    for _ in range(timed):
        next(batches)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pids()) - cpu0
    images = timed * batch_size
    return {"images": images, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "images_per_second": round(images / wall, 1), "images_per_cpu_second": round(images / cpu, 1)}


def run_rl_repr(args) -> dict:
    from rl_repr.data.images import streaming

    source = streaming.open_source(f"folder:{args.dir}", "train")
    settings = streaming.StreamSettings(image_size=224, workers=args.workers, prefetch=2)
    batches = streaming.train_batches(source, settings, seed=0, global_batch_size=args.batch)
    first = next(batches)
    assert first["views"].shape == (args.batch, 2, 224, 224, 3) and first["views"].dtype.name == "uint8"
    return time_batches(batches, lambda: [os.getpid()], args.warmup, args.batches, args.batch)


def run_torchvision(args) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    class TwoCrops:
        def __init__(self):
            self.crop, self.to_tensor = transforms.RandomResizedCrop(224), transforms.PILToTensor()

        def __call__(self, image):
            return torch.stack([self.to_tensor(self.crop(image)), self.to_tensor(self.crop(image))])

    torch.manual_seed(0)
    folder = datasets.ImageFolder(os.path.join(args.dir, "train"), transform=TwoCrops())
    loader = DataLoader(folder, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True)
    iterator = iter(loader)
    views, _ = next(iterator)
    assert tuple(views.shape) == (args.batch, 2, 3, 224, 224) and views.dtype == torch.uint8
    workers = [w.pid for w in getattr(iterator, "_workers", [])]
    batches = (views for views, _ in iterator)
    return time_batches(batches, lambda: [os.getpid(), *workers], args.warmup, args.batches, args.batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="workdirs/bench_jpegs", help="where the generated JPEGs live")
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=15, help="timed batches per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default=".venv-bench/bin/python",
                        help="a Python with torch and torchvision (requirements-bench.txt)")
    parser.add_argument("--side", choices=("rl_repr", "torchvision"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.side:  # one measurement in this fresh process
        print(json.dumps((run_rl_repr if args.side == "rl_repr" else run_torchvision)(args)))
        return
    if (args.warmup + args.batches + 1) * args.batch > args.images:
        parser.error("--images must cover warm-up and timed batches in one epoch")
    make_images(args.dir, args.images, args.classes)
    common = [f"--{k}={getattr(args, k)}" for k in ("dir", "workers", "batch", "warmup", "batches")]
    pythons = {"rl_repr": sys.executable, "torchvision": args.peer_python}
    runs = {side: [] for side in pythons}
    for _ in range(args.repeats):
        for side, python in pythons.items():
            out = subprocess.run([python, __file__, f"--side={side}", *common], check=True, capture_output=True,
                                 text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    median = {side: {key: statistics.median(r[key] for r in results) for key in ("images_per_second",
                                                                                   "images_per_cpu_second")}
              for side, results in runs.items()}
    per_core = median["rl_repr"]["images_per_cpu_second"]
    report = {
        "benchmark": "host input pipeline: JPEG decode + 2 random resized crops to 224 + batch",
        "settings": {k: getattr(args, k) for k in ("images", "classes", "workers", "batch", "warmup", "batches",
                                                   "repeats")},
        "machine": {"cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "python": platform.python_version()},
        "runs": runs, "median": median,
        "per_core_ratio_vs_torchvision": round(per_core / median["torchvision"]["images_per_cpu_second"], 2),
        "per_core_ratio_each_repeat": [round(a["images_per_cpu_second"] / b["images_per_cpu_second"], 2)
                                       for a, b in zip(runs["rl_repr"], runs["torchvision"])],
        "wall_ratio_vs_torchvision": round(median["rl_repr"]["images_per_second"]
                                           / median["torchvision"]["images_per_second"], 2),
        "host_cores_per_h100_at_simclr_step_rate": round(H100_SIMCLR_IMAGES_PER_SECOND / per_core, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
