"""Entry point: ``python -m rl_repr.main --config=configs/<recipe>.py[:arg] --workdir=DIR``.

``--config.key=value`` overrides any key of the recipe; an unknown key, or a value the
trainer's validation rejects, stops the run before anything compiles.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from rl_repr import config_utils

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a recipe in configs/ (with :arg).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")

# config.method -> module with train_and_evaluate(config, workdir) -> dict
TRAINERS = {
    "simclr": "rl_repr.train.simclr",
    "word2vec": "rl_repr.train.word2vec",
    "metric_learning": "rl_repr.train.metric_learning",
}


def run(config, workdir: str) -> dict:
    method = config.get("method")
    if method not in TRAINERS:
        raise ValueError(f"config.method={method!r} has no trainer; choose one of {sorted(TRAINERS)}.")
    trainer = importlib.import_module(TRAINERS[method])
    return trainer.train_and_evaluate(config, workdir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _WORKDIR.value is None:
        raise app.UsageError("Pass --workdir=DIR: checkpoints, metrics and results.json go there.")
    try:
        results = run(_CONFIG.value, os.path.expanduser(_WORKDIR.value))
    except config_utils.ConfigError as error:  # one sentence per bad key, no traceback
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(results, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=config_utils.parse_flags_reporting_config_errors)
