"""NT-Xent with negatives from every device, inside your own ``jax.shard_map`` training step.

Each device encodes its slice of the batch; ``losses.nt_xent(z1, z2, axis_name="data")``
gathers the normalised embeddings of all devices, so each view is contrasted with the other
2N - 1 views of the *global* batch, not only with those on its device, and every device returns
the global loss. The gradient is taken inside ``shard_map``; the parameters are replicated
(``in_specs=P()``), and JAX returns their gradient already summed over the devices, i.e. the
gradient of the global loss (do not ``psum`` it again).

The script trains a small encoder for a few steps and checks the sharded loss and gradient
against ``nt_xent`` of the whole batch on one device::

    python examples/nt_xent_shard_map.py   # 8 simulated CPU devices unless XLA_FLAGS sets a count
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from rl_repr import losses  # noqa: E402

TEMPERATURE = 0.5


def encode(params, x):
    """Your network: a two-layer MLP here. ``x: [n, 16] -> z: [n, 8]``."""
    return jnp.tanh(x @ params["w1"]) @ params["w2"]


def contrastive_loss(params, view1, view2, axis_name=None):
    return losses.nt_xent(encode(params, view1), encode(params, view2), TEMPERATURE, axis_name=axis_name)


def main():
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    batch = 4 * jax.device_count()  # 4 examples per device; every device sees all 2 x batch views
    key_w1, key_w2, key_x = jax.random.split(jax.random.key(0), 3)
    params = {"w1": jax.random.normal(key_w1, (16, 32)) / 4, "w2": jax.random.normal(key_w2, (32, 8)) / 6}
    optimizer = optax.sgd(0.5)
    opt_state = optimizer.init(params)

    def per_device(params, view1, view2):  # runs on each device with its [4, 16] rows
        return jax.value_and_grad(contrastive_loss)(params, view1, view2, axis_name="data")

    sharded_loss_and_grad = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                                          out_specs=(P(), P()))

    @jax.jit
    def train_step(params, opt_state, view1, view2):
        loss, grads = sharded_loss_and_grad(params, view1, view2)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    # Two views of each example: the example plus independent noise.
    examples = jax.random.normal(key_x, (batch, 16))
    noise = jax.random.split(jax.random.key(1), 2)
    view1 = examples + 0.3 * jax.random.normal(noise[0], examples.shape)
    view2 = examples + 0.3 * jax.random.normal(noise[1], examples.shape)
    # The sharded loss and gradient are those of the whole batch on one device.
    reference_loss, reference_grads = jax.value_and_grad(contrastive_loss)(params, view1, view2)

    # Rows split over the devices, parameters and optimizer state on every device.
    view1, view2 = jax.device_put((view1, view2), NamedSharding(mesh, P("data")))
    params, opt_state = jax.device_put((params, opt_state), NamedSharding(mesh, P()))
    loss, grads = jax.jit(sharded_loss_and_grad)(params, view1, view2)
    grad_error = max(float(jnp.max(jnp.abs(grads[k] - reference_grads[k]))) for k in grads)
    print(f"{jax.device_count()} devices, global batch {batch}: loss {float(loss):.6f} "
          f"(one device: {float(reference_loss):.6f}), largest gradient difference {grad_error:.1e}")
    np.testing.assert_allclose(float(loss), float(reference_loss), rtol=1e-5)
    assert grad_error < 1e-5

    first = float(loss)
    for _ in range(30):
        params, opt_state, loss = train_step(params, opt_state, view1, view2)
    print(f"after 30 steps of SGD: loss {first:.4f} -> {float(loss):.4f}")
    assert float(loss) < first


if __name__ == "__main__":
    main()
