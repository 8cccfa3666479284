"""The command line as users meet it: exit codes, what goes to stdout and stderr,
the files left behind, and the accounting rule images in = rows written + errors.

Most tests drive `pixelprune_cli.cli.cli.main` in-process with click's CliRunner;
a few run `python -m pixelprune_cli` as a real process, for the entry point,
terminals and pipes. Runs over samples/ are shared through module fixtures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

import pixelprune_cli
from pixelprune_cli.cli.cli import main
from pixelprune_cli.pictures.restore import file_name_for

from conftest import SAMPLES, SAMPLES_PARQUET, read_arrow

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
SUMMARY_KEYS = {"images", "written", "failed", "tokens", "kept", "errors", "per_image"}


# ---------------------------------------------------------------- helpers


def run(args, code: int = 0, env: dict | None = None, stdin: bytes | None = None):
    """Invoke the CLI in-process and check its exit code, showing everything on failure."""
    result = CliRunner().invoke(main, [str(a) for a in args], env=env, input=stdin)
    if result.exit_code != code:
        import traceback

        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        pytest.fail(f"exit {result.exit_code}, wanted {code}\nstdout:\n{result.stdout}\n"
                    f"stderr:\n{result.stderr}\n{trace}")
    return result


def run_module(*args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pixelprune_cli ARGS` as a real process, output captured through pipes."""
    return subprocess.run([sys.executable, "-m", "pixelprune_cli", *map(str, args)], capture_output=True,
                          env=env if env is not None else os.environ.copy(), timeout=120, **kwargs)


def sample_ids() -> list[str]:
    """The ids compressing samples/ must produce, in order: sorted names, a Parquet file's rows in its place."""
    ids = []
    for name in sorted(p.name for p in SAMPLES.iterdir()):
        if name.endswith(".parquet"):
            ids += [f"{name}#{i}" for i in range(pq.ParquetFile(SAMPLES / name).metadata.num_rows)]
        elif name.endswith((".png", ".jpg", ".jpeg")):
            ids.append(name)
    return ids


def read_errors(output: Path) -> list[dict]:
    lines = Path(f"{output}.errors.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def check_accounting(output: Path, inputs: int) -> tuple[pa.Table, list[dict]]:
    """Every input image is either a row of the output or a line of its errors file."""
    table, errors = read_arrow(output), read_errors(output)
    assert table.num_rows + len(errors) == inputs, (table.num_rows, len(errors), inputs)
    return table, errors


def check_summary(summary: dict, inputs: int) -> None:
    """The JSON summary adds up: counts, token totals and per-image entries agree."""
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["images"] == inputs
    assert summary["images"] == summary["written"] + summary["failed"]
    assert summary["failed"] == len(summary["errors"])
    assert summary["written"] == len(summary["per_image"])
    assert summary["tokens"] == sum(e["tokens"] for e in summary["per_image"])
    assert summary["kept"] == sum(e["kept"] for e in summary["per_image"])
    assert all(0 < e["kept"] <= e["tokens"] for e in summary["per_image"])


def one_line_error(stderr: str) -> str:
    """The whole stderr of a refused run: one line, our prefix, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pixelprune: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def samples_table_run(tmp_path_factory):
    """`compress samples/` with the default table, and its output file."""
    out = tmp_path_factory.mktemp("table") / "samples.arrow"
    return run(["compress", SAMPLES, "-o", out]), out


@pytest.fixture(scope="module")
def samples_json_run(tmp_path_factory):
    """`compress samples/ --json`: the parsed summary and the output file."""
    out = tmp_path_factory.mktemp("json") / "samples.arrow"
    result = run(["compress", SAMPLES, "-o", out, "--json"])
    return result, json.loads(result.stdout), out


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """One good image and one `.png` that is random bytes."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "good.png").write_bytes((SAMPLES / "chart.png").read_bytes())
    (folder / "bad.png").write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return folder


@pytest.fixture(scope="module")
def mixed_json_run(mixed_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed-out") / "mixed.arrow"
    result = run(["compress", mixed_folder, "-o", out, "--json"], code=1)
    return result, json.loads(result.stdout), out


@pytest.fixture(scope="module")
def parquet_with_kind(tmp_path_factory) -> Path:
    """samples.parquet compressed with its `kind` column carried along."""
    out = tmp_path_factory.mktemp("kind") / "kind.arrow"
    run(["compress", SAMPLES_PARQUET, "-o", out, "--keep-columns", "kind", "--table", "none"])
    check_accounting(out, len(pq.read_table(SAMPLES_PARQUET, columns=["kind"])))
    return out


# ---------------------------------------------------------------- help, version, entry point


def test_help_lists_the_three_commands_and_exit_codes():
    result = run(["--help"])
    for command in ("compress", "stats", "restore"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_version_is_the_package_version():
    from importlib.metadata import version

    result = run(["--version"])
    assert result.stdout.strip() == f"pixelprune, version {pixelprune_cli.__version__}"
    assert pixelprune_cli.__version__ == version("pixelprune")


def test_module_entry_point_answers_help_and_version_with_exit_0():
    helped = run_module("--help")
    assert helped.returncode == 0, helped.stderr
    assert b"compress" in helped.stdout and helped.stderr == b""
    versioned = run_module("--version")
    assert versioned.returncode == 0, versioned.stderr
    assert versioned.stdout.decode().strip().endswith(pixelprune_cli.__version__)


def test_warmup_compiles_every_kernel_a_run_then_needs(tmp_path):
    """After `warmup`, compress (both token sizes, tau>0), stats, restore and show compile nothing new."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    done = run_module("warmup", env=env)
    assert done.returncode == 0, done.stderr
    compiled = lambda: sorted(p.name for p in (tmp_path / "numba-cache").rglob("*.nbc"))  # noqa: E731
    after_warmup = compiled()
    assert after_warmup  # the cache is where NUMBA_CACHE_DIR says
    out = tmp_path / "out.arrow"
    for args in (["compress", SAMPLES, "-o", out, "--table", "none"],
                 ["compress", SAMPLES, "-o", out, "--overwrite", "--table", "none", "--preset", "qwen2-vl",
                  "--tau", "0.05", "--metric", "rmse", "--method", "serpentine"],
                 ["stats", SAMPLES / "chart.png", "--budget", "200", "--metric", "mae"],
                 ["restore", out, "-o", tmp_path / "restored"],
                 ["show", SAMPLES / "chart.png", "-o", tmp_path / "chart.png", "--side-by-side", "--tau", "0.05"]):
        done = run_module(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert compiled() == after_warmup, f"{args[0]} compiled new kernels"


def test_module_entry_point_exits_2_on_usage_errors_without_traceback(tmp_path):
    no_output = run_module("compress", SAMPLES / "chart.png")
    assert no_output.returncode == 2
    assert b"Missing option" in no_output.stderr and b"Traceback" not in no_output.stderr
    missing = run_module("compress", tmp_path / "nowhere", "-o", tmp_path / "x.arrow")
    assert missing.returncode == 2 and missing.stdout == b""
    assert "nowhere" in one_line_error(missing.stderr.decode())
    assert not (tmp_path / "x.arrow").exists()


# ---------------------------------------------------------------- compress: tables and JSON


def test_compress_table_lists_every_sample_id_and_the_totals(samples_table_run):
    result, out = samples_table_run
    ids = sample_ids()
    table, errors = check_accounting(out, len(ids))
    assert errors == [] and table.column("id").to_pylist() == ids
    for image_id in ids:
        assert image_id in result.stdout
    tokens, kept = pc.sum(table["tokens"]).as_py(), pc.sum(table["kept"]).as_py()
    totals = next(line for line in result.stdout.splitlines() if line.startswith("total "))
    assert f"{tokens:,}" in totals and f"{kept:,}" in totals
    assert f"\n{len(ids)} images in " in result.stdout
    assert "skipped 1 file that is not an image: make_samples.py" in result.stdout
    assert result.stderr == f"wrote {len(ids)} rows ({out.stat().st_size / 1e6:.1f} MB) to {out}\n"


def test_compress_json_is_the_only_stdout_and_adds_up(samples_json_run):
    result, summary, out = samples_json_run
    ids = sample_ids()
    check_summary(summary, len(ids))
    assert summary["failed"] == 0 and summary["errors"] == []
    table, _ = check_accounting(out, len(ids))
    assert [e["id"] for e in summary["per_image"]] == table.column("id").to_pylist()
    assert [e["tokens"] for e in summary["per_image"]] == table.column("tokens").to_pylist()
    assert [e["kept"] for e in summary["per_image"]] == table.column("kept").to_pylist()
    assert summary["output"] == str(out)
    assert result.stderr == ""


@pytest.mark.parametrize("mode", ["none", "summary", "all"])
def test_table_option_chooses_rows_shown(mode, samples_json_run, tmp_path):
    _, summary, _ = samples_json_run
    out = tmp_path / "t.arrow"
    result = run(["compress", SAMPLES, "-o", out, "--table", mode])
    ids = sample_ids()
    check_accounting(out, len(ids))
    shown = [i for i in ids if re.search(rf"^{re.escape(i)} ", result.stdout, re.M)]
    assert re.search(r"^total +14,872 +8,152 +45\.2%", result.stdout, re.M)  # totals stay in every mode
    assert f"{len(ids)} images in " in result.stdout and "skipped 1 file" in result.stdout
    if mode == "none":
        assert shown == []
        return
    if mode == "all":
        assert shown == ids
    else:  # the 5 images that saved least and the 5 that saved most
        assert len(shown) == 10
        by_saved = sorted(summary["per_image"], key=lambda e: 1 - e["kept"] / e["tokens"])
        assert {by_saved[0]["id"], by_saved[-1]["id"]} <= set(shown)
        assert "the 5 that saved least, then the 5 that saved most" in result.stdout


def test_stdout_output_is_an_arrow_stream_and_json_goes_to_stderr():
    files = [SAMPLES / "chart.png", SAMPLES / "form.png"]
    result = run(["compress", *files, "-o", "-", "--json"])
    stream = pa.ipc.open_stream(result.stdout_bytes).read_all()
    assert stream.column("id").to_pylist() == [str(f) for f in files]
    assert b'"images"' not in result.stdout_bytes
    summary = json.loads(result.stderr)
    check_summary(summary, len(files))
    assert summary["written"] == stream.num_rows
    assert summary["tokens"] == pc.sum(stream["tokens"]).as_py()


def test_stdout_output_sends_the_table_to_stderr():
    result = run(["compress", SAMPLES / "chart.png", "-o", "-"])
    assert pa.ipc.open_stream(result.stdout_bytes).read_all().num_rows == 1
    assert b"total" not in result.stdout_bytes
    assert "\ntotal " in result.stderr and "\n1 image in " in result.stderr


def test_stats_restore_and_show_read_a_stream_on_stdin(tmp_path):
    files = [SAMPLES / "chart.png", SAMPLES / "form.png"]
    stream = run(["compress", *files, "-o", "-", "--table", "none"]).stdout_bytes
    rows = pa.ipc.open_stream(stream).read_all()

    summary = json.loads(run(["stats", "-", "--json"], stdin=stream).stdout)
    assert [(e["id"], e["kept"]) for e in summary["per_image"]] == list(zip(*(rows[c].to_pylist() for c in ("id", "kept"))))

    run(["compress", *files, "-o", tmp_path / "file.arrow"])
    run(["restore", tmp_path / "file.arrow", "-o", tmp_path / "from_file"])
    run(["restore", "-", "-o", tmp_path / "from_stdin"], stdin=stream)
    names = sorted(p.name for p in (tmp_path / "from_file").iterdir())
    assert names and sorted(p.name for p in (tmp_path / "from_stdin").iterdir()) == names
    for name in names:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "from_file" / name)),
                              np.asarray(Image.open(tmp_path / "from_stdin" / name)))

    run(["show", "-", "--id", str(files[1]), "-o", tmp_path / "form.png"], stdin=stream)
    assert Image.open(tmp_path / "form.png").size[0] >= rows["width"][1].as_py()


@pytest.mark.parametrize("data", [b"", b"not an arrow stream"], ids=["empty", "junk"])
def test_stdin_that_is_not_an_arrow_stream_is_a_one_line_usage_error(data):
    result = run(["stats", "-"], code=2, stdin=data)
    assert "standard input: not an Arrow IPC stream" in one_line_error(result.stderr)


def test_compress_pipes_into_stats_between_real_processes():
    command = (f"{sys.executable} -m pixelprune_cli compress {SAMPLES / 'chart.png'} {SAMPLES / 'slide.png'} -o - "
               f"--table none | {sys.executable} -m pixelprune_cli stats - --json")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"] == 2


# ---------------------------------------------------------------- refusals (exit 2)


def test_existing_output_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "taken.arrow"
    out.write_bytes(b"someone else's file")
    past = time.time() - 3600
    os.utime(out, (past, past))
    result = run(["compress", SAMPLES / "chart.png", "-o", out], code=2)
    assert "--overwrite" in one_line_error(result.stderr)
    assert out.read_bytes() == b"someone else's file" and out.stat().st_mtime == past
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.arrow"]  # no temp or errors file

    run(["compress", SAMPLES / "chart.png", "-o", out, "--overwrite", "--table", "none"])
    check_accounting(out, 1)


@pytest.mark.parametrize("args", [["stats", SAMPLES_PARQUET, "--group-by", "nope"],
                                  ["compress", SAMPLES_PARQUET, "-o", "OUT", "--keep-columns", "name,nope"]],
                         ids=["group-by", "keep-columns"])
def test_a_missing_parquet_column_is_named_with_the_columns_there_are(args, tmp_path):
    out = tmp_path / "out.arrow"
    result = run([out if a == "OUT" else a for a in args], code=2)
    message = one_line_error(result.stderr)
    assert "no column 'nope'" in message and "columns: image, name, kind" in message
    assert not out.exists()


def test_missing_input_is_a_one_line_usage_error(tmp_path):
    out = tmp_path / "x.arrow"
    result = run(["compress", tmp_path / "absent", "-o", out], code=2)
    assert "absent" in one_line_error(result.stderr)
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_empty_folder_is_a_usage_error_and_leaves_no_output(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.arrow"
    result = run(["compress", empty, "-o", out], code=2)
    assert "no images" in one_line_error(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("bad", [["--tau", "-1"], ["--preset", "nope"]], ids=["negative-tau", "unknown-preset"])
def test_bad_option_values_are_usage_errors(bad, tmp_path):
    out = tmp_path / "x.arrow"
    result = run(["compress", SAMPLES / "chart.png", "-o", out, *bad], code=2)
    assert "Invalid value" in result.stderr and bad[0] in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


# ---------------------------------------------------------------- a bad image among good ones (exit 1)


def test_corrupt_image_fails_alone_and_is_reported_everywhere(mixed_json_run):
    _, summary, out = mixed_json_run
    check_summary(summary, 2)
    table, errors = check_accounting(out, 2)
    assert table.column("id").to_pylist() == ["good.png"]
    assert len(errors) == 1 and errors[0]["id"] == "bad.png"
    assert errors[0]["stage"] in ("read", "decode") and errors[0]["reason"]
    assert set(errors[0]) >= {"id", "stage", "reason"}
    assert summary["errors"] == errors and summary["written"] == 1 and summary["failed"] == 1


def test_corrupt_image_is_shown_in_the_table_with_exit_1(mixed_folder, tmp_path):
    out = tmp_path / "mixed.arrow"
    result = run(["compress", mixed_folder, "-o", out], code=1)
    check_accounting(out, 2)
    assert "1 failed" in result.stdout and "bad.png" in result.stdout
    assert "\n2 images in " in result.stdout


def test_stats_of_a_folder_with_a_corrupt_image_counts_it_and_exits_1(mixed_folder):
    result = run(["stats", mixed_folder, "--json"], code=1)
    check_summary(json.loads(result.stdout), 2)


# ---------------------------------------------------------------- colour and terminals


def _plain_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE")}
    env["TERM"] = "xterm-256color"  # a colour-capable terminal type must not matter on a pipe
    return env


def test_piped_output_has_no_escape_codes(mixed_folder, tmp_path):
    out = tmp_path / "piped.arrow"
    done = run_module("compress", mixed_folder, "-o", out, env=_plain_env())
    assert done.returncode == 1, done.stderr
    assert b"bad.png" in done.stdout  # the red 'failed' table was printed, uncoloured
    assert not ANSI.search(done.stdout) and not ANSI.search(done.stderr)
    check_accounting(out, 2)


def test_no_color_runner_output_has_no_escape_codes(mixed_folder, tmp_path):
    out = tmp_path / "nc.arrow"
    result = run(["compress", mixed_folder, "-o", out], code=1, env={"NO_COLOR": "1"})
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
    check_accounting(out, 2)


def _run_in_terminal(args, env: dict) -> tuple[int, bytes]:
    """Run `python -m pixelprune_cli ARGS` with stdout and stderr on a pseudo-terminal."""
    pytest.importorskip("pty")
    import terminal

    try:
        code, output, _ = terminal.run_in_terminal(args, dict(env, COLUMNS="120", LINES="40"), columns=120)
    except OSError as exc:
        pytest.skip(f"no pseudo-terminal here: {exc}")
    return code, output


COLOUR_SGR = re.compile(rb"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def test_no_color_on_a_terminal_prints_no_colour(mixed_folder, tmp_path):
    code, output = _run_in_terminal(["compress", mixed_folder, "-o", tmp_path / "tty.arrow", "--no-progress"],
                                    dict(_plain_env(), NO_COLOR="1"))
    assert code == 1
    assert b"bad.png" in output
    assert not COLOUR_SGR.search(output), sorted(set(ANSI.findall(output)))
    check_accounting(tmp_path / "tty.arrow", 2)


def test_no_color_on_a_terminal_shows_no_progress_animation(tmp_path):
    code, output = _run_in_terminal(["compress", SAMPLES / "chart.png", "-o", tmp_path / "p.arrow"],
                                    dict(_plain_env(), NO_COLOR="1"))
    assert code == 0
    assert b"\x1b[?25l" not in output and b"\x1b[2K" not in output


# ---------------------------------------------------------------- stats


def test_stats_of_parquet_groups_by_kind(tmp_path):
    kinds = pq.read_table(SAMPLES_PARQUET, columns=["kind"]).column("kind").to_pylist()
    result = run(["stats", SAMPLES_PARQUET, "--group-by", "kind", "--json"])
    summary = json.loads(result.stdout)
    check_summary(summary, len(kinds))
    groups = {g["value"]: g for g in summary["groups"]}
    assert set(groups) == set(kinds)
    assert {k: g["images"] for k, g in groups.items()} == {k: kinds.count(k) for k in set(kinds)}
    assert sum(g["tokens"] for g in groups.values()) == summary["tokens"]
    assert sum(g["kept"] for g in groups.values()) == summary["kept"]
    table = run(["stats", SAMPLES_PARQUET, "--group-by", "kind"])
    assert "by kind" in table.stdout and all(k in table.stdout for k in set(kinds))
    assert list(tmp_path.iterdir()) == []  # stats writes nothing


def test_stats_sample_is_a_reproducible_subset_with_the_full_run_values():
    full = {e["id"]: e for e in json.loads(run(["stats", SAMPLES, "--json"]).stdout)["per_image"]}
    first = json.loads(run(["stats", SAMPLES, "--sample", 5, "--json"]).stdout)
    again = json.loads(run(["stats", SAMPLES, "--sample", 5, "--json"]).stdout)
    ids = [e["id"] for e in first["per_image"]]
    assert {k: v for k, v in first["sample"].items() if k != "estimate"} == {"images": 5, "of": len(full), "seed": 0}
    assert len(set(ids)) == 5 and set(ids) <= set(full)
    assert ids == sorted(ids, key=list(full).index)  # input order
    assert [e["id"] for e in again["per_image"]] == ids
    assert (first["tokens"], first["kept"]) == (sum(full[i]["tokens"] for i in ids), sum(full[i]["kept"] for i in ids))
    everything = json.loads(run(["stats", SAMPLES, "--sample", 500, "--json"]).stdout)
    assert "sample" not in everything and everything["images"] == len(full)


def test_stats_of_compressed_output_matches_stats_of_its_source(parquet_with_kind):
    measured = json.loads(run(["stats", SAMPLES_PARQUET, "--group-by", "kind", "--json"]).stdout)
    read_back = json.loads(run(["stats", parquet_with_kind, "--group-by", "kind", "--json"]).stdout)
    check_summary(read_back, measured["images"])
    assert read_back["groups"], "no groups in --json"

    def key(groups):
        return {g["value"]: (g["images"], g["tokens"], g["kept"]) for g in groups}

    assert key(read_back["groups"]) == key(measured["groups"])
    assert (read_back["tokens"], read_back["kept"]) == (measured["tokens"], measured["kept"])


def test_stats_of_compressed_output_reads_rows_without_coding(samples_json_run):
    _, summary, out = samples_json_run
    result = run(["stats", out, "--json"])
    read_back = json.loads(result.stdout)
    check_summary(read_back, summary["images"])
    assert [e["id"] for e in read_back["per_image"]] == [e["id"] for e in summary["per_image"]]
    assert read_back["config"] == summary["config"]


# ---------------------------------------------------------------- restore


def test_restore_writes_one_png_per_row_at_the_row_size(samples_json_run, tmp_path):
    _, _, out = samples_json_run
    table = read_arrow(out)
    target = tmp_path / "restored"
    result = run(["restore", out, "-o", target, "--json"])
    assert json.loads(result.stdout)["written"] == table.num_rows
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(file_name_for(i) for i in table.column("id").to_pylist())
    for image_id, width, height in zip(*(table.column(c).to_pylist() for c in ("id", "width", "height"))):
        with Image.open(target / file_name_for(image_id)) as image:
            assert image.size == (width, height) and image.mode == "RGB"
    again = run(["restore", out, "-o", target], code=2)
    assert "--overwrite" in one_line_error(again.stderr)


# ---------------------------------------------------------------- preset overrides


def test_patch_and_merge_size_overrides_reach_the_output(tmp_path):
    out = tmp_path / "p14.arrow"
    result = run(["compress", SAMPLES / "chart.png", "-o", out, "--patch-size", "14", "--merge-size", "2", "--json"])
    check_summary(json.loads(result.stdout), 1)
    table, _ = check_accounting(out, 1)
    row = table.slice(0, 1).to_pylist()[0]
    assert row["width"] % 28 == 0 and row["height"] % 28 == 0
    assert row["grid_thw"] == [1, row["height"] // 14, row["width"] // 14]
    assert row["tokens"] == (row["height"] // 28) * (row["width"] // 28)
    assert table.schema.field("pixels").type.value_type.list_size == 4 * 3 * 14 * 14
    meta = json.loads(table.schema.metadata[b"pixelprune"])
    assert (meta["patch_size"], meta["merge_size"]) == (14, 2)


def test_stats_table_gives_the_kept_fraction_distribution():
    """The table's distribution line shows the same mean/median/p10/p90 as --json."""
    table = run(["stats", SAMPLES_PARQUET, "--table", "summary"]).stdout
    stats = json.loads(run(["stats", SAMPLES_PARQUET, "--json"]).stdout)["kept_fraction"]
    expected = ", ".join(f"{k} {100 * stats[k]:.1f}%" for k in ("mean", "median", "p10", "p90"))
    assert f"kept fraction per image: {expected}" in table
