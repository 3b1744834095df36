"""How the tests compile: cheaper XLA optimisation, and a persistent compilation cache.

The tests' models are tiny, so compiling dominates their time. :func:`xla_flags` gives every
test process (and every process a test starts) 8 (or ``devices``) fake CPU devices and XLA's
lowest backend optimisation level, which compiles about a third faster; numbers differ from an
optimised build only by rounding, and every comparison in the tests is between programs built
the same way or within a tolerance. The persistent cache serves tests that build the same
program more than once (a stopped run and its resumption, a run and its worker processes): a
cached executable loads in about a tenth of a fresh compilation.

:func:`persistent_compilation_cache` turns it on for a block (then restores the settings);
:func:`cache_environment` gives a subprocess the same cache; :func:`session_directory` and
:func:`exclusive` let pytest-xdist workers share one directory and take turns with it.
"""
import contextlib
import fcntl
import os

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def xla_flags(devices: int = 8) -> str:
    """``XLA_FLAGS`` for a test process with ``devices`` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"


_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")


@contextlib.contextmanager
def persistent_compilation_cache(directory, min_compile_seconds: float = 0.0):
    """Within the block, every executable that took at least ``min_compile_seconds`` to compile
    is kept in ``directory``."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    before = {name: getattr(jax.config, name) for name in _OPTIONS}
    for name, value in zip(_OPTIONS, (str(directory), min_compile_seconds, 0)):
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        for name, value in before.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def cache_environment(directory, min_compile_seconds: float = 0.0) -> dict:
    """The same cache for a subprocess, through JAX's environment variables."""
    return {name.upper(): str(value) for name, value in zip(_OPTIONS, (directory, min_compile_seconds, 0))}


def session_directory(tmp_path_factory):
    """A directory every xdist worker of this pytest session shares (the session's own base
    directory without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(path):
    """Holds an exclusive lock on the file ``path`` (one xdist worker at a time) while the block runs."""
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
