"""Tests for rl_repr.optim against NumPy re-implementations of the formulas.

The LARS reference re-implements the update of google-research/simclr's
``LARSOptimizer`` (classic momentum): weight decay added to the gradient, then the
trust ratio ``eta * ||w|| / ||g||`` (1 when either norm is 0), then
``v = m * v + lr * ratio * g``, ``w -= v``; parameters whose TF name contains
'batch_normalization' or 'bias' are excluded from both decay and adaptation.
"""
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from rl_repr.core import config as config_utils
from rl_repr.core import optim


# ------------------------------------------------------------------ learning rate

@pytest.mark.parametrize("scaling, expected", [("linear", 0.3 * 4096 / 256),
                                               ("sqrt", 0.3 * 64.0),
                                               ("none", 0.3)])
def test_scaled_learning_rate(scaling, expected):
    assert optim.scaled_learning_rate(0.3, 4096, scaling) == pytest.approx(expected)


def test_scaled_learning_rate_rejects_unknown_scaling():
    with pytest.raises(ValueError, match=r"'cubic'.*linear.*sqrt.*none"):
        optim.scaled_learning_rate(0.3, 256, "cubic")
    with pytest.raises(ValueError, match="batch_size"):
        optim.scaled_learning_rate(0.3, 0, "linear")


def _numpy_warmup_cosine(step, peak, total, warmup, end):
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / (total - warmup), 1.0)
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("warmup, end", [(10, 0.0), (0, 0.0), (25, 0.01)])
def test_schedule_is_warmup_then_cosine_as_the_formula(warmup, end):
    peak, total = 1.5, 100
    _, schedule = optim.make_optimizer(_config(lr_scaling="none", base_lr=peak, total_steps=total,
                                               warmup_steps=warmup, end_lr=end))
    steps = np.arange(0, 121)
    ours = np.array(jax.vmap(schedule)(steps))
    expected = np.array([_numpy_warmup_cosine(s, peak, total, warmup, end) for s in steps])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)
    assert float(schedule(warmup)) == pytest.approx(peak)
    assert float(schedule(total)) == pytest.approx(end, abs=1e-7)


def test_warmup_only_schedule_stays_on_the_warmup_line():
    _, schedule = optim.make_optimizer(_config(lr_scaling="none", base_lr=2.0, total_steps=4, warmup_steps=4))
    np.testing.assert_allclose([float(schedule(s)) for s in range(4)], [0, 0.5, 1.0, 1.5])


# ------------------------------------------------------------------ weight-decay mask

class _TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(4, (3, 3), name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        x = nn.GroupNorm(num_groups=2, name="gn")(x)
        x = x.mean(axis=(1, 2))
        x = nn.Dense(5, name="dense")(x)
        x = nn.LayerNorm(name="ln")(x)
        return nn.Dense(3, use_bias=False, name="head")(x)


def test_weight_decay_mask_on_flax_model():
    # Shapes are all the mask looks at, so no need to run (and compile) the init.
    variables = jax.eval_shape(_TinyNet().init, jax.random.key(0), jnp.zeros((2, 6, 6, 3)))
    params = dict(variables["params"])
    params["custom_norm"] = {"gamma": np.ones(4), "beta": np.zeros(4)}
    params["temperature"] = np.float32(0.1)
    mask = optim.weight_decay_mask(params)
    expected = {
        "conv": {"kernel": True, "bias": False},
        "bn": {"scale": False, "bias": False},
        "gn": {"scale": False, "bias": False},
        "dense": {"kernel": True, "bias": False},
        "ln": {"scale": False, "bias": False},
        "head": {"kernel": True},
        "custom_norm": {"gamma": False, "beta": False},
        "temperature": False,
    }
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(expected)
    assert mask == expected
    assert all(type(leaf) is bool for leaf in jax.tree.leaves(mask))


# ------------------------------------------------------------------ LARS vs official

def _official_excluded(name):
    return any(word in name for word in ("batch_normalization", "bias"))


def _official_lars_step(params, grads, velocity, lr, *, wd, momentum=0.9, eta=0.001,
                        nesterov=False):
    """One step of simclr's LARSOptimizer._resource_apply_dense, per named tensor."""
    new_params, new_velocity = {}, {}
    for name, w in params.items():
        g = grads[name].astype(np.float64)
        w = w.astype(np.float64)
        if not _official_excluded(name):
            g = g + wd * w
        ratio = 1.0
        if not _official_excluded(name):
            w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
            ratio = eta * w_norm / g_norm if (w_norm > 0 and g_norm > 0) else 1.0
        scaled_lr = lr * ratio
        v = momentum * velocity[name] + scaled_lr * g
        update = momentum * v + scaled_lr * g if nesterov else v
        new_params[name], new_velocity[name] = w - update, v
    return new_params, new_velocity


def _flatten(tree):
    return {"/".join(str(k.key) for k in path): np.asarray(leaf, np.float64)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _nested_params(rng):
    return {
        "encoder": {
            "conv_0": {"kernel": rng.normal(size=(3, 3, 2, 4))},
            "batch_normalization_0": {"scale": 1 + 0.1 * rng.normal(size=4),
                                      "bias": 0.1 * rng.normal(size=4)},
            "dense_zero_init": {"kernel": np.zeros((4, 4))},  # ||w|| = 0 -> ratio 1
        },
        "head": {"dense_0": {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3)},
                 "frozen": {"kernel": rng.normal(size=(3, 3))}},  # zero gradient -> ratio 1
    }


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_official_simclr_update(nesterov):
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _nested_params(rng))
    wd, schedule = 1e-2, optax.warmup_cosine_decay_schedule(0.0, 0.5, 2, 6)
    tx = optim.lars(schedule, weight_decay=wd, nesterov=nesterov)
    state = tx.init(params)
    update = jax.jit(tx.update)

    ref_params = _flatten(params)
    ref_velocity = {k: np.zeros_like(v) for k, v in ref_params.items()}
    for step in range(5):
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
        grads["head"]["frozen"]["kernel"] = jnp.zeros((3, 3))
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        ref_params, ref_velocity = _official_lars_step(
            ref_params, _flatten(grads), ref_velocity, _numpy_warmup_cosine(step, 0.5, 6, 2, 0.0),
            wd=wd, nesterov=nesterov)
    ours = _flatten(params)
    assert ours.keys() == ref_params.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], ref_params[name], rtol=2e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------ make_optimizer

def _config(**overrides):
    config = ml_collections.ConfigDict(dict(
        optimizer="lars", base_lr=0.3, lr_scaling="linear", batch_size=512,
        weight_decay=1e-3, momentum=0.9, warmup_steps=2, total_steps=10))
    config.update(overrides)
    return config


def _run(tx, params, grads_seq):
    state, update = tx.init(params), jax.jit(tx.update)
    for grads in grads_seq:
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return _flatten(params)


def _grads_sequence(params, rng, n=3):
    return [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
            for _ in range(n)]


def test_make_optimizer_schedule_peaks_at_scaled_lr():
    _, schedule = optim.make_optimizer(_config(lr_scaling="sqrt"))
    assert float(schedule(2)) == pytest.approx(0.3 * math.sqrt(512))
    assert float(schedule(1)) == pytest.approx(0.3 * math.sqrt(512) / 2)


def test_make_optimizer_lars_matches_official():
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _nested_params(rng))
    grads_seq = _grads_sequence(params, rng)
    tx, _ = optim.make_optimizer(_config())
    ours = _run(tx, params, grads_seq)
    ref, velocity = _flatten(params), {k: 0.0 for k in _flatten(params)}
    for step, grads in enumerate(grads_seq):
        lr = _numpy_warmup_cosine(step, 0.3 * 512 / 256, 10, 2, 0.0)
        ref, velocity = _official_lars_step(ref, _flatten(grads), velocity, lr, wd=1e-3)
    for name in ours:
        np.testing.assert_allclose(ours[name], ref[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_make_optimizer_sgd_is_momentum_with_masked_l2():
    rng = np.random.default_rng(2)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _nested_params(rng))
    grads_seq = _grads_sequence(params, rng)
    tx, _ = optim.make_optimizer(_config(optimizer="sgd", lr_scaling="none"))
    ours = _run(tx, params, grads_seq)
    ref, velocity = _flatten(params), {k: 0.0 for k in _flatten(params)}
    for step, grads in enumerate(grads_seq):
        lr = _numpy_warmup_cosine(step, 0.3, 10, 2, 0.0)
        for name, g in _flatten(grads).items():
            if not _official_excluded(name):
                g = g + 1e-3 * ref[name]
            velocity[name] = 0.9 * velocity[name] + g
            ref[name] = ref[name] - lr * velocity[name]
    for name in ours:
        np.testing.assert_allclose(ours[name], ref[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_make_optimizer_adamw_decouples_masked_decay():
    rng = np.random.default_rng(3)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), _nested_params(rng))
    grads_seq = _grads_sequence(params, rng)
    tx, _ = optim.make_optimizer(_config(optimizer="adamw", lr_scaling="none", base_lr=0.01,
                                         weight_decay=0.1))
    ours = _run(tx, params, grads_seq)
    ref = _flatten(params)
    mu = {k: 0.0 for k in ref}
    nu = {k: 0.0 for k in ref}
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step, grads in enumerate(grads_seq):
        lr = _numpy_warmup_cosine(step, 0.01, 10, 2, 0.0)
        for name, g in _flatten(grads).items():
            mu[name] = b1 * mu[name] + (1 - b1) * g
            nu[name] = b2 * nu[name] + (1 - b2) * g * g
            m_hat, v_hat = mu[name] / (1 - b1 ** (step + 1)), nu[name] / (1 - b2 ** (step + 1))
            update = m_hat / (np.sqrt(v_hat) + eps)
            if not _official_excluded(name):
                update = update + 0.1 * ref[name]
            ref[name] = ref[name] - lr * update
    for name in ours:
        np.testing.assert_allclose(ours[name], ref[name], rtol=2e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("key, value, fragment", [
    ("optimizer", "lamb", "one of ('lars', 'sgd', 'adamw')"),
    ("lr_scaling", "log", "one of ('linear', 'sqrt', 'none')"),
    ("batch_size", -8, "an integer > 0"),
    ("warmup_steps", 20, "at most total_steps"),
    ("momentum", 1.0, "[0.0, 1.0)"),
])
def test_make_optimizer_rejects_invalid_config(key, value, fragment):
    with pytest.raises(config_utils.ConfigError) as error:
        optim.make_optimizer(_config(**{key: value}))
    message = str(error.value)
    assert repr(key) in message and repr(value) in message and fragment in message


def test_lars_under_jit_has_finite_updates_for_all_zero_tree():
    params = {"dense": {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}}
    tx = optim.lars(0.1)
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    chex.assert_trees_all_close(updates, jax.tree.map(jnp.zeros_like, params))
