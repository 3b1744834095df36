"""The entry point: recipes run shrunk, and bad configs stop before anything compiles."""
import json
import os
import subprocess
import sys

import pytest

from rl_repr.core import recipes as config_utils
from rl_repr.core import runner
from compilation import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, timeout=240):
    env = dict(os.environ, XLA_FLAGS=xla_flags(8))
    return subprocess.run([sys.executable, "-m", "rl_repr.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unknown_config_key_is_rejected_naming_the_key(tmp_path):
    proc = _cli("--config=configs/simclr_digits.py:runlocal", "--config.batch_sze=64",
                f"--workdir={tmp_path}")
    assert proc.returncode == 1
    assert "Unknown config key 'batch_sze'" in proc.stderr and "batch_size" in proc.stderr
    assert not os.listdir(tmp_path)  # nothing written


def test_invalid_value_is_rejected_before_compiling(tmp_path):
    proc = _cli("--config=configs/simclr_digits.py:runlocal", "--config.temperature=-0.5",
                "--config.optimizer=adam", f"--workdir={tmp_path}")
    assert proc.returncode == 1
    assert "'temperature' has invalid value -0.5" in proc.stderr
    assert "'optimizer' has invalid value 'adam'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)


# configs/simclr_imagenet.py:runlocal runs end to end, streaming, in tests/test_streaming_simclr.py
@pytest.mark.parametrize("recipe", ["configs/simclr_cifar10.py:runlocal"])
def test_paper_recipes_run_shrunk_on_generated_images(recipe, tmp_path):
    config = config_utils.load_config_file(os.path.join(ROOT, recipe))
    results = runner.run(config.method, config, str(tmp_path))
    assert 0.0 <= results["linear_probe_accuracy"] <= 1.0
    saved = json.load(open(tmp_path / "results.json"))
    assert saved["linear_probe_accuracy"] == results["linear_probe_accuracy"]
    assert json.load(open(tmp_path / "config.json"))["model"]["depth"] == config.model.depth


def test_full_recipes_keep_the_paper_settings():
    cifar = config_utils.load_config_file(os.path.join(ROOT, "configs/simclr_cifar10.py"))
    assert (cifar.model.depth, cifar.batch_size, cifar.base_lr, cifar.lr_scaling, cifar.weight_decay,
            cifar.temperature, cifar.augment.color_jitter_strength, cifar.augment.blur_prob,
            cifar.epochs) == (18, 512, 1.0, "linear", 1e-4, 0.5, 0.5, 0.0, 1000.0)
    imagenet = config_utils.load_config_file(os.path.join(ROOT, "configs/simclr_imagenet.py"))
    assert (imagenet.model.depth, imagenet.batch_size, imagenet.base_lr, imagenet.weight_decay,
            imagenet.temperature, imagenet.augment.blur_prob) == (50, 4096, 0.3, 1e-6, 0.1, 0.5)
    sqrt = config_utils.load_config_file(os.path.join(ROOT, "configs/simclr_imagenet.py"), "sqrt")
    assert (sqrt.lr_scaling, sqrt.base_lr) == ("sqrt", 0.075)
