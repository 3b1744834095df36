"""Entry point: ``python -m rl_repr.main --config=configs/<recipe>.py[:arg] --workdir=DIR``.

``--config.key=value`` overrides any key of the recipe; a recipe that cannot be loaded, an
unknown key, or a value the method's rules reject stops the run before anything compiles,
with one sentence on stderr and exit status 1. The method is ``config.method``, found in
``rl_repr.core.registry`` like everywhere else. ``--config.cpu_devices=N`` splits a CPU into N
simulated devices.
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from rl_repr.core import runner
from rl_repr.core.config import ConfigError
from rl_repr.core.log import show_messages
from rl_repr.core.recipes import parse_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a recipe in configs/ (with :arg).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show TensorFlow's, absl's and orbax's INFO lines.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _WORKDIR.value is None:
        raise app.UsageError("Pass --workdir=DIR: checkpoints, metrics and results.json go there.")
    show_messages(verbose=_VERBOSE.value)
    config = _CONFIG.value
    try:
        results = runner.run(config.get("method"), config, os.path.expanduser(_WORKDIR.value))
    except ConfigError as error:  # one sentence per bad key, no traceback
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(results, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=parse_flags)
