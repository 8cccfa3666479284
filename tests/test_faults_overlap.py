"""An output over an input: refused, whatever the spelling; and outputs are never read as inputs.

Refused: an output equal to an input (by any spelling or symlink), an output inside
an input folder, and an input inside a shard folder output. Each refusal must leave
every input byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pixelprune_cli import api
from pixelprune_cli.errors import ConfigError

import badfiles as bad
from conftest import SAMPLES_PARQUET, cli, one_line_error, small_folder


@pytest.fixture
def table(tmp_path) -> Path:
    """An image table: the dataset a user would lose."""
    path = tmp_path / "data.parquet"
    shutil.copy(SAMPLES_PARQUET, path)
    return path


def tree(folder: Path) -> dict:
    """relative path -> bytes of every file under folder (hidden ones too)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(stderr: str, *paths) -> None:
    one_line_error(stderr, *map(str, paths))


@pytest.mark.parametrize("spelling", ["same", "dot-dot", "symlink", "hard link"])
def test_compress_onto_its_own_input_is_refused_and_the_input_survives(table, tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    before = table.read_bytes()
    output = {"same": "data.parquet", "dot-dot": f"./../{tmp_path.name}/data.parquet",
              "symlink": "link.parquet", "hard link": "hard.parquet"}[spelling]
    if spelling == "symlink":
        os.symlink("data.parquet", "link.parquet")
    if spelling == "hard link":
        os.link("data.parquet", "hard.parquet")
    code, _, stderr = cli("compress", "data.parquet", "-o", output, "--overwrite")
    assert code == 2
    refused(stderr, output, "data.parquet", "is the input")
    assert table.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"data.parquet", *({output} if spelling in ("symlink", "hard link") else ())})


def test_the_python_api_refuses_it_too(table):
    with pytest.raises(ConfigError, match="is the input"):
        api.compress([str(table)], str(table), overwrite=True)


def test_a_shard_folder_inside_an_input_folder_is_refused(tmp_path):
    folder = small_folder(tmp_path, 3)
    before = tree(folder)
    code, _, stderr = cli("compress", folder, "-o", f"{folder}/shards/")
    assert code == 2
    refused(stderr, f"{folder}/shards/", folder, "inside the input folder")
    assert tree(folder) == before and not (folder / "shards").exists()


def test_an_input_inside_a_shard_folder_is_refused(tmp_path):
    """--overwrite of a shard folder replaces part-NNNNN files: an image table of that name inside it would go."""
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-format", "parquet")[0] == 0
    shutil.copy(SAMPLES_PARQUET, out / "part-00000.parquet")  # the user's table, under a shard's name
    before = tree(out)
    code, _, stderr = cli("compress", out / "part-00000.parquet", "-o", f"{out}/", "--overwrite",
                          "--shard-format", "parquet")
    assert code == 2
    refused(stderr, out / "part-00000.parquet", "inside the output folder")
    assert tree(out) == before


def test_a_table_output_inside_the_input_folder_is_allowed_and_never_read_back(tmp_path):
    folder = small_folder(tmp_path, 3)
    for _ in range(2):  # the second run finds the first one's output, error log and nothing else of its own
        code, stdout, stderr = cli("compress", folder, "-o", folder / "out.parquet", "--overwrite", "--json")
        assert code == 0, stderr
        summary = json.loads(stdout)
        assert (summary["images"], summary["failed"], summary["skipped_files"]) == (3, 0, 0), summary
    assert sorted(p.name for p in folder.iterdir()) == [
        "img_000.png", "img_001.png", "img_002.png", "out.parquet", "out.parquet.errors.jsonl"]


def test_a_table_output_that_would_replace_an_image_table_in_the_input_folder_is_refused(tmp_path):
    folder = small_folder(tmp_path, 2)
    shutil.copy(SAMPLES_PARQUET, folder / "table.parquet")
    before = tree(folder)
    code, _, stderr = cli("compress", folder, "-o", folder / "table.parquet", "--overwrite")
    assert code == 2
    refused(stderr, folder / "table.parquet", folder)
    assert tree(folder) == before


def test_a_table_output_through_a_symlink_in_the_input_folder_is_refused(tmp_path):
    """in/link.parquet points at a table elsewhere: the walk reads it, and the output would replace the link."""
    folder = small_folder(tmp_path, 2)
    shutil.copy(SAMPLES_PARQUET, tmp_path / "table.parquet")
    os.symlink(tmp_path / "table.parquet", folder / "link.parquet")
    code, _, stderr = cli("compress", folder, "-o", folder / "link.parquet", "--overwrite")
    assert code == 2
    refused(stderr, folder / "link.parquet", folder)
    assert (folder / "link.parquet").is_symlink()


def test_an_output_reached_through_a_symlink_to_the_input_folder_is_refused(tmp_path):
    folder = small_folder(tmp_path, 2)
    os.symlink(folder, tmp_path / "alias")
    code, _, stderr = cli("compress", folder, "-o", f"{tmp_path / 'alias'}/shards/")
    assert code == 2
    refused(stderr, "alias/shards/", "inside the input folder")
    assert not (folder / "shards").exists()


@pytest.mark.parametrize("command", ["restore", "show"])
def test_restore_and_show_onto_their_input_are_refused(tmp_path, command):
    """restore -o onto the output it reads; show -o onto the image it draws."""
    if command == "restore":
        source = tmp_path / "out.arrow"
        assert cli("compress", small_folder(tmp_path, 2), "-o", source)[0] == 0
    else:
        source = tmp_path / "a.png"
        source.write_bytes(bad.png(seed=5))
    before = source.read_bytes()
    code, _, stderr = cli(command, source, "-o", source, "--overwrite")
    assert code == 2
    refused(stderr, source, "is the input")
    assert source.read_bytes() == before


def test_a_contact_sheet_inside_the_folder_it_shows_is_refused(tmp_path):
    folder = small_folder(tmp_path, 2)
    code, _, stderr = cli("show", folder, "-o", folder / "sheet.png")
    assert code == 2
    refused(stderr, folder / "sheet.png", "inside the input folder")
    assert not (folder / "sheet.png").exists()


# ----------------------------------------------------------------- 5. a run never lists its own files

def test_a_run_never_lists_its_own_temporaries_or_lock(tmp_path):
    """The folder is listed while the run's temporary files and lock exist: none of them is skipped or read."""
    folder = small_folder(tmp_path, 3)
    code, stdout, stderr = cli("compress", folder, "-o", folder / "out.arrow", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert (summary["skipped_files"], summary["skipped_hidden"], summary["skipped"]) == (0, 0, []), summary


# ----------------------------------------------------------------- 7. pixelprune's outputs are never inputs

def test_outputs_left_in_an_input_folder_by_earlier_runs_are_not_read_as_image_tables(tmp_path):
    folder = small_folder(tmp_path, 3)
    (tmp_path / "x").mkdir()
    elsewhere = small_folder(tmp_path / "x", 2)
    assert cli("compress", folder, "-o", folder / "out.parquet")[0] == 0
    assert cli("compress", elsewhere, "-o", f"{folder}/shards/", "--shard-format", "parquet")[0] == 0
    code, stdout, stderr = cli("compress", folder, "-o", tmp_path / "next.arrow", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert (summary["images"], summary["failed"]) == (3, 0), summary
    assert "out.parquet" in summary["skipped"] and "shards/part-00000.parquet" in summary["skipped"]


def test_a_pixelprune_output_given_as_an_input_is_refused_in_one_line(tmp_path):
    folder = small_folder(tmp_path, 2)
    assert cli("compress", folder, "-o", tmp_path / "out.parquet")[0] == 0
    code, _, stderr = cli("compress", tmp_path / "out.parquet", folder, "-o", tmp_path / "again.arrow")
    assert code == 2
    one_line_error(stderr, "out.parquet", "a pixelprune output")
