"""Worker threads keep input order; the background writer keeps call order and reports failures."""

from __future__ import annotations

import random
import time

import pytest

from pixelprune_cli.run.parallel import BackgroundSink, ordered_map


def test_ordered_map_keeps_input_order_with_uneven_work():
    def slow_square(x):
        time.sleep(random.random() / 500)
        return x * x

    items = list(range(200))
    out = list(ordered_map(slow_square, items, workers=4, passthrough=lambda x: x % 7 == 0))
    assert out == [x if x % 7 == 0 else x * x for x in items]


class RecordingSink:
    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def add_at(self, position, result):
        if position == self.fail_at:
            raise OSError("disk full")
        self.calls.append(("add", position, result))

    def commit(self):
        self.calls.append(("commit",))

    def abort(self):
        self.calls.append(("abort",))


def test_background_sink_runs_calls_in_order_then_commits():
    inner = RecordingSink()
    sink = BackgroundSink(inner, depth=2)
    for i in range(50):
        sink.add_at(i, f"row{i}")
    sink.commit()
    assert inner.calls == [("add", i, f"row{i}") for i in range(50)] + [("commit",)]


def test_a_writer_failure_reaches_the_caller_and_nothing_is_committed():
    inner = RecordingSink(fail_at=3)
    sink = BackgroundSink(inner)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            sink.add_at(i, i)
            time.sleep(0.001)
        sink.commit()
    sink.abort()
    assert ("commit",) not in inner.calls and inner.calls[-1] == ("abort",)
    assert [c[1] for c in inner.calls if c[0] == "add"] == [0, 1, 2]


def test_abort_finishes_queued_rows_before_aborting():
    inner = RecordingSink()
    sink = BackgroundSink(inner, depth=8)
    for i in range(5):
        sink.add_at(i, i)
    sink.abort()
    assert inner.calls == [("add", i, i) for i in range(5)] + [("abort",)]
