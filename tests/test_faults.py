"""The fault suite: every fault and bad input ends in one sentence and loses nothing.

NaN (SimCLR and metric learning) then the advised rerun finishes; a locked workdir; a changed
config; a full disk; metrics after a resume; SIGTERM's exit status; corpus files; the library's
own argument checks; and every bad command-line input: one line on stderr, a non-zero exit,
nothing written. Damaged checkpoints and flipped bytes are in tests/test_checkpoint.py.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr import losses, norms
from rl_repr.core import checkpoint, runner
from rl_repr.core.errors import ConfigError, DataError, NonFiniteError, WorkdirError
from rl_repr.core.workdir import WorkdirLock
from rl_repr.metric_learning.config import metric_learning_defaults
from rl_repr.word2vec.config import word2vec_defaults
from simclr_tiny import tiny_simclr_config
from compilation import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def _restored_state_is_finite(workdir, target):
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=1) as ckpt:
        state, step = ckpt.restore_latest(target)
    return step, all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(state)
                     if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


# ------------------------------------------------------------------ NaN: stop, keep a finite checkpoint
@pytest.fixture(scope="module")
def finished_simclr(tmp_path_factory):
    """A SimCLR run that diverged (base_lr 1e12, checkpoints every step), then the advised rerun
    with a lower rate."""
    workdir = str(tmp_path_factory.mktemp("nan") / "run")
    with pytest.raises(NonFiniteError) as error:
        runner.run("simclr", tiny_simclr_config(base_lr=1e12, checkpoint_every_steps=1, epochs=2.0), workdir)
    step, finite = _restored_state_is_finite(workdir, runner.build(tiny_simclr_config()).state)
    results = runner.run("simclr", tiny_simclr_config(epochs=2.0, checkpoint_every_steps=1), workdir,
                         allow_config_change=True)
    return workdir, str(error.value), step, finite, results


def test_nan_keeps_a_finite_checkpoint_and_the_advised_rerun_finishes(finished_simclr):
    workdir, message, kept_step, finite, results = finished_simclr
    # The state is still finite at step 2, but it has grown ~1e7-fold: saving it would poison the
    # rerun (the state overflows at step 3 and the loss is NaN at step 5 without the check).
    assert "\n" not in message and "-fold between step 1 and step 2 (diverging, though still finite)" in message
    assert kept_step == 1 and finite  # the kept checkpoint is one the advice can resume from
    assert "the checkpoint at step 1 is kept and finite: lower config.base_lr" in message
    assert "rerun with --allow_config_change to continue from it" in message
    assert results["steps"] == 8 and os.path.exists(os.path.join(workdir, "results.json"))
    assert np.isfinite(results["linear_probe_accuracy"])


def test_a_loss_that_hid_nan_cannot_hide_a_diverged_metric_learning_run(tmp_path):
    config = metric_learning_defaults()
    config.update(classes_per_batch=4, examples_per_class=4, num_steps=6, warmup_steps=0, base_lr=1e12,
                  checkpoint_every_steps=2, log_every_steps=1, baselines=False, loss="batch_hard")
    config.model.update(conv_widths=(4, 8), embedding_dim=8)
    config.eval.update(num_episodes=20, num_queries=5, num_pairs=60, recall_ks=(1,))
    with pytest.raises(NonFiniteError, match="became"):
        runner.run("metric_learning", config, str(tmp_path / "run"))


# ------------------------------------------------------------------ the workdir
def test_a_changed_config_is_refused_and_config_json_left_as_it_was(finished_simclr):
    workdir = finished_simclr[0]
    before = open(os.path.join(workdir, "config.json")).read()
    with pytest.raises(ConfigError, match=r"holds a run made with other settings \(temperature: 0.5 -> 0.2\); "
                                          r"rerun with the config it was made with, pass --allow_config_change"):
        runner.run("simclr", tiny_simclr_config(epochs=2.0, checkpoint_every_steps=1, temperature=0.2), workdir)
    assert open(os.path.join(workdir, "config.json")).read() == before
    assert any(name.startswith("config.before-step-") for name in os.listdir(workdir))  # the NaN run's, kept


def test_a_second_run_on_a_locked_workdir_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from rl_repr.core.workdir import WorkdirLock
        with WorkdirLock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirError, match=rf"is in use by process {holder.pid} on .*; wait for that run"):
            runner.run("simclr", tiny_simclr_config(), str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    with WorkdirLock(str(tmp_path)):  # a killed run leaves no lock behind
        pass


def test_a_full_disk_is_one_sentence_and_the_last_checkpoint_stays_intact(tmp_path, monkeypatch):
    original = checkpoint.Checkpointer.maybe_save

    def fill_up(self, step, state, *, force=False):
        if step >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, step, state, force=force)

    monkeypatch.setattr(checkpoint.Checkpointer, "maybe_save", fill_up)
    workdir = str(tmp_path / "run")
    with pytest.raises(WorkdirError, match=r"the disk under .* is full .*; free some space and rerun the same command"):
        runner.run("simclr", tiny_simclr_config(), workdir)
    monkeypatch.undo()
    step, finite = _restored_state_is_finite(workdir, runner.build(tiny_simclr_config()).state)
    assert step == 2 and finite


def test_metrics_have_no_duplicate_steps_after_a_crash_and_resume(tmp_path):
    from rl_repr.core.metrics import MetricsWriter

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    MetricsWriter(str(tmp_path), tensorboard=False).drop_after(2)  # the run resumes from step 2
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


# ------------------------------------------------------------------ corpora
def _word2vec_on(path, **data):
    config = word2vec_defaults()
    config.data.update(source="files", files=(str(path),), min_count=1, **data)
    config.update(num_devices=1, epochs=1, dim=8, positions_per_row=8)
    return config


def test_a_binary_corpus_names_the_file_and_byte_and_an_empty_one_is_refused(tmp_path):
    binary = tmp_path / "corpus.bin"
    binary.write_bytes(b"the cat sat\non the mat\n\xff\xfe\x00binary")
    with pytest.raises(DataError, match=rf"corpus file '{binary}' is not UTF-8 text \(byte 23 is b'\\xff'\)"):
        runner.run("word2vec", _word2vec_on(binary), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")  # nothing written
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"no word occurs min_count=1 times in the corpus \(0 tokens\)"):
        runner.run("word2vec", _word2vec_on(empty), str(tmp_path / "run"))
    single = tmp_path / "single.txt"
    single.write_text("alone\n")
    with pytest.raises(DataError, match="the corpus yields no training pairs"):
        runner.run("word2vec", _word2vec_on(single), str(tmp_path / "run"))


# ------------------------------------------------------------------ the library's own checks
def test_losses_propagate_nan():
    emb = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32).at[0].set(jnp.nan)
    labels = jnp.array([0, 0, 1, 1, 2, 2, 3, 3])
    for loss in (losses.batch_hard_triplet_loss(emb, labels), losses.semi_hard_triplet_loss(emb, labels),
                 losses.batch_all_triplet_loss(emb, labels), losses.nt_xent(emb, emb),
                 losses.metric_loss(emb, labels, jax.random.PRNGKey(0), loss="siamese_pairs")[0]):
        assert np.isnan(float(loss))


def test_argument_checks_of_the_library():
    z = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="temperature must be positive"):
        losses.nt_xent(z, z, temperature=jnp.array(-0.5))
    assert not np.isfinite(float(jax.jit(losses.nt_xent)(z, z, jnp.array(0.0))))  # traced: documented NaN/inf
    with pytest.raises(ValueError, match="empty batch"):
        losses.nt_xent(jnp.ones((0, 3)), jnp.ones((0, 3)))
    y, _ = norms.batch_norm(jnp.arange(6.0).reshape(2, 3), [1.0, 2.0, 3.0], [0.0, 0.0, 1.0],
                            jnp.zeros(3), jnp.ones(3), training=True)
    np.testing.assert_allclose(y[1], [1.0, 2.0, 4.0], atol=1e-4)  # a list works as scale and bias
    with pytest.raises(ValueError, match="average one value per feature"):
        norms.batch_norm(jnp.ones((1, 3)), None, None, jnp.zeros(3), jnp.ones(3), training=True)


# ------------------------------------------------------------------ the command line
def _cli(*args, timeout=240):
    env = dict(os.environ, XLA_FLAGS=xla_flags(8), PYTHONPATH=TESTS)
    return subprocess.run([sys.executable, "-m", "rl_repr.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


TINY_RECIPE = textwrap.dedent("""
    from simclr_tiny import tiny_simclr_config

    def get_config(arg=None):
        return tiny_simclr_config(epochs=4.0, checkpoint_every_steps=1, log_every_steps=1)
""")


def _bad_inputs(tmp_path):
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "afile").write_text("")
    run = f"--workdir={tmp_path / 'run'}"
    digits = "--config=configs/simclr_digits.py:runlocal"
    return {
        "missing recipe": (["--config=configs/nope.py", run], "config file 'configs/nope.py' does not exist"),
        "broken recipe": ([f"--config={tmp_path / 'broken.py'}", run], "is not valid Python (line 1"),
        "no get_config": ([f"--config={tmp_path / 'empty.py'}", run], "defines no get_config"),
        "launch typo": (["--config=configs/simclr_digits.py:runlokal", run], "'runlokal' is not one of them"),
        "unknown key": ([digits, "--config.batch_sze=64", run], "Unknown config key 'batch_sze'"),
        "workdir is a file": ([digits, f"--workdir={tmp_path / 'afile'}"], "is a file; pass a directory"),
        "workdir not writable": ([digits, f"--workdir={tmp_path / 'afile' / 'run'}"], "cannot create --workdir"),
        "batch does not divide": ([digits, "--config.batch_size=12", run], "does not divide across 8 devices"),
        "batch over the dataset": ([digits, "--config.batch_size=2048", run], "exceeds the 1437 training images"),
        "missing tfds set": ([digits, "--config.dataset=cifar10", f"--config.data_dir={tmp_path}", run],
                             "tfds build cifar10"),
        "unknown dataset": ([digits, "--config.dataset=cifar11", f"--config.data_dir={tmp_path}", run],
                            "Unknown image dataset 'cifar11'"),
        "data dir is a file": ([digits, "--config.dataset=cifar10", f"--config.data_dir={tmp_path / 'afile'}", run],
                               "is a file; pass the directory that holds"),
        "P x K over the classes": (["--config=configs/metric_digits.py:runlocal", "--config.classes_per_batch=8",
                                    "--config.examples_per_class=2", run], "exceeds the 5 training classes"),
    }


@pytest.mark.parametrize("case", ["missing recipe", "broken recipe", "no get_config", "launch typo", "unknown key",
                                  "workdir is a file", "workdir not writable", "batch does not divide",
                                  "batch over the dataset", "missing tfds set", "unknown dataset",
                                  "data dir is a file", "P x K over the classes"])
def test_every_bad_input_is_one_line_a_nonzero_exit_and_nothing_written(tmp_path, case):
    args, fragment = _bad_inputs(tmp_path)[case]
    proc = _cli(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert fragment in lines[0] and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_sigterm_checkpoints_and_exits_with_the_restart_status(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY_RECIPE)
    env = dict(os.environ, XLA_FLAGS=xla_flags(8), PYTHONPATH=TESTS)
    proc = subprocess.Popen([sys.executable, "-m", "rl_repr.main", f"--config={tmp_path / 'tiny.py'}",
                             f"--workdir={tmp_path / 'run'}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    for line in proc.stdout:  # progress lines: the loop is stepping
        if line.startswith("step ") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 75, err[-3000:]
    assert "Stopped by a signal at step" in out and "stopped_at_step" in out
    assert os.listdir(tmp_path / "run" / "checkpoints")
