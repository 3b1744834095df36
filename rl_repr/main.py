"""Entry point: ``python -m rl_repr.main --config=configs/<recipe>.py[:arg] --workdir=DIR``.

``--config.key=value`` overrides any key of the recipe. The method is ``config.method``, found
in ``rl_repr.core.registry`` like everywhere else; ``--config.cpu_devices=N`` splits a CPU into
N simulated devices.

Exit status: 0 when the run finished (results printed as JSON and written to
``DIR/results.json``); 1 for a mistake in the input (a recipe that cannot be loaded, an unknown
key, a value the rules reject, a missing dataset, an unusable or busy workdir, a NaN loss: one
sentence on stderr, no traceback, nothing already written lost); 75 (``EX_TEMPFAIL``) when the
run was stopped by SIGTERM or a preemption notice after checkpointing, so a scheduler restarts
it: rerunning the same command resumes.
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from rl_repr.core import runner
from rl_repr.core.errors import UserError
from rl_repr.core.extras import require
from rl_repr.core.log import show_messages
from rl_repr.core.recipes import parse_flags

config_flags = require("ml_collections.config_flags")

STOPPED_EXIT_STATUS = 75  # EX_TEMPFAIL: stopped early with a checkpoint; rerun to resume

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a recipe in configs/ (with :arg).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
_ALLOW_CHANGE = flags.DEFINE_bool("allow_config_change", False,
                                  "Continue the workdir's checkpoints although the config differs from its "
                                  "config.json (e.g. a lower learning rate after a NaN).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show TensorFlow's, absl's and orbax's INFO lines.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _WORKDIR.value is None:
        raise app.UsageError("Pass --workdir=DIR: checkpoints, metrics and results.json go there.")
    show_messages(verbose=_VERBOSE.value)
    config = _CONFIG.value
    try:
        results = runner.run(config.get("method"), config, os.path.expanduser(_WORKDIR.value),
                             allow_config_change=_ALLOW_CHANGE.value)
    except UserError as error:  # one sentence, no traceback
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(results, indent=2, sort_keys=True, default=str))
    if "stopped_at_step" in results:
        sys.exit(STOPPED_EXIT_STATUS)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=parse_flags)
