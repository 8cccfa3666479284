"""Path cells of image tables (`{"bytes": null, "path": P}`): read beside the table by one rule, a refused or
unreachable cell fails its row only, and a table never makes pixelprune read a local file or contact a server
the user did not allow."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pyarrow as pa
import pytest

from pixelprune_cli.inputs.path_cells import CellTarget, Refusal, resolve

import badfiles as bad
from conftest import cli, manifest, read_arrow, shard_rows

# ----------------------------------------------------------------- the rule, alone


@pytest.mark.parametrize("folder, cell, allowed, expected", [
    ("/data/t", "img/a.png", (), CellTarget("/data/t/img/a.png")),
    ("/data/t", "c://a.png", ("c",), CellTarget("/data/t/c://a.png")),  # storage reads no one-letter scheme as a URL
    ("/data/t", "/srv/a.png", (), CellTarget("/srv/a.png")),
    ("/data/t", "file:///srv/a%20b.png", (), CellTarget("/srv/a b.png")),
    ("/data/t", "file://localhost/srv/a.png", (), CellTarget("/srv/a.png")),
    ("s3://b/t", "img/a.png", (), CellTarget("s3://b/t/img/a.png")),
    ("s3://K:S@b/t", "s3://b/img/a.png", (), CellTarget("s3://K:S@b/img/a.png")),  # the table's credentials
    ("gs://b/t", "gcs://b/a.png", (), CellTarget("gs://b/a.png")),
    ("s3://b/t", "s3://c/a.png", ("s3",), CellTarget("s3://c/a.png", elsewhere=True)),
    ("s3://b/t", "/srv/a.png", ("file",), CellTarget("/srv/a.png", elsewhere=True)),
    ("/data/t", "http://127.0.0.1:9/a.png", ("http",), CellTarget("http://127.0.0.1:9/a.png", elsewhere=True)),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_path_cells_that_the_rule_reads(folder, cell, allowed, expected):
    assert resolve(folder, cell, allowed) == expected


@pytest.mark.parametrize("folder, cell, allowed, words", [
    ("s3://b/t", "/srv/a.png", ("s3",), ["local file", "--allow-path-schemes file"]),
    ("s3://b/t", "file:///srv/a.png", (), ["local file", "--allow-path-schemes file"]),
    ("s3://b/t", "s3://c/a.png", ("gs",), ["another store", "--allow-path-schemes s3"]),
    ("s3://b/t", "s3://X:Y@b/a.png", (), ["another store", "--allow-path-schemes s3"]),  # other credentials
    ("/data/t", "s3://b/a.png", (), ["local disk", "--allow-path-schemes s3"]),
    ("/data/t", "http://169.254.169.254/latest", (), ["local disk", "--allow-path-schemes http"]),
    ("/data/t", "file://other/srv/a.png", ("file",), ["host 'other'"]),
    ("/data/t", "../a.png", ("file",), ["'..' segment"]),
    ("/data/t", "/srv/../etc/a.png", (), ["'..' segment"]),
    ("/data/t", "file:///srv/%2E%2E/a.png", (), ["'..' segment"]),
    ("s3://b/t", "s3://b/x/../y.png", ("s3",), ["'..' segment"]),
    ("/data/t", "http://h/x/%2e%2e/y.png", ("http",), ["'..' segment"]),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_path_cells_that_the_rule_refuses_say_why_and_what_allows_them(folder, cell, allowed, words):
    refused = resolve(folder, cell, allowed)
    assert isinstance(refused, Refusal)
    for word in words:
        assert word in refused.reason


def test_a_refusal_never_shows_a_secret_the_cell_holds():
    refused = resolve("/data/t", "s3://KEY:s3cr3t@b/a.png")
    assert isinstance(refused, Refusal) and "s3cr3t" not in refused.reason and "KEY:***@b" in refused.reason


# ----------------------------------------------------------------- local tables, through the CLI


def cell(path: str) -> dict:
    return {"bytes": None, "path": path}


def image_cells(count: int) -> list[dict]:
    return [{"bytes": bad.png(48, 48, seed=k), "path": None} for k in range(count)]


def errors_of(log: Path) -> dict[str, str]:
    return {e["id"]: e["reason"] for e in map(json.loads, log.read_text().splitlines())}


def test_file_urls_and_relative_cells_are_read_beside_a_local_table_and_dot_dot_is_refused(tmp_path):
    table_dir, outside = tmp_path / "t", tmp_path / "outside.png"
    (table_dir / "img").mkdir(parents=True)
    (table_dir / "img" / "a b.png").write_bytes(bad.png(48, 48, seed=1))
    outside.write_bytes(bad.png(48, 48, seed=2))
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(bad.png(48, 48, seed=3))
    cells = [cell("img/a b.png"), cell("file://" + quote(str(elsewhere))), cell("file://localhost" + str(elsewhere)),
             cell(str(elsewhere)), cell("../outside.png"), cell("img/../../outside.png"), cell("file://host" + str(elsewhere))]
    bad.write_parquet(table_dir / "t.parquet", bad.hf_image_table(cells))
    out = tmp_path / "out.arrow"
    code, _, stderr = cli("compress", table_dir / "t.parquet", "-o", out, "--no-progress")
    assert code == 1, stderr
    assert read_arrow(out).column("id").to_pylist() == [f"t.parquet#{k}" for k in range(4)]
    errors = errors_of(tmp_path / "out.arrow.errors.jsonl")
    assert sorted(errors) == ["t.parquet#4", "t.parquet#5", "t.parquet#6"]
    assert "'..' segment" in errors["t.parquet#4"] and "'..' segment" in errors["t.parquet#5"]
    assert "host 'host'" in errors["t.parquet#6"]

    # each path cell gave the row of the file it names, as that file alone gives it
    alone = tmp_path / "alone.arrow"
    assert cli("compress", table_dir / "img" / "a b.png", elsewhere, "-o", alone, "--no-progress")[0] == 0
    got, want = read_arrow(out), read_arrow(alone)
    for row, source in [(0, 0), (1, 1), (2, 1), (3, 1)]:
        assert got.column("pixels")[row] == want.column("pixels")[source]


def test_show_draws_a_row_whose_path_cell_the_rule_reads_and_refuses_one_it_does_not(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(bad.png(64, 64, seed=4))
    bad.write_parquet(tmp_path / "t.parquet", bad.hf_image_table([cell("img/a.png"), cell("http://127.0.0.1:9/a.png")]))
    code, _, stderr = cli("show", tmp_path / "t.parquet", "--row", 0, "-o", tmp_path / "row0.png")
    assert code == 0 and (tmp_path / "row0.png").exists(), stderr
    code, _, stderr = cli("show", tmp_path / "t.parquet", "--row", 1, "-o", tmp_path / "row1.png")
    assert code == 2 and "path-cell rule" in stderr and "--allow-path-schemes http" in stderr
    assert "\n" not in stderr.strip()
    assert not (tmp_path / "row1.png").exists()


class _Counting(BaseHTTPRequestHandler):
    """Serves one PNG at any path, and counts the requests that reached it."""

    requests: ClassVar[list[str]] = []
    body = b""

    def do_GET(self):
        self._answer(with_body=True)

    def do_HEAD(self):
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    """An HTTP server on 127.0.0.1 that counts every request; stopped after the test."""
    handler = type("Handler", (_Counting,), {"requests": [], "body": bad.png(48, 48, seed=5)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_http_cell_reaches_no_server_unless_the_user_allows_http(tmp_path, loopback_server):
    base, requests = loopback_server
    bad.write_parquet(tmp_path / "t.parquet", bad.hf_image_table([*image_cells(1), cell(f"{base}/x.png")]))
    out = tmp_path / "out.arrow"
    code, _, stderr = cli("compress", tmp_path / "t.parquet", "-o", out, "--no-progress")
    assert code == 1, stderr
    assert requests == []  # refused before any request
    reason = errors_of(tmp_path / "out.arrow.errors.jsonl")["t.parquet#1"]
    assert "path-cell rule" in reason and "--allow-path-schemes http" in reason
    assert read_arrow(out).column("id").to_pylist() == ["t.parquet#0"]

    allowed = tmp_path / "allowed.arrow"
    code, _, stderr = cli("compress", tmp_path / "t.parquet", "-o", allowed, "--no-progress", "--allow-path-schemes", "http")
    try:
        import aiohttp  # noqa: F401  (fsspec's HTTP filesystem needs it)
    except ImportError:  # without it the allowed cell is its row's one-line failure, and still no request
        assert code == 1, stderr
        reason = errors_of(tmp_path / "allowed.arrow.errors.jsonl")["t.parquet#1"]
        assert "aiohttp" in reason and "\n" not in reason and requests == []
        return
    assert code == 0, stderr
    assert requests and all(r.endswith(" /x.png") for r in requests)
    assert read_arrow(allowed).column("id").to_pylist() == ["t.parquet#0", "t.parquet#1"]


def test_a_malformed_scheme_list_is_a_usage_error(tmp_path):
    bad.write_parquet(tmp_path / "t.parquet", bad.hf_image_table(image_cells(1)))
    code, _, stderr = cli("compress", tmp_path / "t.parquet", "-o", tmp_path / "o.arrow", "--allow-path-schemes", "s3,no pe")
    assert code == 2 and "--allow-path-schemes" in stderr and "'no pe' is not a URL scheme" in stderr
    assert not (tmp_path / "o.arrow").exists()


@pytest.fixture
def unreachable_s3(monkeypatch):
    """The S3 endpoint is a loopback port where nothing listens: every request fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "k",
                        "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2",
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("allow, reason", [((), "--allow-path-schemes s3"),
                                           (("--allow-path-schemes", "s3"), "unreachable or failing")],
                         ids=["refused", "allowed-but-unreachable"])
def test_a_row_naming_an_unreachable_store_fails_alone_and_resume_finishes_the_table(tmp_path, unreachable_s3,
                                                                                       allow, reason):
    cells = image_cells(6)
    cells[3] = cell("s3://nobucket/x.png")
    bad.write_parquet(tmp_path / "t.parquet", bad.hf_image_table(cells))
    out = tmp_path / "out"
    options = ["--shard-size", 2, "--workers", 1, "--no-progress", *allow]
    code, _, stderr = cli("compress", tmp_path / "t.parquet", "-o", f"{out}/", *options, "--fail-fast")
    assert code == 1 and "t.parquet#3" in stderr and "--fail-fast" in stderr, stderr  # the row's failure, no outage
    assert [s["index"] for s in manifest(out)["shards"]] == [0]

    code, stdout, stderr = cli("compress", tmp_path / "t.parquet", "-o", f"{out}/", *options, "--resume", "--json")
    assert code == 1, stderr  # one row failed; the run went on past it
    assert json.loads(stdout)["images"] == 4  # shard 0 was kept, not redone
    assert shard_rows(out).column("id").to_pylist() == [f"t.parquet#{k}" for k in (0, 1, 2, 4, 5)]
    done = manifest(out)
    assert done["complete"] is True and (done["images"], done["written"], done["failed"]) == (6, 5, 1)
    failures = [json.loads(line) for p in sorted(out.glob("*.errors.jsonl")) for line in p.read_text().splitlines()]
    assert [f["id"] for f in failures] == ["t.parquet#3"] and reason in failures[0]["reason"]


def test_only_a_store_that_cells_alone_name_failing_is_the_rows_failure(unreachable_s3):
    """The table's own store failing is an outage (the run stops, resumable); another one is this row's failure."""
    from pixelprune_cli.errors import ReadFailure, StoreUnavailable
    from pixelprune_cli.inputs.parquet_source import read_path_cell

    with pytest.raises(StoreUnavailable):
        read_path_cell(CellTarget("s3://nobucket/x.png"), 1000)
    with pytest.raises(ReadFailure, match="only path cells name, is unreachable or failing"):
        read_path_cell(CellTarget("s3://nobucket/x.png", elsewhere=True), 1000)


# ----------------------------------------------------------------- a table on a store (SeaweedFS on 127.0.0.1)


def put(server, key: str, data: bytes) -> None:
    with server.filesystem().open_output_stream(key) as out:
        out.write(data)


def test_a_table_on_a_store_reads_its_own_store_only(s3, tmp_path):
    bucket, other = s3.new_bucket(), s3.new_bucket()
    local = tmp_path / "local.png"
    local.write_bytes(bad.png(48, 48, seed=7))
    put(s3, f"{bucket}/tables/img/a.png", bad.png(48, 48, seed=8))
    put(s3, f"{other}/b.png", bad.png(48, 48, seed=9))
    cells = [cell("img/a.png"), cell(f"s3://{bucket}/tables/img/a.png"), cell(str(local)),
             cell("file://" + str(local)), cell(f"s3://{other}/b.png"), cell(f"s3://{bucket}/tables/x/../img/a.png")]
    sink = pa.BufferOutputStream()
    import pyarrow.parquet as pq

    pq.write_table(bad.hf_image_table(cells), sink)
    put(s3, f"{bucket}/tables/t.parquet", sink.getvalue().to_pybytes())
    table = f"s3://{bucket}/tables/t.parquet"

    out = tmp_path / "out.arrow"
    code, _, stderr = cli("compress", table, "-o", out, "--no-progress")
    assert code == 1, stderr
    assert read_arrow(out).column("id").to_pylist() == ["t.parquet#0", "t.parquet#1"]  # relative, and its own store
    errors = errors_of(tmp_path / "out.arrow.errors.jsonl")
    assert sorted(errors) == [f"t.parquet#{k}" for k in (2, 3, 4, 5)]
    for row in (2, 3):  # the local file was not read into the output
        assert "local file" in errors[f"t.parquet#{row}"] and "--allow-path-schemes file" in errors[f"t.parquet#{row}"]
    assert "another store" in errors["t.parquet#4"] and "--allow-path-schemes s3" in errors["t.parquet#4"]
    assert "'..' segment" in errors["t.parquet#5"]

    allowed = tmp_path / "allowed.arrow"
    code, _, stderr = cli("compress", table, "-o", allowed, "--no-progress", "--allow-path-schemes", "file,s3")
    assert code == 1, stderr
    assert read_arrow(allowed).column("id").to_pylist() == [f"t.parquet#{k}" for k in range(5)]
    assert list(errors_of(tmp_path / "allowed.arrow.errors.jsonl")) == ["t.parquet#5"]  # '..': whatever is allowed
