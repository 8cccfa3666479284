"""What a user reads when something is off: closed standard streams, odd terminals, ambiguous inputs.

Each test starts from a case where pixelprune used to raise a traceback, say
something misleading or decide silently, and checks the one line (or the
choice) a user now gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image

from pixelprune_cli import api, prune_image
from pixelprune_cli.cli.cli import main
from pixelprune_cli.coding.pipeline import CodingConfig, process
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.errors import ConfigError, InputError, ReadFailure
from pixelprune_cli.inputs.input_files import read_file
from pixelprune_cli.inputs.pieces import SourceOptions
from pixelprune_cli.inputs.sources import plan, read_piece
from pixelprune_cli.pictures import contact_sheet
from pixelprune_cli.records import FailedImage

from conftest import SAMPLES, SAMPLES_PARQUET, cli, one_line_error, read_arrow

CHART = SAMPLES / "chart.png"


def run_with(redirect: str, args: list, cwd: Path, stdin=subprocess.DEVNULL) -> tuple[int, str]:
    """(exit code, stderr) of `python -m pixelprune_cli ARGS` started by a shell with `redirect` (`>&-`, `<&-`)."""
    script = f'exec "$@" {redirect}'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "pixelprune_cli", *map(str, args)],
                          cwd=cwd, stdin=stdin, capture_output=True, timeout=120)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    return proc.returncode, stderr


# ---------------------------------------------------------------- closed standard streams (cron, systemd, nohup)

@pytest.mark.parametrize("redirect,report", [(">&-", []), (">&-", ["--json"]), ("2>&-", []),
                                             ("<&- >&- 2>&-", ["--json"])])
def test_a_closed_stream_loses_no_output_and_raises_nothing(tmp_path, redirect, report):
    code, stderr = run_with(redirect, ["compress", CHART, "-o", tmp_path / "out.arrow", *report], tmp_path)
    assert code == 0, stderr
    assert read_arrow(tmp_path / "out.arrow").column("id").to_pylist() == ["chart.png"]
    assert {p.name for p in tmp_path.iterdir()} == {"out.arrow", "out.arrow.errors.jsonl"}  # nothing written by fd


def test_a_stream_to_a_closed_stdout_is_refused_before_anything_is_written(tmp_path):
    code, stderr = run_with(">&-", ["compress", CHART, "-o", "-"], tmp_path)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "standard output" in stderr and "closed" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["stats", "-"], ["restore", "-", "-o", "restored"], ["show", "-", "-o", "x.png"]])
def test_reading_a_closed_stdin_is_a_one_line_usage_error(tmp_path, command):
    code, stderr = run_with("<&-", command, tmp_path)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "standard input is closed" in stderr, stderr


# ---------------------------------------------------------------- tracebacks where the docs promise one line

def run_env(args: list, cwd: Path, env: dict, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """`python -m pixelprune_cli ARGS` with `env` added to the environment; no traceback on stderr."""
    proc = subprocess.run([sys.executable, "-m", "pixelprune_cli", *map(str, args)], cwd=cwd, env={**os.environ, **env},
                          stdout=stdout, stderr=subprocess.PIPE, timeout=120)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def test_an_ascii_stdout_gets_escapes_for_names_it_cannot_encode_and_the_exit_code_stays_true(tmp_path):
    long_name = "страница_" + "x" * 100 + ".png"  # non-Latin, and long enough to be shortened with an ellipsis
    (tmp_path / long_name).write_bytes(CHART.read_bytes())
    proc = run_env(["compress", long_name, "-o", "out.arrow"], tmp_path, {"PYTHONIOENCODING": "ascii", "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.decode("ascii")  # nothing but ASCII was written
    row = next(line for line in table.splitlines() if line.startswith("\\u0441"))  # с, escaped
    assert "..." in row and len(row) <= 80, table
    assert read_arrow(tmp_path / "out.arrow").column("id").to_pylist() == [long_name]


@pytest.mark.parametrize("report", [[], ["--json"]])
def test_a_report_to_a_full_stdout_is_one_line_and_the_output_stays_whole(tmp_path, report):
    with open("/dev/full", "wb") as full:
        proc = run_env(["compress", CHART, "-o", "out.arrow", *report], tmp_path, {}, stdout=full)
    assert proc.returncode == 2
    message = proc.stderr.decode().strip()
    assert message.count("\n") == 0 and "standard output" in message and "No space left" in message, message
    assert "out.arrow, in full" in message
    assert read_arrow(tmp_path / "out.arrow").num_rows == 1


@pytest.mark.parametrize("bad", [False, True])
def test_messages_to_a_full_stderr_are_lost_but_the_exit_code_still_tells(tmp_path, bad):
    inputs = [CHART, *([tmp_path / "empty.png"] if bad else [])]
    (tmp_path / "empty.png").write_bytes(b"")
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "pixelprune_cli", "compress", *inputs, "-o", "out.arrow"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=full, timeout=120)
    assert proc.returncode == (1 if bad else 0)  # 1: an image failed, as the error log says; not 2, not 120
    assert read_arrow(tmp_path / "out.arrow").num_rows == 1


def test_a_column_kept_twice_is_refused_and_an_output_holding_one_is_named(tmp_path):
    code, _, stderr = cli("compress", SAMPLES_PARQUET, "-o", tmp_path / "out.arrow", "--keep-columns", "kind,kind")
    assert code == 2
    one_line_error(stderr, "--keep-columns kind,kind", "'kind' more than once")
    assert not (tmp_path / "out.arrow").exists()
    with pytest.raises(ConfigError, match=r"keep_columns=\['kind', 'kind'\]"):
        SourceOptions(keep_columns=("kind", "kind"))
    # a file as 0.2.0 wrote it: the column twice
    assert cli("compress", SAMPLES_PARQUET, "-o", tmp_path / "once.arrow", "--keep-columns", "kind")[0] == 0
    table = read_arrow(tmp_path / "once.arrow")
    twice = table.append_column("kind", table.column("kind"))
    with pa.OSFile(str(tmp_path / "twice.arrow"), "wb") as sink, pa.ipc.new_file(sink, twice.schema) as writer:
        writer.write_table(twice)
    code, _, stderr = cli("stats", tmp_path / "twice.arrow", "--group-by", "kind")
    assert code == 2
    one_line_error(stderr, "twice.arrow", "'kind' appears more than once")


def with_meta(source: Path, target: Path, **changes) -> Path:
    """A copy of an output with its `pixelprune` metadata changed."""
    table = read_arrow(source)
    meta = {**json.loads(table.schema.metadata[b"pixelprune"]), **changes}
    table = table.replace_schema_metadata({b"pixelprune": json.dumps(meta).encode()})
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return target


@pytest.fixture(scope="module")
def chart_output(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("chart") / "good.arrow"
    assert cli("compress", CHART, "-o", path)[0] == 0
    return path


@pytest.mark.parametrize("change", [{"patch_size": 0}, {"merge_size": -2}, {"min_pixels": -1}, {"patch_size": 16.5},
                                    {"max_pixels": None}, {"image_std": [0.5, 0, 0.5]}])
@pytest.mark.parametrize("command", [["restore", "-o", "restored"], ["show", "-o", "shown.png"], ["stats"]])
def test_an_output_whose_metadata_no_image_can_have_is_refused_in_one_line(tmp_path, chart_output, change, command):
    bad = with_meta(chart_output, tmp_path / "bad.arrow", **change)
    code, _, stderr = cli(command[0], bad, *[tmp_path / a if a.startswith(("r", "s")) else a for a in command[1:]])
    assert code == 2
    key = next(iter(change))
    one_line_error(stderr, "bad.arrow", "metadata is unusable", f"preset {key} must be")


def truncated_png(tmp_path: Path) -> Path:
    path = tmp_path / "cut.png"
    data = CHART.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_prune_image_of_a_lazily_opened_truncated_image_is_a_decode_error(tmp_path):
    with (Image.open(truncated_png(tmp_path)) as image,  # only the header is read here
          pytest.raises(ValueError, match=r"^image: decode failed: cannot decode PNG data \(.*truncated")):
        prune_image(image)


def test_prune_image_of_an_image_whose_load_raises_is_a_decode_error():
    class Broken(Image.Image):
        def load(self):
            raise RuntimeError("the plugin gave up")

    image = Broken()
    image._size = (64, 64)
    with pytest.raises(ValueError, match=r"^page: decode failed: .*the plugin gave up"):
        prune_image(image, image_id="page")


def test_prune_image_of_an_image_that_cannot_be_resized_is_a_value_error(monkeypatch):
    import pixelprune_cli.coding.resize

    def resize(*args, **kwargs):  # the resampling gives up (a plugin's image, a future Pillow)
        raise OSError("no resampler for this image")

    monkeypatch.setattr(pixelprune_cli.coding.resize, "resize_bicubic", resize)
    with pytest.raises(ValueError, match=r"^page: resize failed: no resampler for this image$"):
        prune_image(Image.new("RGB", (64, 64)), image_id="page")


@pytest.mark.parametrize("change,key", [({"patch_size": 0}, "patch_size"), ({"patch_size": 16.5}, "patch_size"),
                                        ({"min_pixels": None}, "min_pixels")])
def test_prune_image_refuses_preset_metadata_no_image_can_have_naming_the_value(change, key):
    meta = {**PRESETS["qwen3-vl"].to_meta(), **change}
    with pytest.raises(ValueError, match=rf"^preset {key} must be a whole number of at least 1, got"):
        prune_image(CHART, preset=meta)
    assert prune_image(CHART, preset={**meta, **PRESETS["qwen3-vl"].to_meta()})["tokens"] == 620  # the real one codes


# ---------------------------------------------------------------- messages that mislead

def test_prune_image_of_a_numpy_array_is_the_documented_value_error():
    with pytest.raises(ValueError, match=r"a PIL image, a path or the file's bytes, not ndarray .*fromarray"):
        prune_image(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize("form", ["path", "bytes", "pil"])
def test_prune_image_takes_compress_limits_and_names_them_as_parameters(form):
    image = {"path": CHART, "bytes": CHART.read_bytes(), "pil": Image.open(CHART)}[form]
    with pytest.raises(ValueError, match=r"over the limit of 100,000 \(max_image_pixels\)$") as refused:
        prune_image(image, max_image_pixels=100_000)  # chart.png is 1000x650
    assert "--" not in str(refused.value)
    if form != "pil":  # a PIL image is already read
        with pytest.raises(ValueError, match=r"over the limit of 1,000 \(max_image_bytes\)$"):
            prune_image(image, max_image_bytes=1000)
    assert prune_image(image, max_image_pixels=650_000, max_image_bytes=CHART.stat().st_size)["tokens"] == 620
    with pytest.raises(ValueError, match=r"^max_image_pixels=0 and max_image_bytes=\d+: each must be at least 1"):
        prune_image(image, max_image_pixels=0)


def test_an_existing_file_where_a_folder_output_goes_is_named_even_with_overwrite(tmp_path, chart_output):
    (tmp_path / "taken").write_bytes(b"not ours")
    code, _, stderr = cli("restore", chart_output, "-o", tmp_path / "taken", "--overwrite")
    assert code == 2
    message = one_line_error(stderr, "taken is a file", "never replaces a file with a folder")
    assert "File exists" not in message
    (tmp_path / "out.arrow").write_bytes(b"not ours either")
    code, _, stderr = cli("compress", CHART, "-o", f"{tmp_path / 'out.arrow'}/", "--overwrite")
    assert code == 2
    message = one_line_error(stderr, "out.arrow/ names a folder of shards", "or -o ")
    assert "File exists" not in message
    assert (tmp_path / "taken").read_bytes() == b"not ours" and (tmp_path / "out.arrow").read_bytes() == b"not ours either"


def test_a_resume_whose_inputs_changed_names_the_flag_on_the_command_line_and_the_parameter_in_python(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("chart.png", "form.png"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    out = f"{tmp_path / 'shards'}/"
    assert cli("compress", folder, "-o", out, "--shard-size", "1")[0] == 0
    (folder / "form.png").rename(folder / "other.png")  # the second shard's image is another now
    code, _, stderr = cli("compress", folder, "-o", out, "--shard-size", "1", "--resume")
    assert code == 2
    message = one_line_error(stderr, "the inputs changed", "pass --overwrite")
    assert "overwrite=True" not in message
    with pytest.raises(ConfigError, match="pass overwrite=True"):
        api.compress([str(folder)], out, shard_size=1, resume=True)


# ---------------------------------------------------------------- ambiguity resolved silently

@pytest.fixture(scope="module")
def two_image_columns(tmp_path_factory) -> Path:
    """A Parquet table of one row with two binary image columns: `thumb` (chart.png) and `full` (form.png)."""
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("two") / "two.parquet"
    pq.write_table(pa.table({"thumb": [CHART.read_bytes()], "full": [(SAMPLES / "form.png").read_bytes()],
                             "name": ["x"]}), path)
    return path


def test_a_table_with_two_image_columns_is_refused_until_one_is_chosen(tmp_path, two_image_columns):
    code, _, stderr = cli("compress", two_image_columns, "-o", tmp_path / "out.arrow")
    assert code == 2
    one_line_error(stderr, "two.parquet", "2 columns could hold the images (thumb, full)", "--image-column")
    assert not (tmp_path / "out.arrow").exists()
    with pytest.raises(InputError, match=r"choose one with image_column='NAME'"):
        api.stats([str(two_image_columns)])


@pytest.mark.parametrize("column,tokens", [("thumb", 620), ("full", 775)])  # chart.png, form.png
def test_the_chosen_image_column_is_coded_and_named_in_the_report_and_the_metadata(tmp_path, two_image_columns,
                                                                                  column, tokens):
    code, stdout, _ = cli("compress", two_image_columns, "-o", tmp_path / "out.arrow", "--image-column", column)
    assert code == 0
    assert f"images from Parquet column '{column}' (1 file)" in stdout
    table = read_arrow(tmp_path / "out.arrow")
    assert table.column("tokens").to_pylist() == [tokens]
    assert json.loads(table.schema.metadata[b"pixelprune"])["image_column"] == column
    code, stdout, _ = cli("stats", two_image_columns, "--image-column", column, "--json")
    assert json.loads(stdout)["image_columns"] == {column: 1}
    shards = f"{tmp_path / 'shards'}/"
    assert cli("compress", two_image_columns, "-o", shards, "--image-column", column)[0] == 0
    assert json.loads((tmp_path / "shards" / "manifest.json").read_text())["config"]["image_column"] == column


@pytest.mark.parametrize("option,value", [("--shard-size", "5"), ("--shard-format", "parquet")])
@pytest.mark.parametrize("output", ["out.arrow", "-"])
def test_shard_options_with_a_single_file_output_are_refused(tmp_path, option, value, output):
    target = output if output == "-" else tmp_path / output
    code, stdout, stderr = cli("compress", CHART, "-o", target, option, value)
    assert code == 2 and stdout == ""
    one_line_error(stderr, f"{option} {value}", "folder of shards")
    assert list(tmp_path.iterdir()) == []


def test_a_shard_folder_from_before_the_image_column_was_recorded_still_resumes(tmp_path):
    shards = tmp_path / "shards"
    assert cli("compress", SAMPLES_PARQUET, "-o", f"{shards}/", "--shard-size", "4", "--no-progress")[0] == 0
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["config"].pop("image_column") == "image"
    manifest["complete"] = False
    (shards / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, stderr = cli("compress", SAMPLES_PARQUET, "-o", f"{shards}/", "--shard-size", "4", "--resume", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["resumed_shards"] == 3


# ---------------------------------------------------------------- show writes what it was asked to

@pytest.mark.parametrize("suffix,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_show_writes_the_format_its_suffix_names(tmp_path, suffix, fmt):
    target = tmp_path / f"overlay{suffix}"
    code, _, stderr = cli("show", CHART, "-o", target)
    assert code == 0, stderr
    with Image.open(target) as picture:
        assert picture.format == fmt


@pytest.mark.parametrize("name", ["sheet.arrow", "sheet.parquet", "sheet"])
def test_show_refuses_a_suffix_that_is_no_picture_format_before_drawing(tmp_path, name):
    code, _, stderr = cli("show", CHART, "-o", tmp_path / name)
    assert code == 2
    one_line_error(stderr, name, "show writes a picture", ".png")
    assert list(tmp_path.iterdir()) == []


def test_a_contact_sheet_never_shows_a_picture_show_drew(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for name in ("chart.png", "form.png"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    code, _, stderr = cli("show", folder, "-o", folder / "sheet.png")  # a sheet inside the folder it shows
    assert code == 2
    one_line_error(stderr, "sheet.png", "inside the input folder")
    assert cli("show", folder, "-o", tmp_path / "sheet.png")[0] == 0
    (folder / "sheet.png").write_bytes((tmp_path / "sheet.png").read_bytes())  # copied in later by hand
    code, _, stderr = cli("show", folder, "-o", tmp_path / "other.jpg", "--sample", "0")  # known by its mark
    assert code == 0
    assert "left out 1 picture pixelprune show drew (sheet.png)" in stderr
    tiles = {}
    for name in ("sheet.png", "other.jpg"):
        with Image.open(tmp_path / name) as sheet:
            tiles[name] = sheet.size
    two_tiles = contact_sheet.contact_tile_size(256)
    width = 2 * two_tiles[0]
    assert tiles["sheet.png"] == (width, contact_sheet.header_height(width) + two_tiles[1])  # two images, not three
    assert tiles["other.jpg"] == tiles["sheet.png"]


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("columns", ["0", "-5", str(10**8), "abc"])
def test_an_absurd_columns_is_read_as_80(tmp_path, columns):
    image = tmp_path / ("scan_" + "x" * 120 + ".png")
    image.write_bytes(CHART.read_bytes())
    for args in (["stats", image], ["compress", image, "-o", tmp_path / "out.arrow", "--overwrite"]):
        result = CliRunner().invoke(main, list(map(str, args)), env={"COLUMNS": columns})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        row = next(line for line in lines if line.startswith("scan_"))
        assert "\u2026" in row and len(row) <= 80, result.stdout  # shortened to fit 80 columns
        assert any(line.startswith("total") for line in lines), result.stdout


def test_a_legal_246_byte_output_name_is_written_with_its_lock_temporaries_and_error_log(tmp_path):
    from pixelprune_cli.outputs.writer import errors_path
    from pixelprune_cli.storage.atomic import temp_stem

    name = "n" * 240 + ".arrow"  # 246 bytes: legal, but .NAME.pixelprune-lock would be 263
    stale = tmp_path / f".{temp_stem(name)}.partial-999999999"  # a killed run's temporary (no such pid)
    stale.write_bytes(b"left behind")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    code, _, stderr = cli("compress", CHART, bad, "-o", tmp_path / name)
    assert code == 1, stderr
    log = errors_path(str(tmp_path / name))
    assert f"see {log}" in stderr
    assert read_arrow(tmp_path / name).num_rows == 1
    assert json.loads(log.read_text())["id"].endswith("bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, log.name, "bad.png"])  # no lock, no partials
    assert all(len(os.fsencode(p.name)) <= 255 for p in tmp_path.iterdir())
    picture = "p" * 251 + ".png"
    assert cli("show", CHART, "-o", tmp_path / picture)[0] == 0
    assert (tmp_path / picture).exists()


# ---------------------------------------------------------------- a file that goes away mid-run

def two_images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(CHART.read_bytes())
    return folder


def test_a_file_deleted_after_the_folder_was_listed_is_said_to_have_disappeared(tmp_path):
    folder = two_images(tmp_path)
    pieces = plan([str(folder)])
    first = next(pieces)  # the folder is listed now
    (folder / "b.png").unlink()
    second = next(pieces)
    assert first.id == "a.png" and isinstance(second, FailedImage)
    assert second.reason.endswith("b.png disappeared after it was listed (deleted or moved while the run went on)")
    assert "symlink" not in second.reason


def test_a_file_deleted_after_it_was_planned_is_said_to_have_disappeared_when_read(tmp_path):
    folder = two_images(tmp_path)
    items = [next(read_piece(piece)) for piece in plan([str(folder)])]
    (folder / "b.png").unlink()
    result = process(items[1].id, items[1].read, CodingConfig())
    assert isinstance(result, FailedImage) and result.stage == "read"
    assert "b.png disappeared after it was listed" in result.reason and "symlink" not in result.reason
    (folder / "a.png").unlink()
    (folder / "a.png").symlink_to(folder / "gone.png")  # a symlink whose target is gone is still named as one
    assert "broken or looping symlink" in process("a.png", items[0].read, CodingConfig()).reason


def test_a_file_truncated_while_it_is_read_says_so(tmp_path, monkeypatch):
    path = two_images(tmp_path) / "a.png"
    real_fstat = os.fstat

    def fstat_before_the_cut(fd):  # the size the file had when opened, before another process cut it
        info = real_fstat(fd)
        return os.stat_result((*info[:6], info.st_size + 1000, *info[7:])) if fd > 2 else info

    monkeypatch.setattr(os, "fstat", fstat_before_the_cut)
    with pytest.raises(ReadFailure, match=r"a.png was truncated while it was read: [\d,]+ of the [\d,]+ bytes"):
        read_file(str(path))
