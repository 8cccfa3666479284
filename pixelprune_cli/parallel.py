"""Run the per-image function on worker threads, results in input order.

Threads suffice: Pillow releases the GIL while decoding and resizing, and the
coder kernels are compiled `nogil`. A bounded window of in-flight images keeps
memory flat however long the input is.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def ordered_map(fn: Callable, items: Iterable, workers: int, passthrough: Callable[[object], bool], window: int | None = None) -> Iterator:
    """fn(item) for each item, in order; items for which passthrough(item) is true are yielded as they are."""
    if workers <= 1:
        for item in items:
            yield item if passthrough(item) else fn(item)
        return
    window = window or workers * 3
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixelprune") as pool:
        try:
            for item in items:
                pending.append(_done(item) if passthrough(item) else pool.submit(fn, item))
                while len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
