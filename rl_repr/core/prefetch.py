"""Batches placed on the devices ahead of the step that needs them.

:class:`DevicePrefetch` turns a stream of host batches into ``batch_for_step(step)``: a
background thread reads the stream and places each batch (``put``, e.g.
``rl_repr.core.drivers.Driver.put_batch``, which builds the global array from this process's
rows with ``jax.make_array_from_process_local_data``), keeping up to ``ahead`` placed batches
waiting, so the host-to-device copy of step t + 1 overlaps the compute of step t. Asked for
any step other than the next one (a resumed run, a test stepping by hand), it reopens the
stream at that step: the stream must be a function of the step it starts at.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

_END = object()


class DevicePrefetch:
    """``batch_for_step(step)`` over ``open_stream(start_step) -> iterator of host batches``.

    Args:
      open_stream: yields the host batches of steps ``start_step, start_step + 1, ...``.
      put: places one host batch on the devices (identity by default).
      ahead: placed batches kept waiting (at least 1).
    """

    def __init__(self, open_stream: Callable[[int], Iterator[Any]], put: Callable[[Any], Any] = lambda b: b, *,
                 ahead: int = 1):
        if ahead < 1:
            raise ValueError(f"ahead={ahead} must be at least 1 (batches placed before they are needed).")
        self._open, self._put, self._ahead = open_stream, put, ahead
        self._next_step = None
        self._thread = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue()

    def __call__(self, step: int) -> Any:
        if step != self._next_step:
            self._restart(step)
        item = self._queue.get()
        if item is _END:
            raise RuntimeError(f"The input stream ended before step {step}; a training stream must not end.")
        if isinstance(item, BaseException):
            self._next_step = None
            raise item
        self._next_step = step + 1
        return item

    def close(self) -> None:
        """Stops the background thread (the next call reopens the stream)."""
        if self._thread is not None:
            self._stop.set()  # the producer checks it at least every 50 ms while it waits
            self._thread.join()
            self._thread = None
        self._next_step = None

    def _restart(self, step: int) -> None:
        self.close()
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self._ahead)
        self._thread = threading.Thread(target=self._produce, args=(step, self._stop, self._queue),
                                        name=f"device-prefetch-from-step-{step}", daemon=True)
        self._thread.start()

    def _produce(self, step: int, stop: threading.Event, out: queue.Queue) -> None:
        try:
            for batch in self._open(step):
                placed = self._put(batch)
                if not _offer(out, placed, stop):
                    return
            _offer(out, _END, stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            _offer(out, error, stop)


def _offer(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Puts ``item`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
