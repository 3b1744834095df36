"""MoCo's queue of negative keys in your own training loop (He et al. 2020, Algorithm 1).

Per step: queries from the trained encoder, keys from its momentum copy (no gradient), the
InfoNCE loss of each query against its key and the K keys of the queue
(``losses.info_nce``), an optimizer step, the momentum update of the key encoder, and the
queue update. Two queue updates give the same set of keys:

* ``losses.update_queue(queue, keys)``: drop the oldest B rows, append the newest (copies K x d);
* ``losses.update_queue_at_pointer(queue, pointer, keys)``: MoCo's ring buffer, writes B x d at
  ``pointer`` and advances it by B mod K (in place when the queue is donated under ``jit``).

Inside ``jax.shard_map`` pass ``axis_name`` to both the loss and the queue update, and every
device enqueues the keys of the whole global batch. The script checks the two queues against
each other and against the keys it enqueued::

    python examples/moco_queue.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rl_repr import losses

QUEUE_SIZE, BATCH, INPUT_DIM, DIM = 64, 16, 12, 8  # K must be a multiple of the batch B
MOMENTUM, TEMPERATURE = 0.99, 0.2


def encode(params, x):
    """Your encoder, L2-normalised as MoCo's: ``x: [B, 12] -> [B, 8]``."""
    z = jnp.tanh(x @ params["w1"]) @ params["w2"]
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


optimizer = optax.sgd(0.1, momentum=0.9)


@jax.jit
def train_step(state, examples, key):
    key_query, key_key = jax.random.split(key)
    view_query = examples + 0.1 * jax.random.normal(key_query, examples.shape)  # your augmentation
    view_key = examples + 0.1 * jax.random.normal(key_key, examples.shape)
    keys = jax.lax.stop_gradient(encode(state["key_params"], view_key))

    def loss_fn(params):
        return losses.info_nce(encode(params, view_query), keys, state["queue"], TEMPERATURE)

    loss, grads = jax.value_and_grad(loss_fn)(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    # key encoder <- m * key encoder + (1 - m) * query encoder
    key_params = optax.incremental_update(params, state["key_params"], step_size=1 - MOMENTUM)
    queue = losses.update_queue(state["queue"], keys)
    ring, pointer = losses.update_queue_at_pointer(state["ring"], state["pointer"], keys)
    new_state = dict(params=params, key_params=key_params, opt_state=opt_state, queue=queue, ring=ring,
                     pointer=pointer)
    return new_state, loss, keys


def rows_sorted(array):
    array = np.asarray(array)
    return array[np.lexsort(array.T[::-1])]


def main():
    key_w1, key_w2, key_queue, key_data = jax.random.split(jax.random.key(0), 4)
    params = {"w1": jax.random.normal(key_w1, (INPUT_DIM, 32)) / 3, "w2": jax.random.normal(key_w2, (32, DIM)) / 5}
    initial = jax.random.normal(key_queue, (QUEUE_SIZE, DIM))
    initial = initial / jnp.linalg.norm(initial, axis=-1, keepdims=True)  # random keys until filled
    state = dict(params=params, key_params=params, opt_state=optimizer.init(params), queue=initial,
                 ring=initial, pointer=jnp.zeros((), jnp.int32))
    data = jax.random.normal(key_data, (512, INPUT_DIM))

    enqueued = []
    for step in range(12):
        examples = data[(step * BATCH) % len(data):][:BATCH]
        state, loss, keys = train_step(state, examples, jax.random.key(100 + step))
        enqueued.append(np.asarray(keys))
        # Both queues hold the same keys, in a different row order; the newest are the last B
        # rows of update_queue's and the B rows before the pointer in the ring buffer.
        np.testing.assert_array_equal(rows_sorted(state["queue"]), rows_sorted(state["ring"]))
        np.testing.assert_array_equal(state["queue"][-BATCH:], keys)
        print(f"step {step:2d}  loss {float(loss):.4f}  ring pointer {int(state['pointer']):2d}")
    last = np.concatenate(enqueued[-QUEUE_SIZE // BATCH:])  # K / B steps fill the queue
    np.testing.assert_array_equal(np.asarray(state["queue"]), last)
    print(f"the queue holds exactly the keys of the last {QUEUE_SIZE // BATCH} steps, oldest first")


if __name__ == "__main__":
    main()
