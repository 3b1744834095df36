"""Tests for config validation and recipe files (rl_repr.core.config, .recipes): unknown keys,
invalid values, launch arguments, config.json."""
import json
import os
import subprocess
import sys
import textwrap

import ml_collections
import pytest

from rl_repr.core import config as cu
from rl_repr.core import recipes

_CONFIG_FILE = textwrap.dedent("""
    import ml_collections

    def get_config(arg=None):
        config = ml_collections.ConfigDict()
        config.batch_size = 512 if arg is None else 16
        config.optimizer = 'lars'
        config.model = ml_collections.ConfigDict({'width': 1})
        return config
""")

_MAIN_FILE = textwrap.dedent("""
    import sys
    from absl import app
    from ml_collections import config_flags
    from rl_repr.core import recipes

    CONFIG = config_flags.DEFINE_config_file('config')

    def main(_):
        print('batch_size', CONFIG.value.batch_size, 'width', CONFIG.value.model.width)

    if __name__ == '__main__':
        parser = recipes.parse_flags if sys.argv.pop(1) == 'clean' else None
        app.run(main, **({'flags_parser': parser} if parser else {}))
""")


@pytest.fixture(scope="module")
def entry_point(tmp_path_factory):
    directory = tmp_path_factory.mktemp("entry")
    (directory / "cfg.py").write_text(_CONFIG_FILE)
    (directory / "main.py").write_text(_MAIN_FILE)

    def run(mode, *overrides):
        return subprocess.run(
            [sys.executable, str(directory / "main.py"), mode,
             f"--config={directory / 'cfg.py'}", *overrides],
            capture_output=True, text=True, timeout=60, cwd=directory)

    return run


def test_valid_overrides_reach_the_config(entry_point):
    result = entry_point("clean", "--config.batch_size=64", "--config.model.width=2")
    assert result.returncode == 0, result.stderr
    assert "batch_size 64 width 2" in result.stdout


def test_config_flags_rejects_unknown_key_naming_it(entry_point):
    # Plain config_flags: the locked ConfigDict raises AttributeError (a traceback).
    result = entry_point("plain", "--config.batch_sze=16")
    assert result.returncode != 0
    assert "AttributeError" in result.stderr and "batch_sze" in result.stderr


@pytest.mark.parametrize("override, key, hint", [
    ("--config.batch_sze=16", "batch_sze", 'Did you mean "batch_size"'),
    ("--config.model.depth=3", "depth", ""),
])
def test_clean_parser_reports_unknown_key_in_one_line(entry_point, override, key, hint):
    result = entry_point("clean", override)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Unknown config key {key!r} in {override};")
    assert hint in line


def test_wrongly_typed_override_is_rejected_naming_the_flag(entry_point):
    result = entry_point("clean", "--config.batch_size=abc")
    assert result.returncode == 1
    assert "--config.batch_size=abc" in result.stderr and "Traceback" not in result.stderr


def test_locked_config_rejects_unknown_key_assignment():
    config = ml_collections.ConfigDict({"batch_size": 8})
    config.lock()
    with pytest.raises(AttributeError, match="batch_sze"):
        config.batch_sze = 16


# ------------------------------------------------------------------ value rules

def _config():
    return ml_collections.ConfigDict(dict(
        batch_size=512, optimizer="lars", temperature=0.5, num_devices=8, chunk=64,
        model=dict(width=1, head="mlp")))


_RULES = [
    cu.positive_int("batch_size"),
    cu.one_of("optimizer", ("lars", "sgd", "adamw")),
    cu.positive("temperature"),
    cu.divides("chunk", "batch_size", "dense"),
    cu.positive_int("model.width"),
    cu.one_of("model.head", ("none", "linear", "mlp")),
]


def test_valid_config_passes():
    cu.validate_config(_config(), _RULES)


@pytest.mark.parametrize("key, value, expected", [
    ("batch_size", -4, "config key 'batch_size' has invalid value -4; it must be an integer > 0."),
    ("chunk", 100, "config key 'chunk' has invalid value 100; it must be 0 (dense) or a divisor of "
                   "config.batch_size."),
    ("optimizer", "lamb", "config key 'optimizer' has invalid value 'lamb'; it must be one of "
                          "('lars', 'sgd', 'adamw')."),
    ("temperature", 0.0, "config key 'temperature' has invalid value 0.0; it must be a number > 0."),
    ("temperature", -0.1, "config key 'temperature' has invalid value -0.1; it must be a number > 0."),
    ("model.width", 0, "config key 'model.width' has invalid value 0; it must be an integer > 0."),
    ("model.head", "deep", "config key 'model.head' has invalid value 'deep'; it must be one of "
                           "('none', 'linear', 'mlp')."),
])
def test_invalid_value_message_names_key_value_and_allowed(key, value, expected):
    config = _config()
    if "." in key:
        outer, inner = key.split(".")
        config[outer][inner] = value
    else:
        config[key] = value
    with pytest.raises(cu.ConfigError) as error:
        cu.validate_config(config, _RULES)
    assert expected in str(error.value).splitlines()


def test_all_violations_are_reported_and_missing_keys_named():
    config = _config()
    config.temperature = -1.0
    del config["optimizer"]
    with pytest.raises(cu.ConfigError) as error:
        cu.validate_config(config, _RULES)
    lines = str(error.value).splitlines()
    assert lines == [
        "config key 'optimizer' is missing; it must be one of ('lars', 'sgd', 'adamw').",
        "config key 'temperature' has invalid value -1.0; it must be a number > 0.",
    ]


def test_booleans_and_strings_are_not_numbers():
    config = ml_collections.ConfigDict({"lr": True, "steps": "10"})
    with pytest.raises(cu.ConfigError, match="'lr'"):
        cu.validate_config(config, [cu.positive("lr")])
    with pytest.raises(cu.ConfigError, match="'steps'"):
        cu.validate_config(config, [cu.positive_int("steps")])


def test_cross_field_rule_and_interval():
    config = ml_collections.ConfigDict({"warmup": 20, "total": 10, "momentum": 1.0})
    rules = [cu.Rule("warmup", lambda w, c: w <= c.total, lambda c: f"at most total ({c.total})"),
             cu.in_interval("momentum", 0.0, 1.0, high_inclusive=False)]
    with pytest.raises(cu.ConfigError) as error:
        cu.validate_config(config, rules)
    assert str(error.value).splitlines() == [
        "config key 'warmup' has invalid value 20; it must be at most total (10).",
        "config key 'momentum' has invalid value 1.0; it must be a number in [0.0, 1.0).",
    ]


# ------------------------------------------------------------------ config.json

def test_config_to_json_writes_resolved_config(tmp_path):
    config = _config()
    config.steps = ml_collections.FieldReference(100)
    config.total = config.get_ref("steps") * 2
    config.crop_area = (0.08, 1.0)
    path = tmp_path / "run" / "config.json"
    assert recipes.config_to_json(config, path) == os.fspath(path)
    written = json.loads(path.read_text())
    assert written["total"] == 200 and written["crop_area"] == [0.08, 1.0]
    assert written["model"] == {"width": 1, "head": "mlp"}
    # Overwriting leaves exactly one file, no temporary leftovers.
    config.batch_size = 64
    recipes.config_to_json(config, path)
    assert json.loads(path.read_text())["batch_size"] == 64
    assert sorted(os.listdir(path.parent)) == ["config.json"]


def test_missing_recipe_and_sweep_files_are_named_with_an_example(tmp_path):
    from rl_repr import sweeps as sweep  # noqa: PLC0415
    from rl_repr.core.recipes import load_config_file  # noqa: PLC0415

    missing = str(tmp_path / "nope.py")
    with pytest.raises(FileNotFoundError, match=r"config file .*nope\.py' does not exist; pass one from configs/"):
        load_config_file(missing + ":runlocal")
    with pytest.raises(FileNotFoundError, match=r"sweep file .*nope\.py' does not exist; pass one from configs/ablations/"):
        sweep.load_sweep_file(missing + ":digits")


# ------------------------------------------------------------------ launch arguments

def test_launch_arguments_tokens_values_and_one_sentence_errors():
    args = recipes.launch_arguments("sqrt,epochs=800,runlocal", "configs/x.py", tokens=("sqrt", "runlocal"),
                                    values={"epochs": float})
    assert "sqrt" in args and "runlocal" in args and args.get("epochs") == 800.0
    assert args.first(("runlocal", "sqrt")) == "sqrt" and args.first(("other",), "none") == "none"
    with pytest.raises(cu.ConfigError, match=r"configs/x.py takes 'sqrt', 'epochs=<float>' .* 'sqr' .* not one"):
        recipes.launch_arguments("sqr", "configs/x.py", tokens=("sqrt",), values={"epochs": float})
    with pytest.raises(cu.ConfigError, match="'epochs=many' is not a float"):
        recipes.launch_arguments("epochs=many", "configs/x.py", values={"epochs": float})
    with pytest.raises(cu.ConfigError, match=r"pick at most one of \('a', 'b'\)"):
        recipes.launch_arguments("a,b", "configs/x.py", tokens=("a", "b"), at_most_one=[("a", "b")])
    with pytest.raises(cu.ConfigError, match=r"needs exactly one of \('a', 'b'\)"):
        recipes.launch_arguments("", "configs/x.py", tokens=("a", "b"), exactly_one=("a", "b"))


@pytest.mark.parametrize("text, fragment", [
    ("x = (\n", "is not valid Python"),
    ("x = 1\n", "defines no get_config"),
    ("raise RuntimeError('boom')\n", r"failed on import \(RuntimeError: boom\)"),
])
def test_broken_recipe_files_are_one_sentence(tmp_path, text, fragment):
    path = tmp_path / "recipe.py"
    path.write_text(text)
    with pytest.raises(cu.ConfigError, match=fragment):
        recipes.load_config_file(str(path))
