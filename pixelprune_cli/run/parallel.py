"""Run the per-image function on worker threads, results in input order.

Threads suffice: Pillow releases the GIL while decoding and resizing, and the
coder kernels are compiled `nogil`. A bounded window of in-flight images keeps
memory flat however long the input is.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pixelprune_cli.records import Sink


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)




def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def ordered_map(fn: Callable, items: Iterable, workers: int, passthrough: Callable[[Any], bool], window: int | None = None) -> Iterator:
    """fn(item) for each item, in order; items for which passthrough(item) is true are yielded as they are."""
    if workers <= 1:
        for item in items:
            yield item if passthrough(item) else fn(item)
        return
    window = window or workers * 3
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixelprune")
    finished = False
    try:
        for item in items:
            pending.append(_done(item) if passthrough(item) else pool.submit(fn, item))
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        # On an interrupt or error, do not wait for workers: one may be blocked in a read
        # that never returns, and the interrupt must still end the run.
        pool.shutdown(wait=finished, cancel_futures=True)


class BackgroundSink:
    """Runs a sink's add/commit on one writer thread, so batch building and
    compression overlap with decoding the next images.

    Calls keep their order; a bounded queue keeps memory flat. An error in the
    writer thread is raised in the caller at its next call.
    """

    _STOP = object()

    def __init__(self, sink: Sink, depth: int = 4):
        import contextvars
        import queue
        import threading

        self.sink = sink
        self.failure: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        # In the caller's context, so that messages raised there name what the caller passed (errors.option).
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._run,), name="pixelprune-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            call = self.queue.get()
            if call is self._STOP:
                return
            if self.failure is None:
                try:
                    call[0](*call[1:])
                except BaseException as exc:  # handed to the caller
                    self.failure = exc

    def _raise(self) -> None:
        if self.failure is not None:
            raise self.failure

    def add_at(self, position: int, result) -> None:
        self._raise()
        self.queue.put((self.sink.add_at, position, result))

    def commit(self) -> None:
        self._raise()
        self.queue.put((self.sink.commit,))
        self.queue.put(self._STOP)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Let the writer finish the (at most `depth`) calls queued, then abort the sink.

        Queued rows precede the failure, so a shard they complete is still committed.
        """
        self.queue.put(self._STOP)
        self.thread.join()
        self.sink.abort()
