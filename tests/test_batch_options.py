"""What a batch tool is expected to have: --limit to try settings on the first N inputs, a --quiet that is quiet."""

from __future__ import annotations

import json

import pytest

import badfiles as bad
from conftest import cli, read_arrow, small_folder


def ids_of(out) -> list[str]:
    return read_arrow(out).column("id").to_pylist()


@pytest.fixture
def folder_and_table(tmp_path):
    """5 image files and a 6-row Parquet image table, as two inputs."""
    folder = small_folder(tmp_path, 5)
    table = bad.write_parquet(tmp_path / "t.parquet",
                              bad.hf_image_table([{"bytes": bad.png(seed=10 + k), "path": None} for k in range(6)]))
    return folder, table


@pytest.mark.parametrize("limit", [3, 7, 50])  # within the files, inside the table, more than there are
def test_limit_codes_the_first_n_inputs_in_input_order(tmp_path, folder_and_table, limit):
    folder, table = folder_and_table
    out = tmp_path / "out.arrow"
    code, stdout, err = cli("compress", folder, table, "-o", out, "--limit", limit, "--json", "--no-progress")
    assert code == 0, err
    every = [f"{folder}/img_00{k}.png" for k in range(5)] + [f"{table}#{k}" for k in range(6)]  # ids of two inputs
    assert ids_of(out) == every[:limit]
    assert json.loads(stdout)["images"] == min(limit, len(every))


def test_limit_cuts_a_table_and_a_shard_folder_alike_and_stats_counts_the_same(tmp_path, folder_and_table):
    _, table = folder_and_table
    code, _, err = cli("compress", table, "-o", f"{tmp_path}/shards/", "--shard-size", 2, "--limit", 5, "--no-progress")
    assert code == 0, err
    rows = [read_arrow(p).column("id").to_pylist() for p in sorted((tmp_path / "shards").glob("part-*.arrow"))]
    assert rows == [["t.parquet#0", "t.parquet#1"], ["t.parquet#2", "t.parquet#3"], ["t.parquet#4"]]
    code, stdout, _ = cli("stats", table, "--limit", 4, "--json", "--no-progress")
    assert code == 0 and json.loads(stdout)["images"] == 4


def test_limit_below_one_is_a_usage_error(tmp_path, folder_and_table):
    folder, _ = folder_and_table
    code, _, err = cli("compress", folder, "-o", tmp_path / "out.arrow", "--limit", 0)
    assert code == 2 and "--limit" in err
    assert not (tmp_path / "out.arrow").exists()


def test_quiet_prints_nothing_when_all_is_well(tmp_path):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out.arrow"
    for args in (["compress", folder, "-o", out], ["stats", folder], ["stats", out],
                 ["restore", out, "-o", tmp_path / "png"]):
        code, stdout, err = cli(*args, "--quiet")
        assert (code, stdout, err) == (0, "", ""), args
    assert len(ids_of(out)) == 3 and len(list((tmp_path / "png").iterdir())) == 3


def test_quiet_still_says_what_failed_in_one_line_each(tmp_path):
    folder = small_folder(tmp_path, 3, bad_at=1)
    out = tmp_path / "out.arrow"
    code, stdout, err = cli("compress", folder, "-o", out, "-q")
    assert code == 1 and stdout == ""
    assert err.splitlines() == [f"pixelprune: 1 of 3 images failed (see {out}.errors.jsonl)"]
    code, stdout, err = cli("stats", folder, "-q")  # no errors file: the failure itself, then the count
    lines = err.splitlines()
    assert code == 1 and stdout == "" and len(lines) == 2, err
    assert lines[0].startswith("pixelprune: img_001.png: ") and " failed: " in lines[0]
    assert lines[1] == "pixelprune: 1 of 3 images failed (listed above)"


def test_quiet_with_json_still_prints_the_json(tmp_path):
    folder = small_folder(tmp_path, 2)
    code, stdout, err = cli("stats", folder, "--quiet", "--json")
    assert code == 0 and err == "" and json.loads(stdout)["images"] == 2


def table_with_ids(path, ids):
    import pyarrow as pa

    table = bad.hf_image_table([{"bytes": bad.png(seed=20 + k), "path": None} for k in range(len(ids))])
    return bad.write_parquet(path, table.append_column("key", pa.array(ids)))


def test_id_column_names_the_rows_of_a_parquet_input(tmp_path):
    table = table_with_ids(tmp_path / "t.parquet", ["doc-a", None, "doc-c"])
    out = tmp_path / "out.arrow"
    code, _, err = cli("compress", table, "-o", out, "--id-column", "key", "--no-progress")
    assert code == 0, err
    assert ids_of(out) == ["doc-a", "t.parquet#1", "doc-c"]  # a null id keeps its row's name
    code, stdout, _ = cli("stats", table, "--id-column", "key", "--json", "--table", "all", "--no-progress")
    assert [e["id"] for e in json.loads(stdout)["per_image"]] == ["doc-a", "t.parquet#1", "doc-c"]


def test_id_column_of_numbers_and_resume_of_a_shard_folder(tmp_path):
    table = table_with_ids(tmp_path / "t.parquet", [101, 102, 103, 104, 105])
    out = tmp_path / "out"
    code, _, err = cli("compress", table, "-o", f"{out}/", "--id-column", "key", "--shard-size", 2, "--no-progress")
    assert code == 0, err
    (out / "part-00001.arrow").unlink()  # as if the run had died before it: --resume redoes that shard alone
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] != 1]
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, err = cli("compress", table, "-o", f"{out}/", "--id-column", "key", "--shard-size", 2, "--resume",
                            "--json", "--no-progress")
    assert code == 0, err
    assert json.loads(stdout)["images"] == 2  # the kept shards' ids matched the id column's values
    rows = [read_arrow(p).column("id").to_pylist() for p in sorted(out.glob("part-*.arrow"))]
    assert rows == [["101", "102"], ["103", "104"], ["105"]]


def test_id_column_that_a_table_lacks_is_a_usage_error_naming_it(tmp_path):
    table = table_with_ids(tmp_path / "t.parquet", ["a"])
    code, _, err = cli("compress", table, "-o", tmp_path / "out.arrow", "--id-column", "nope")
    assert code == 2 and "nope" in err and "t.parquet" in err and "--id-column" in err
    assert not (tmp_path / "out.arrow").exists()
