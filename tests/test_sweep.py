"""Sweeps as data: grid building, resumability, failure handling, the table and the chart."""
import functools
import importlib.util
import json
import logging
import os

import pytest

from rl_repr import sweeps as sweep
from rl_repr.core import config as cfg
from rl_repr.core import recipes, runner
from rl_repr.sweeps import TableLayout
from simclr_tiny import tiny_simclr_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = TableLayout(rows="batch_size", columns="epochs", split="lr_scaling", row_label="batch size",
                     column_label="epochs")


def _grid_sweep(base=None, batch_sizes=(16, 32), epochs=(1.0, 2.0), scalings=("linear", "sqrt")):
    grid = sweep.product(sweep.axis("batch_size", batch_sizes), sweep.axis("epochs", epochs),
                         [{"lr_scaling": s, "base_lr": 0.5} for s in scalings])
    base = base if base is not None else tiny_simclr_config()
    base.lock()
    return sweep.Sweep(name="test", base=base, layout=LAYOUT,
                       cells=sweep.cells(grid, name_keys=("batch_size", "epochs", "lr_scaling")))


def _fake_accuracy(config):
    """A made-up accuracy from the cell's keys, so the table can be checked cell by cell."""
    return config.batch_size / 100 + config.epochs / 10 + (0.001 if config.lr_scaling == "sqrt" else 0.0)


class _FakeTrainer:
    """Stands in for a trainer: writes config.json and results.json like a finished run."""

    def __init__(self, diverge_batch=None, stop_batch=None):
        self.calls, self.diverge_batch, self.stop_batch = [], diverge_batch, stop_batch

    def __call__(self, config, workdir):
        self.calls.append(os.path.basename(workdir))
        os.makedirs(workdir, exist_ok=True)
        recipes.config_to_json(config, os.path.join(workdir, "config.json"))
        if config.batch_size == self.diverge_batch:
            raise FloatingPointError("The training loss became nan at step 3")
        if config.batch_size == self.stop_batch:
            return {"stopped_at_step": 1}
        results = {"linear_probe_accuracy": _fake_accuracy(config)}
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f)
        return results


# ----------------------------------------------------------------------------- definition
def test_product_merges_axes_with_the_first_varying_slowest():
    grid = sweep.product(sweep.axis("a", [1, 2]), [{"b": 3, "c": "x"}, {"b": 4, "c": "y"}])
    assert grid == [{"a": 1, "b": 3, "c": "x"}, {"a": 1, "b": 4, "c": "y"},
                    {"a": 2, "b": 3, "c": "x"}, {"a": 2, "b": 4, "c": "y"}]
    names = [c.name for c in sweep.cells(grid, name_keys=("a", "c"))]
    assert names == ["a=1,c=x", "a=1,c=y", "a=2,c=x", "a=2,c=y"]
    assert sweep.cell_name({"head.num_layers": 2, "epochs": 10.0, "crop_area": (0.5, 1.0)}) == \
        "num_layers=2,epochs=10,crop_area=0.5x1"


def test_duplicate_cell_names_and_missing_layout_keys_are_clear_errors():
    grid = sweep.product(sweep.axis("batch_size", [16]), sweep.axis("epochs", [1.0, 2.0]),
                         sweep.axis("lr_scaling", ["sqrt"]))
    with pytest.raises(ValueError, match="duplicate cell names"):
        sweep.Sweep("s", tiny_simclr_config(), sweep.cells(grid, name_keys=("batch_size",)), LAYOUT)
    with pytest.raises(ValueError, match=r"does not set \['lr_scaling'\]"):
        sweep.Sweep("s", tiny_simclr_config(), sweep.cells([{"batch_size": 16, "epochs": 1.0}]), LAYOUT)


def test_bad_override_fails_before_any_cell_trains(tmp_path):
    trainer = _FakeTrainer()
    bad = sweep.Sweep("s", tiny_simclr_config(), sweep.cells([{"batch_sze": 16}]),
                      TableLayout(rows="batch_sze"))
    with pytest.raises(cfg.ConfigError, match="batch_sze"):
        sweep.run_sweep(bad, str(tmp_path), train_fn=trainer)
    invalid = _grid_sweep(scalings=("linear", "cubic"))  # a valid key, a value its rules reject
    with pytest.raises(cfg.ConfigError, match="cell 'batch_size=16,epochs=1,lr_scaling=cubic'"):
        sweep.run_sweep(invalid, str(tmp_path), train_fn=trainer)
    assert trainer.calls == []


def test_only_cells_keeps_the_named_cells_in_the_sweeps_order_and_names_an_unknown_one(tmp_path):
    grid = _grid_sweep()
    names = [grid.cells[3].name, grid.cells[0].name]
    assert [c.name for c in sweep.only_cells(grid, names).cells] == names[::-1]
    with pytest.raises(cfg.ConfigError, match=f"sweep '{grid.name}' has no cell 'nope'; its cells are "
                                              f"{grid.cells[0].name}, "):
        sweep.only_cells(grid, ["nope"])


def test_digits_grid_is_the_promised_size_and_fits_forty_minutes():
    grid = sweep.load_sweep_file(os.path.join(REPO, "configs/ablations/batch_size.py:digits"))
    assert len(grid.cells) == 6 * 3 * 2
    assert {c.overrides["batch_size"] for c in grid.cells} == {32, 64, 128, 256, 512, 1024}
    spec = importlib.util.spec_from_file_location("bs", os.path.join(REPO, "configs/ablations/batch_size.py"))
    bs = importlib.util.module_from_spec(spec)  # configs/ is not a package
    spec.loader.exec_module(bs)
    # images processed: per epoch floor(1437/B)*B images; 0.2 s per 256 images; 20 s per cell
    images = 2 * sum((1437 // b) * b * e for b in (32, 64, 128, 256, 512, 1024) for e in (10, 25, 50))
    assert bs.digits_cost_seconds((32, 64, 128, 256, 512, 1024), (10, 25, 50)) == pytest.approx(
        images * 0.2 / 256 + 36 * 20)
    assert images * 0.2 / 256 + 36 * 20 < 40 * 60


# The launch arguments of every committed sweep (a sweep file missing here fails the test below).
_SWEEP_ARGS = {"batch_size": ("digits", "digits_quick", "imagenet", "cifar10"),
               "gradient_cache": ("digits", "digits_quick"),
               "projection_head": ("digits", "digits_quick", "imagenet", "cifar10"),
               "temperature": ("digits", "digits_quick", "imagenet", "cifar10"),
               **{f"moco_{study}": ("seed=0",) for study in ("table1", "table2", "queue", "momentum", "recipe_search")},
               "moco_recipe_screen": ("seed=0", "seed=1", "seed=0,epochs=225")}


def test_every_committed_sweep_has_valid_cells():
    """Each sweep in configs/ablations/ loads with each launch argument, and every cell's config
    passes its method's rules: a typo in a study shows here, not an hour into the sweep."""
    files = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs/ablations")) if f.endswith(".py"))
    assert files == sorted(_SWEEP_ARGS), "add the new sweep file's launch arguments to _SWEEP_ARGS"
    for name, args in _SWEEP_ARGS.items():
        for arg in args:
            study = sweep.load_sweep_file(os.path.join(REPO, f"configs/ablations/{name}.py:{arg}"))
            assert study.cells, name
            for cell in study.cells:
                runner.validate(sweep.cell_config(study.base, cell.overrides))


# ----------------------------------------------------------------------------- running
def test_sweep_trains_each_cell_once_and_writes_table_and_plot(tmp_path):
    grid, lines = _grid_sweep(), []
    trainer = _FakeTrainer(diverge_batch=32)
    summary = sweep.run_sweep(grid, str(tmp_path), train_fn=trainer, log=lines.append)
    assert len(trainer.calls) == 8
    assert summary["done"] == 4
    assert [e["status"] for e in summary["cells"]] == ["done"] * 4 + ["diverged"] * 4
    assert any("diverged: FloatingPointError" in line for line in lines)

    # Rerun: finished and diverged cells are skipped; --retry_failed reruns only the diverged.
    again = _FakeTrainer()
    sweep.run_sweep(grid, str(tmp_path), train_fn=again, log=lines.append)
    assert again.calls == []
    sweep.run_sweep(grid, str(tmp_path), train_fn=again, retry_failed=True, log=lines.append)
    assert again.calls == [c.name for c in grid.cells[4:]]

    table = (tmp_path / "table.md").read_text()
    expected_rows = [
        "| batch size | 1 epochs | 2 epochs |",
        "|---|---|---|",
        "| 16 | 26.0/26.1 | 36.0/36.1 |",
        "| 32 | 42.0/42.1 | 52.0/52.1 |",
    ]
    assert "\n".join(expected_rows) in table
    assert "each cell linear/sqrt (lr_scaling)" in table
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["done"] == 8
    assert stored["cells"][0]["results"]["linear_probe_accuracy"] == pytest.approx(0.26)

    published = sweep.publish(str(tmp_path), str(tmp_path / "published"))
    assert sorted(os.path.basename(p) for p in published) == ["plot.png", "results.json", "table.md"]


def test_an_interrupted_cell_stops_the_sweep_and_a_changed_config_is_refused(tmp_path):
    grid, lines = _grid_sweep(), []
    trainer = _FakeTrainer(stop_batch=16)
    summary = sweep.run_sweep(grid, str(tmp_path), train_fn=trainer, log=lines.append)
    assert trainer.calls == [grid.cells[0].name]  # stopped: the next cells wait for the resume
    assert summary["done"] == 0 and "rerun the same command" in lines[-1]

    changed = _grid_sweep(base=tiny_simclr_config(temperature=0.2))
    with pytest.raises(cfg.ConfigError, match=r"different config \(keys \['temperature'\]"):
        sweep.run_sweep(changed, str(tmp_path), train_fn=_FakeTrainer())


@pytest.mark.slow
def test_real_cell_resumes_from_its_checkpoint_then_is_skipped(tmp_path, caplog):
    """One real SimCLR cell: preempted after 2 of its 4 steps, resumed by the next sweep run
    (the trainer restores its checkpoint), and skipped by the one after."""
    base = tiny_simclr_config(log_every_steps=1, num_devices=1)
    base.lock()
    one = sweep.Sweep("real", base, sweep.cells([{"temperature": 0.5}]), TableLayout(rows="temperature"))
    preempted = functools.partial(runner.run, "simclr", stop_after_step=2)
    sweep.run_sweep(one, str(tmp_path), train_fn=preempted, plot=False)
    workdir = tmp_path / one.cells[0].name
    assert not (workdir / "results.json").exists() and (workdir / "checkpoints").is_dir()

    caplog.clear()
    caplog.set_level(logging.INFO, logger="rl_repr")
    summary = sweep.run_sweep(one, str(tmp_path), plot=False)
    out = caplog.text
    assert "training (resuming)" in out and "Resuming from the checkpoint at step 2" in out
    results = summary["cells"][0]["results"]
    assert summary["done"] == 1 and results["steps"] == 4 and 0.0 <= results["linear_probe_accuracy"] <= 1.0
    steps_logged = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
                    if "loss" in line]
    assert steps_logged == [1, 2, 3, 4]  # steps 3 and 4 came from the resumed run, none twice

    untouched = _FakeTrainer()
    sweep.run_sweep(one, str(tmp_path), train_fn=untouched, plot=False)
    assert untouched.calls == []
