"""rl_repr installed as a user installs it: the wheel, its declared dependencies, its extras.

``test_wheel_without_extras`` builds the wheel from a copy of the sources, installs it into a
fresh virtualenv with only the core dependencies that ``pyproject.toml`` declares (pip resolves
them, constrained to the pins of requirements.txt so that it resolves fast, from pip's cache or
the local wheel directory), and runs ``CHECK_INSTALLED`` there: no optional package came along;
the core imports and computes (NT-Xent's value and gradient against numpy, batch norm and a
projection head against their formulas, ResNet-18's output shape); every other module either
imports or raises ``MissingExtra`` naming its extra; a data module asks for ``rl_repr[data]``.
The other tests check the declarations themselves: every optional package is in its extra, the
pinned requirements lie in the declared ranges, and the versions agree.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import tomllib

import pytest
from packaging.requirements import Requirement

import rl_repr
from rl_repr.core import extras

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Installed with the core (flax brings orbax-checkpoint, optax and chex bring absl-py), so no
# environment can lack them; every other optional package must be absent without extras.
COMES_WITH_CORE = {"absl", "orbax"}


def _pins(*files: str) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines of requirements files."""
    pins = {}
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                requirement = Requirement(line)
                pins[_normalise(requirement.name)] = next(iter(requirement.specifier)).version
    return pins


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _declared() -> list[Requirement]:
    """The core dependencies and every extra's, without rl_repr's references to its own extras."""
    lines = list(PYPROJECT["project"]["dependencies"])
    for group in PYPROJECT["project"]["optional-dependencies"].values():
        lines += group
    requirements = [Requirement(line) for line in lines]
    return [r for r in requirements if _normalise(r.name) != "rl-repr" and (r.marker is None or r.marker.evaluate())]


# ----------------------------------------------------------------------------- the helper itself
def test_require_names_module_and_extra():
    with pytest.raises(extras.MissingExtra) as caught:
        extras.require("rl_repr_no_such_package.sub", extra="data")
    assert str(caught.value) == (f"{__name__} needs rl_repr_no_such_package, which is not installed: "
                                 'pip install "rl_repr[data]".')
    assert isinstance(caught.value, ModuleNotFoundError)
    assert (caught.value.name, caught.value.extra) == ("rl_repr_no_such_package", "data")
    assert extras.require("rl_repr.core.extras", extra="train") is extras


def test_require_passes_through_a_broken_package(tmp_path, monkeypatch):
    # The package exists but something it imports does not: that is not a missing extra.
    (tmp_path / "rl_repr_broken_package.py").write_text("import rl_repr_missing_inside\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        extras.require("rl_repr_broken_package", extra="data")
    assert type(caught.value) is ModuleNotFoundError and caught.value.name == "rl_repr_missing_inside"
    with pytest.raises(ValueError, match="EXTRA_OF_PACKAGE"):
        extras.require("rl_repr_broken_package")


def test_every_optional_package_is_in_its_extra():
    distributions = importlib.metadata.packages_distributions()
    extra_groups = PYPROJECT["project"]["optional-dependencies"]
    for package, extra in extras.EXTRA_OF_PACKAGE.items():
        in_extra = {_normalise(Requirement(line).name) for line in extra_groups[extra]}
        assert in_extra & {_normalise(d) for d in distributions[package]}, (package, extra)
    assert set(extras.EXTRA_OF_PACKAGE.values()) <= Requirement(extra_groups["all"][0]).extras


def test_pins_satisfy_declared_ranges_and_version_agrees():
    pins = _pins("requirements.txt", "requirements-docs.txt")
    for requirement in _declared():
        name = _normalise(requirement.name)
        assert name in pins, f"{requirement} has no pin in requirements.txt / requirements-docs.txt"
        assert requirement.specifier.contains(pins[name]), f"pin {name}=={pins[name]} is outside {requirement}"
    assert PYPROJECT["project"]["version"] == rl_repr.__version__


# ------------------------------------------------------------------------ the wheel, installed
CHECK_INSTALLED = r'''
import importlib, importlib.metadata, importlib.util, json, pathlib, sys
import numpy as np
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import rl_repr
from rl_repr import losses, models, norms
from rl_repr.core.extras import MissingExtra

report = {"file": rl_repr.__file__, "metadata_version": importlib.metadata.version("rl_repr"),
          "version": rl_repr.__version__,
          "installed": sorted(p for p in OPTIONAL if importlib.util.find_spec(p) is not None)}

def nt_xent_numpy(z1, z2, tau):
    """SimCLR eq. 1 written out: views interleaved, cosine similarities, both directions."""
    z = np.stack([z1, z2], axis=1).reshape(-1, z1.shape[1])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z.T / tau
    total = 0.0
    for i in range(len(z)):
        j = i + 1 if i % 2 == 0 else i - 1
        others = [k for k in range(len(z)) if k != i]
        total += -(s[i, j] - np.log(np.sum(np.exp(s[i, others]))))
    return total / len(z)

rng = np.random.default_rng(0)
z1, z2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
value, gradient = jax.value_and_grad(losses.nt_xent)(jnp.asarray(z1), jnp.asarray(z2), 0.5)
step, numeric = 1e-6, np.zeros_like(z1)
for index in np.ndindex(z1.shape):
    up, down = z1.copy(), z1.copy()
    up[index] += step
    down[index] -= step
    numeric[index] = (nt_xent_numpy(up, z2, 0.5) - nt_xent_numpy(down, z2, 0.5)) / (2 * step)
report["nt_xent"] = [float(value), nt_xent_numpy(z1, z2, 0.5)]
report["nt_xent_grad_error"] = float(np.max(np.abs(np.asarray(gradient) - numeric)))

x = rng.normal(size=(8, 5))
gamma, beta = rng.normal(size=5), rng.normal(size=5)
y, (mean, var) = norms.batch_norm(jnp.asarray(x), gamma, beta, jnp.zeros(5), jnp.ones(5), training=True)
expected = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta
report["batch_norm_error"] = float(np.max(np.abs(np.asarray(y) - expected)))
report["running_mean_error"] = float(np.max(np.abs(np.asarray(mean) - 0.1 * x.mean(0))))

# ResNet-18's structure by tracing (compiling its convolutions would dominate this test), and a
# head computed for real against its formula z = W2 relu(W1 h + b1) + b2.
encoder = models.ResNet(depth=18, width_multiplier=0.125, small_image_stem=True)
images = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
shapes = jax.eval_shape(encoder.init, jax.random.key(0), images)
report["resnet_features"] = list(jax.eval_shape(encoder.apply, shapes, images).shape)
head = models.ProjectionHead(num_layers=2, hidden_dim=6, output_dim=4, use_norm=False)
h = rng.normal(size=(3, 5))
params = head.init(jax.random.key(0), jnp.asarray(h))["params"]
z, _ = head.apply({"params": params}, jnp.asarray(h))
(w1, b1), (w2, b2) = [(np.asarray(p["kernel"]), np.asarray(p["bias"])) for p in params.values()]
report["head_error"] = float(np.max(np.abs(np.asarray(z) - (np.maximum(h @ w1 + b1, 0) @ w2 + b2))))

root = pathlib.Path(rl_repr.__file__).parent
modules = sorted("rl_repr." + ".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.py"))
report["modules"] = {}
for name in (m.removesuffix(".__init__") for m in modules):
    try:
        importlib.import_module(name)
        report["modules"][name] = "ok"
    except MissingExtra as error:
        report["modules"][name] = ["missing", error.extra, str(error)]
    except Exception as error:
        report["modules"][name] = ["error", type(error).__name__, str(error)]

from rl_repr.data.images import digits
from rl_repr.data.text import vocab
for name, call in [("digits", lambda: digits.load_digits("train")),
                   ("gensim_datapath", lambda: vocab.gensim_datapath("wordsim353.tsv"))]:
    try:
        call()
        report[name] = "no error"
    except MissingExtra as error:
        report[name] = [error.extra, str(error)]
print(json.dumps(report))
'''


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> pathlib.Path:
    """Python of a fresh virtualenv holding the rl_repr wheel and its core dependencies."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "rl_repr", source / "rl_repr", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    quiet = dict(check=True, capture_output=True, text=True, timeout=600)
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)],
                   **quiet)
    (wheel,) = (work / "dist").glob("rl_repr-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], **quiet)
    python = work / "venv" / "bin" / "python"
    # No extras: pip resolves the declared core from the wheel's metadata; the constraints only
    # choose the versions CI tests (without extras such as jax[cuda13], which constraints cannot
    # carry). --no-compile skips writing .pyc files for ~30k modules.
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in _pins("requirements.txt").items()))
    subprocess.run([*pip, "--python", str(python), "install", "-q", "--no-compile", "-c", str(constraints),
                    str(wheel)], **quiet)
    return python


@pytest.mark.slow
def test_wheel_without_extras(installed_wheel, tmp_path):
    optional = sorted(set(extras.EXTRA_OF_PACKAGE) - COMES_WITH_CORE) + ["pytest"]
    script = tmp_path / "check_installed.py"  # outside the checkout: only the wheel is importable
    script.write_text(f"OPTIONAL = {optional!r}\n" + textwrap.dedent(CHECK_INSTALLED))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(installed_wheel), str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])

    assert str(installed_wheel.parents[1]) in report["file"]
    assert report["metadata_version"] == report["version"] == rl_repr.__version__
    assert report["installed"] == [], f"installed without asking for an extra: {report['installed']}"
    ours, reference = report["nt_xent"]
    assert ours == pytest.approx(reference, rel=1e-12)
    assert report["nt_xent_grad_error"] < 1e-8
    assert report["batch_norm_error"] < 1e-10 and report["running_mean_error"] < 1e-12
    assert report["resnet_features"] == [2, 64] and report["head_error"] < 1e-5

    modules = report["modules"]
    errors = {name: outcome for name, outcome in modules.items() if outcome != "ok" and outcome[0] != "missing"}
    assert not errors, f"modules that fail without a MissingExtra: {errors}"
    for name in ("rl_repr.losses", "rl_repr.norms", "rl_repr.models", "rl_repr.evaluation.linear_probe",
                 "rl_repr.evaluation.finetune", "rl_repr.data.images.augment", "rl_repr.core.extras"):
        assert modules[name] == "ok", (name, modules[name])
    for name, outcome in modules.items():
        if outcome != "ok":
            _, extra, message = outcome
            assert message.endswith(f'pip install "rl_repr[{extra}]".') and message.count(". ") == 0, message
    assert modules["rl_repr.simclr.trainer"][1] == "train"
    assert report["digits"] == ["data", 'rl_repr.data.images.digits needs sklearn, which is not installed: '
                                'pip install "rl_repr[data]".']
    assert report["gensim_datapath"][0] == "words"
