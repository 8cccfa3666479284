"""Run summaries in bounded memory: streamed totals, extremes, groups and JSON against plain recomputations."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from pixelprune_cli.records import SpooledList
from pixelprune_cli.report.report import render_table
from pixelprune_cli.report.summary import ImageEntry, Summary, add_groups, print_json


def random_entries(count: int, seed: int = 0) -> list[tuple[ImageEntry, dict]]:
    """Entries with few distinct kept counts (many ties) and a carried 'kind' column."""
    rng = np.random.default_rng(seed)
    entries = []
    for k in range(count):
        tokens = int(rng.choice([0, 4, 8, 16]))
        kept = int(rng.integers(0, tokens + 1)) if tokens else 0
        entry = ImageEntry(f"img_{k:05d}.png", (64, 48), (64, 64), tokens, kept, float(rng.random()) / 100,
                           over_budget=bool(rng.random() < 0.1))
        entries.append((entry, {"kind": str(rng.choice(["page", "screen", "photo"]))}))
    return entries


def summary_of(entries, in_memory: int) -> Summary:
    summary = Summary(log=SpooledList(in_memory=in_memory), error_log=SpooledList(in_memory=in_memory))
    for entry, values in entries:
        summary.add_image(entry, values)
    return summary.finish()


@pytest.mark.parametrize("in_memory", [10_000, 7], ids=["in memory", "spooled"])
def test_spooled_list_gives_back_every_item_in_order_and_again(in_memory):
    entries = random_entries(50)
    log = SpooledList(in_memory=in_memory)
    for item in entries[:30]:
        log.append(item)
    assert list(log) == entries[:30]
    for item in entries[30:]:  # appending after a read-back still lands at the end
        log.append(item)
    assert list(log) == entries and list(log) == entries and len(log) == 50
    assert log.head(3) == entries[:3] and log.head(99) == entries
    assert len(log.items) == (50 if in_memory > 50 else 0)  # spooled: no entry objects held


@pytest.mark.parametrize("in_memory", [10_000, 16], ids=["in memory", "spooled"])
def test_streamed_totals_and_fractions_equal_a_recomputation_over_all_entries(in_memory):
    entries = random_entries(300, seed=1)
    summary = summary_of(entries, in_memory)
    plain = [e for e, _ in entries]
    assert (summary.written, summary.tokens, summary.kept) == (300, sum(e.tokens for e in plain), sum(e.kept for e in plain))
    assert summary.over_budget == sum(e.over_budget for e in plain)
    fractions = np.array([e.kept / e.tokens for e in plain if e.tokens])
    stats = summary.kept_fraction_stats()
    assert stats == {"mean": float(fractions.mean()), "median": float(np.median(fractions)),
                     "p10": float(np.percentile(fractions, 10)), "p90": float(np.percentile(fractions, 90))}


@pytest.mark.parametrize("count", [11, 12, 300])
def test_extremes_are_the_first_and_last_five_of_a_stable_sort(count):
    entries = random_entries(count, seed=count)
    least, most = summary_of(entries, 16).extremes.ranked()
    ranked = sorted((e for e, _ in entries), key=lambda e: e.saved)  # what the table showed before streaming
    assert least == ranked[:5] and most == ranked[-5:]


def test_groups_equal_a_brute_force_grouping():
    entries = random_entries(200, seed=2)
    summary = summary_of(entries, 16)
    add_groups(summary, "kind")
    for group in summary.groups:
        members = [e for e, values in entries if values["kind"] == group["value"]]
        assert group["images"] == len(members)
        assert (group["tokens"], group["kept"]) == (sum(e.tokens for e in members), sum(e.kept for e in members))
        assert group["median_kept_fraction"] == float(np.median([e.kept / e.tokens for e in members if e.tokens]))
    assert sum(g["images"] for g in summary.groups) == 200


@pytest.mark.parametrize("count, failures", [(0, 0), (0, 1), (1, 0), (45, 20)])
def test_streamed_json_is_the_summary_dict(count, failures):
    summary = summary_of(random_entries(count, seed=3), 8)
    for k in range(failures):
        summary.add_error({"id": f"bad{k}.png", "stage": "decode", "reason": "not an image"})
    out = io.StringIO()
    with redirect_stdout(out):
        print_json(summary)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(summary.as_dict()))


def test_summary_table_of_a_spooled_run_shows_the_extremes(capsys):
    summary = summary_of(random_entries(100, seed=4), 8)
    render_table(summary, "auto")
    printed = capsys.readouterr().out
    least, most = summary.extremes.ranked()
    shown = [line.split()[0] for line in printed.splitlines() if line.startswith("img_")]
    assert shown == [e.id for e in least + most]
    assert "100 images: the 5 that saved least, then the 5 that saved most" in printed
