"""The Ray Data engine writes what the local engine writes, id for id.

One local Ray instance (2 CPUs) serves the whole module, so Ray's start-up
cost is paid once. Skipped when Ray is not installed (`pip install
'pixelprune[ray]'`).
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray binds to 127.0.0.1, not the machine's outward address
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own internals

from pixelprune_cli import api  # noqa: E402
from pixelprune_cli.coding.pipeline import CodingConfig, FailedImage  # noqa: E402
from pixelprune_cli.errors import ConfigError, InputError  # noqa: E402
from pixelprune_cli.inputs.pieces import ImageFile, ParquetRows, SourceOptions  # noqa: E402
from pixelprune_cli.outputs.readers import iter_output_batches  # noqa: E402
from pixelprune_cli.outputs.schema import read_meta  # noqa: E402
from pixelprune_cli.ray import compress_dataset, compress_with_ray  # noqa: E402
from pixelprune_cli.run.job import RunOptions  # noqa: E402
from pixelprune_cli.run.ray_engine import connect, split_into_shards  # noqa: E402

from conftest import SAMPLES, SAMPLES_PARQUET, read_arrow  # noqa: E402

RUN = RunOptions(workers=2, progress=False)
CONFIG = CodingConfig()


SIGTERM_HANDLERS: dict = {}  # the handler before and after the module's Ray started


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import signal

    SIGTERM_HANDLERS["before"] = signal.getsignal(signal.SIGTERM)
    started = connect(num_cpus=2)
    SIGTERM_HANDLERS["after"] = signal.getsignal(signal.SIGTERM)
    yield
    if started:
        ray.shutdown()


def test_starting_ray_keeps_the_callers_sigterm_handler():
    """ray.init would put in its own, which exits at once: no cleanup, exit status 15 instead of 143."""
    assert SIGTERM_HANDLERS["after"] is SIGTERM_HANDLERS["before"]


def read_output(path: Path) -> pa.Table:
    """A Parquet output or shard folder as pixelprune reads it: pixels in the Arrow layout."""
    return pa.Table.from_batches(list(iter_output_batches(str(path))))


def read_shards(folder: Path) -> pa.Table:
    files = sorted(folder.glob("part-*.parquet"))
    assert files, f"no shards in {folder}"
    return pa.concat_tables(read_output(f) for f in files)


def assert_same_rows(ours: pa.Table, local: pa.Table) -> None:
    """Every column of every row equal (pixels, kept_index, index_map included), matched by id."""
    ours, local = ours.sort_by("id"), local.sort_by("id")
    assert ours.column_names == local.column_names
    assert ours.column("id").to_pylist() == local.column("id").to_pylist()
    for name in ours.column_names:
        assert ours.column(name).equals(local.column(name)), f"column {name} differs"


def test_ray_rows_equal_local_rows_on_samples_parquet(tmp_path):
    sources = SourceOptions(keep_columns=("name", "kind"))
    api.compress([str(SAMPLES_PARQUET)], str(tmp_path / "local.parquet"), CONFIG, sources, RUN)
    summary = compress_with_ray([str(SAMPLES_PARQUET)], str(tmp_path / "ray"), CONFIG, sources, shard_size=3, progress=False)

    local = read_output(tmp_path / "local.parquet")
    ours = read_shards(tmp_path / "ray")
    assert ours.num_rows == local.num_rows == 10
    assert ours.column("id").to_pylist() == [f"samples.parquet#{i}" for i in range(10)]  # shards in input order
    assert_same_rows(ours, local)
    for shard in sorted((tmp_path / "ray").glob("part-*.parquet")):
        assert (read_meta(pq.read_schema(shard)) == read_meta(pq.read_schema(tmp_path / "local.parquet"))
                == {**CONFIG.to_meta(), "image_column": "image", "pixels_layout": "list<binary>"})
    assert (summary.written, summary.failed) == (10, 0)
    assert [e.id for e in summary.iter_entries()] == local.column("id").to_pylist()


def test_ray_shards_equal_local_sharded_output_on_samples_folder(tmp_path):
    # Shard size 4 cuts samples.parquet (positions 5..14 of the folder) across three shards.
    api.compress([str(SAMPLES)], str(tmp_path / "local.arrow"), CONFIG, run=RUN)
    api.compress([str(SAMPLES)], str(tmp_path / "local") + "/", CONFIG, run=RUN, shard_size=4, shard_format="parquet")
    summary = compress_with_ray([str(SAMPLES)], str(tmp_path / "ray"), CONFIG, shard_size=4, progress=False)

    single = read_arrow(tmp_path / "local.arrow")
    assert_same_rows(read_shards(tmp_path / "ray"), single)
    local_shards = sorted(p.name for p in (tmp_path / "local").glob("part-*.parquet"))
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*.parquet")) == local_shards == [f"part-0000{i}.parquet" for i in range(5)]
    for name in local_shards:
        ours, local = pq.read_table(tmp_path / "ray" / name), pq.read_table(tmp_path / "local" / name)
        assert ours.equals(local, check_metadata=True), f"{name} differs from the local shard"
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest.pop("engine") == "ray"
    assert manifest == json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert (tmp_path / "ray" / "errors.jsonl").read_text() == ""
    assert [e.id for e in summary.iter_entries()] == single.column("id").to_pylist()


@pytest.mark.parametrize("inputs", [["chart.png"], ["form.png", "samples.parquet"]], ids=["one file", "two inputs"])
def test_ray_ids_equal_local_ids_for_files_and_several_inputs(tmp_path, inputs):
    paths = [str(SAMPLES / name) for name in inputs]  # one input: ids are names; several: the paths as given
    api.compress(paths, str(tmp_path / "local.arrow"), CONFIG, run=RUN)
    compress_with_ray(paths, str(tmp_path / "ray"), CONFIG, shard_size=4, progress=False)
    local = read_arrow(tmp_path / "local.arrow")
    ours = read_shards(tmp_path / "ray")
    assert ours.column("id").to_pylist() == local.column("id").to_pylist()
    assert_same_rows(ours, local)


def png_bytes(color) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(out, format="PNG")
    return out.getvalue()


def test_bad_image_goes_to_errors_and_good_rows_are_written(tmp_path):
    cells = [png_bytes((200, 10, 10)), os.urandom(500), png_bytes((10, 10, 200))]
    pq.write_table(pa.table({"image": pa.array(cells, pa.binary())}), tmp_path / "mixed.parquet")

    summary = compress_with_ray([str(tmp_path / "mixed.parquet")], str(tmp_path / "out"), CONFIG, shard_size=2, progress=False)

    rows = read_shards(tmp_path / "out")
    assert rows.column("id").to_pylist() == ["mixed.parquet#0", "mixed.parquet#2"]
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["id"], e["stage"]) for e in errors] == [("mixed.parquet#1", "decode")]
    assert summary.errors == errors
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["complete"], manifest["images"], manifest["written"], manifest["failed"]) == (True, 3, 2, 1)


def test_ray_tasks_read_path_cells_by_the_rule_and_the_schemes_the_user_allowed(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png_bytes((10, 200, 10)))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cells = [{"bytes": None, "path": "img/a.png"}, {"bytes": None, "path": "http://127.0.0.1:9/x.png"},
             {"bytes": png_bytes((10, 10, 10)), "path": None}, {"bytes": None, "path": "../a.png"}]
    pq.write_table(pa.table({"image": pa.array(cells, image_type)}), tmp_path / "t.parquet")
    table = [str(tmp_path / "t.parquet")]

    def errors_of(folder: Path) -> dict:
        return {e["id"]: e["reason"] for e in map(json.loads, (folder / "errors.jsonl").read_text().splitlines())}

    api.compress(table, str(tmp_path / "local") + "/", CONFIG, run=RUN, shard_size=2, shard_format="parquet")
    compress_with_ray(table, str(tmp_path / "ray"), CONFIG, shard_size=2, progress=False)
    assert_same_rows(read_shards(tmp_path / "ray"), read_shards(tmp_path / "local"))  # the relative cell
    refused = errors_of(tmp_path / "ray")
    assert refused == errors_of(tmp_path / "local") and sorted(refused) == ["t.parquet#1", "t.parquet#3"]
    assert "--allow-path-schemes http" in refused["t.parquet#1"] and "'..' segment" in refused["t.parquet#3"]

    allowed = SourceOptions(allow_path_schemes=("http",))  # port 9 on loopback: nothing answers, the row still fails
    compress_with_ray(table, str(tmp_path / "allowed"), CONFIG, allowed, shard_size=2, progress=False)
    reasons = errors_of(tmp_path / "allowed")
    assert "path-cell rule" not in reasons["t.parquet#1"] and "http://127.0.0.1:9/x.png" in reasons["t.parquet#1"]
    assert reasons["t.parquet#3"] == refused["t.parquet#3"]


def test_resume_rewrites_only_the_missing_shard(tmp_path):
    out = tmp_path / "out"
    compress_with_ray([str(SAMPLES_PARQUET)], str(out), CONFIG, shard_size=4, progress=False)
    first = {p.name: pq.read_table(p) for p in out.glob("part-*.parquet")}
    (out / "part-00001.parquet").unlink()
    kept_mtime = (out / "part-00000.parquet").stat().st_mtime_ns

    summary = compress_with_ray([str(SAMPLES_PARQUET)], str(out), CONFIG, shard_size=4, resume=True, progress=False)

    assert [e.id for e in summary.iter_entries()] == [f"samples.parquet#{i}" for i in range(4, 8)]
    assert summary.resumed.shards == 2
    assert (out / "part-00000.parquet").stat().st_mtime_ns == kept_mtime
    assert {p.name: pq.read_table(p) for p in out.glob("part-*.parquet")} == first
    with pytest.raises(ConfigError, match="inputs changed"):  # other inputs: refused before any work
        compress_with_ray([str(SAMPLES)], str(out), CONFIG, shard_size=4, resume=True, progress=False)


def test_compress_dataset_returns_local_rows_and_reports_failures(tmp_path):
    table = pq.read_table(SAMPLES_PARQUET)
    table = table.append_column("id", pa.array([f"samples.parquet#{i}" for i in range(table.num_rows)]))
    bad = pa.table({"image": pa.array([{"bytes": b"not an image", "path": None}], table.schema.field("image").type),
                    "name": ["junk"], "kind": ["junk"], "id": ["junk#0"]})
    ds = ray.data.from_arrow(pa.concat_tables([table, bad]))

    rows = compress_dataset(ds, CONFIG, keep_columns=("name", "kind"), errors_path=tmp_path / "errors.jsonl")

    sources = SourceOptions(keep_columns=("name", "kind"))
    api.compress([str(SAMPLES_PARQUET)], str(tmp_path / "local.arrow"), CONFIG, sources, RUN)
    local = read_arrow(tmp_path / "local.arrow")
    ours = pa.concat_tables(ray.get(rows.to_arrow_refs()))
    assert_same_rows(ours, local)
    assert read_meta(ours.schema) == read_meta(local.schema)
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(e["id"], e["stage"]) for e in errors] == [("junk#0", "decode")]
    rows.write_parquet(str(tmp_path / "written"))  # Ray's own writer keeps the pixelprune metadata
    written = [pq.read_schema(p) for p in (tmp_path / "written").glob("*.parquet")]
    assert written and all(read_meta(schema) == read_meta(local.schema) for schema in written)


def test_compress_dataset_without_an_errors_path_logs_each_failure(caplog):
    cells = pa.array([{"bytes": b"", "path": None}, {"bytes": b"junk", "path": None}],
                     pq.read_schema(SAMPLES_PARQUET).field("image").type)
    ds = ray.data.from_arrow(pa.table({"image": cells, "id": ["empty", "junk"]}))
    with caplog.at_level(logging.WARNING, logger="pixelprune"):
        rows = compress_dataset(ds, CONFIG)
    assert rows.count() == 0
    assert sorted(r.getMessage().split(":")[0] for r in caplog.records if r.name == "pixelprune") == ["empty", "junk"]


def test_split_into_shards_cuts_at_multiples_of_the_shard_size():
    pieces = [ImageFile("a.png", "/a.png"), ParquetRows("/t.parquet", "t.parquet", "image", 0, 6),
              FailedImage("b.parquet", "read", "x")]
    shards = split_into_shards(pieces, 4)
    sizes = [[(type(p).__name__, getattr(p, "start", None), getattr(p, "stop", None)) for p in shard] for shard in shards]
    assert sizes == [[("ImageFile", None, None), ("ParquetRows", 0, 3)], [("ParquetRows", 3, 6), ("FailedImage", None, None)]]


def test_shards_finishing_out_of_order_reach_the_summary_in_input_order():
    from pixelprune_cli.report.summary import ImageEntry, Summary
    from pixelprune_cli.run.ray_engine import _ShardOrder

    summary = Summary()
    order = _ShardOrder(summary, [0, 1, 2])
    entry = lambda k: ImageEntry(f"img{k}", (1, 1), (32, 32), 1, 1, None)  # noqa: E731
    for position in (3, 2):  # shard 1 (positions 2, 3) finishes first, rows reversed
        order.add(1, position, entry(position))
    order.shard_done(1)
    assert summary.written == 0  # held: shard 0 is not in yet
    order.add(0, 0, entry(0))
    order.add(0, 1, {"id": "img1", "stage": "decode", "reason": "x"})
    order.shard_done(0)
    assert [e.id for e in summary.iter_entries()] == ["img0", "img2", "img3"] and summary.failed == 1
    assert not order.finished  # nothing held once the run of finished shards is handed over
    order.add(2, 4, entry(4))
    order.shard_done(2)
    assert [e.id for e in summary.iter_entries()] == ["img0", "img2", "img3", "img4"]


def test_no_images_is_an_input_error_and_writes_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="no images found"):
        compress_with_ray([str(tmp_path / "in")], str(tmp_path / "out"), CONFIG, progress=False)
    assert not (tmp_path / "out").exists()


def test_ray_overwrite_stages_the_new_folder_and_resume_redoes_a_damaged_shard(tmp_path, monkeypatch):
    from pixelprune_cli.outputs import shards

    out = tmp_path / "out"
    api.compress([str(SAMPLES / "chart.png")], f"{out}/", CONFIG, run=RUN)  # an old local output, one arrow shard
    (out / "part-time notes.txt").write_text("mine")

    def visible() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}

    old, seen_meanwhile = visible(), []
    real = shards.ShardedSink.record_shard

    def record_shard(self, *args, **kwargs):  # as each Ray shard lands: what would a reader of out/ see?
        seen_meanwhile.append(visible())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(shards.ShardedSink, "record_shard", record_shard)
    compress_with_ray([str(SAMPLES_PARQUET)], str(out), CONFIG, shard_size=4, overwrite=True, progress=False)
    assert len(seen_meanwhile) == 3 and all(files == old for files in seen_meanwhile)
    assert (out / "part-time notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"part-0000{k}.{ext}" for k in range(3) for ext in ("parquet", "errors.jsonl")]
        + ["errors.jsonl", "manifest.json", "part-time notes.txt"])
    whole = read_shards(out)

    data = bytearray((out / "part-00001.parquet").read_bytes())
    data[len(data) // 2] ^= 0x01  # a bit flip in a committed shard
    (out / "part-00001.parquet").write_bytes(bytes(data))
    summary = compress_with_ray([str(SAMPLES_PARQUET)], str(out), CONFIG, shard_size=4, resume=True, progress=False)
    assert summary.resumed.damaged == ("part-00001.parquet",)
    assert [e.id for e in summary.iter_entries()] == [f"samples.parquet#{i}" for i in range(4, 8)]
    assert read_shards(out).equals(whole)
