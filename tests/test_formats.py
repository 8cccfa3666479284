"""The format registry is what every command uses, and the stages depend on each other one way only."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pixelprune_cli import api
from pixelprune_cli.cli import main
from pixelprune_cli.formats import TABLE_FORMATS, format_of
from pixelprune_cli.job import RunOptions
from pixelprune_cli.readers import compressed_meta, iter_output_batches, output_rows

from conftest import SAMPLES

IMAGE = SAMPLES / "chart.png"


@pytest.mark.parametrize("name", ["out.txt", "out", "out.png"])
def test_unknown_output_suffix_is_refused_with_the_known_ones(tmp_path, name):
    result = CliRunner().invoke(main, ["compress", str(IMAGE), "-o", str(tmp_path / name), "--no-progress"])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0 and str(tmp_path / name) in message
    for fmt in TABLE_FORMATS.values():
        for suffix in fmt.suffixes:
            assert suffix in message
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even a lock


@pytest.mark.parametrize("suffix", sorted({s for f in TABLE_FORMATS.values() for s in f.suffixes}))
def test_every_registered_suffix_is_written_and_read_back_in_its_format(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    summary = api.compress([str(IMAGE)], str(out), run=RunOptions(workers=1, progress=False))
    assert summary.written == 1
    fmt = format_of(out)
    magic = b"PAR1" if fmt.name == "parquet" else b"ARROW1"
    assert out.read_bytes()[:len(magic)] == magic  # the bytes are the format the name says
    assert compressed_meta(str(out))["method"] == "pred_2d"
    assert output_rows(str(out)) == 1
    assert [b.num_rows for b in iter_output_batches(str(out), ["id"])] == [1]


def test_shard_format_choices_are_the_registry():
    result = CliRunner().invoke(main, ["compress", "--help"])
    for name in TABLE_FORMATS:
        assert name in result.output


def test_sources_does_not_import_the_coding_stage():
    """Data flows one way: the input stage must not depend on the stages after it."""
    code = ("import sys, pixelprune_cli.sources; "
            "later = [m for m in ('pixelprune_cli.pipeline', 'pixelprune_cli.coder', 'pixelprune_cli.writer', "
            "'pixelprune_cli.report', 'pixelprune_cli.api') if m in sys.modules]; "
            "print(later)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
