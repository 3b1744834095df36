"""Greedy layer-wise pretraining of an MLP as a stack of autoencoders (Bengio et al. 2007).

Before deep networks could be trained from a random start (ReLU, better optimisers, batch
norm), each hidden layer was first trained alone, without labels, to reconstruct its input
(Hinton et al. 2006 with RBMs; Bengio, Lamblin, Popovici & Larochelle 2007, "Greedy
Layer-Wise Training of Deep Networks", with autoencoders), and the stack was then fine-tuned
with labels. For hidden layer l, with ``h_0 = x`` and the layers below already trained::

    h_l     = block_l(h_{l-1})                         (the MLP's own block: dense, norm, activation)
    minimise  mean || W'_l h_l + b'_l - h_{l-1} ||^2   over block_l and a linear decoder (W'_l, b'_l)

with Adam on random minibatches of every training input (labelled or not); ``h_{l-1}`` comes
from the trained layers below in evaluation mode. The decoder is thrown away; block l's
parameters (and batch statistics) replace its random initialisation in the MLP.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rl_repr.models import MLP, MLPBlock


class _AutoEncoder(nn.Module):
    """``decoder(block(x))``: one hidden layer trained to reconstruct its input."""

    block: MLPBlock
    input_features: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return nn.Dense(self.input_features, name="decoder")(self.block(x, train=train))


def _block(model: MLP, index: int) -> MLPBlock:
    return MLPBlock(activation=model.activation, norm=model.norm, dtype=model.dtype, bn_momentum=model.bn_momentum,
                    features=model.hidden[index])


def greedy_layerwise_pretraining(model: MLP, variables: dict, inputs: jax.Array, key: jax.Array, *,
                                 steps_per_layer: int, learning_rate: float, batch_size: int) -> dict:
    """``variables`` of ``model`` with every hidden block pretrained as an autoencoder, in order.

    Args:
      model: the MLP (its ``hidden`` widths, activation and norm).
      variables: its initial ``{'params': ..., 'batch_stats': ...}`` (block l starts from them).
      inputs: ``[N, ...]`` model inputs (flattened here), every training example.
      key: draws the decoders' initialisation and the minibatches.
      steps_per_layer: Adam steps per layer.
      learning_rate: Adam's learning rate.
      batch_size: examples per step (at most N).

    Returns:
      New variables: ``params['block<l>']`` (and ``batch_stats['block<l>']``) pretrained,
      the classifier untouched.
    """
    params, batch_stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
    below = jnp.asarray(inputs, jnp.float32).reshape(len(inputs), -1)
    batch_size = min(batch_size, below.shape[0])
    optimizer = optax.adam(learning_rate)
    for index in range(len(model.hidden)):
        name = f"block{index + 1}"
        autoencoder = _AutoEncoder(_block(model, index), below.shape[1])
        layer_key, key = jax.random.split(key)
        ae_params = dict(autoencoder.init(layer_key, below[:2], train=False)["params"])
        ae_params["block"] = params[name]
        ae_stats = {"block": batch_stats[name]} if name in batch_stats else {}
        ae_params, ae_stats = _train(autoencoder, optimizer, ae_params, ae_stats, below, layer_key,
                                     steps_per_layer, batch_size)
        params[name] = ae_params["block"]
        if ae_stats:
            batch_stats[name] = ae_stats["block"]
        below = _block(model, index).apply({"params": params[name], "batch_stats": batch_stats.get(name, {})},
                                           below, train=False)
    return {**variables, "params": params, "batch_stats": batch_stats}


def _train(autoencoder: _AutoEncoder, optimizer, params, stats, data, key, steps: int, batch_size: int):
    @jax.jit
    def run(params, stats, data, key):
        def step(carry, step_key):
            params, stats, opt_state = carry
            batch = data[jax.random.randint(step_key, (batch_size,), 0, data.shape[0])]

            def loss_fn(p):
                reconstruction, updates = autoencoder.apply({"params": p, "batch_stats": stats}, batch, train=True,
                                                            mutable=["batch_stats"])
                return jnp.mean(jnp.sum((reconstruction - batch) ** 2, axis=-1)), updates.get("batch_stats", stats)

            grads, stats = jax.grad(loss_fn, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), stats, opt_state), None

        (params, stats, _), _ = jax.lax.scan(step, (params, stats, optimizer.init(params)),
                                             jax.random.split(key, steps))
        return params, stats

    return run(params, stats, data, key)
