"""Test set-up: 8 fake CPU devices, set before JAX initialises.

Every test process sees ``jax.device_count() == 8`` so the sharding tests can
build a ``data`` mesh; single-device tests simply use the first device. XLA compiles at its
lowest optimisation level, and compiled programs are shared through a persistent cache for the
session (``tests/compilation.py``).
"""
import os

from compilation import cache_environment, persistent_compilation_cache, session_directory, xla_flags

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " " + xla_flags(8)).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
MIN_COMPILE_SECONDS = 0.2  # programs that compile faster are not worth a file


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_of_the_session(tmp_path_factory):
    """One persistent XLA cache for the whole session, both xdist workers and every process a
    test starts (``tests/compilation.py``): the many runs of the same tiny models compile
    each program once. It starts empty each session, so no test depends on an earlier one."""
    directory = session_directory(tmp_path_factory) / "xla_cache"
    os.environ.update(cache_environment(directory, MIN_COMPILE_SECONDS))
    with persistent_compilation_cache(directory, MIN_COMPILE_SECONDS):
        yield
