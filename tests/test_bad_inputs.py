"""Bad input: each bad image is one error entry, the run goes on, nothing is lost.

Every test checks the invariant: images in = rows in the output file + entries
in OUTPUT.errors.jsonl, and the --json summary says the same. Inputs come from
tests/badfiles.py and are generated into tmp folders.

What the tool said for each input is collected in SAID and printed at the end
of the module (run with `pytest -s tests/test_bad_inputs.py` to see it).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from pixelprune_cli.cli.cli import main
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.errors import STAGES
from pixelprune_cli.inputs import input_files, sources
from pixelprune_cli.outputs.readers import kept_pixels
from pixelprune_cli.pictures.restore import reconstruct

import badfiles as bad

PRESET = PRESETS["qwen3-vl"]

# Single files that must fail: name -> (stage, pattern the one-line reason must match).
FAILS = {
    "zero_bytes.png": ("decode", r"empty file"),
    "truncated.png": ("decode", r"truncated"),
    "truncated.jpg": ("decode", r"truncated"),
    "random_bytes.png": ("decode", r"not an image"),
    "text.png": ("decode", r"not an image"),
    "bomb_50000x50000.png": ("decode", r"decompression bomb|50000x50000"),
    "aspect_201.png": ("resize", r"aspect ratio 201"),
    "aspect_250_tall.png": ("resize", r"aspect ratio 250"),
}
WRITTEN = sorted(set(bad.file_cases()) - set(FAILS))

SAID: dict[str, str] = {}  # input -> what the tool said (printed as a table at the end)


def record(case: str, code: int, text: str) -> None:
    SAID[case] = f"exit {code}: {text}"


def print_said() -> None:
    """The table of every bad input and the tool's answer."""
    width = max(map(len, SAID), default=0)
    print(f"\n{'input':<{width}}  what pixelprune said")
    for case in sorted(SAID):
        print(f"{case:<{width}}  {SAID[case]}")


@pytest.fixture(scope="module", autouse=True)
def _print_table_at_end():
    yield
    print_said()


# ----------------------------------------------------------------- running

@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    summary: dict | None = None
    table: pa.Table | None = None
    logged: list = field(default_factory=list)  # OUTPUT.errors.jsonl records

    @property
    def ids(self) -> list[str]:
        return self.table.column("id").to_pylist() if self.table is not None else []

    def error(self, image_id: str) -> dict:
        matches = [e for e in self.summary["errors"] if e["id"] == image_id]
        assert len(matches) == 1, (image_id, self.summary["errors"])
        return matches[0]

    def row(self, image_id: str) -> dict:
        rows = [r for r in self.table.drop_columns(["pixels"]).to_pylist() if r["id"] == image_id]
        assert len(rows) == 1, (image_id, self.ids)
        return rows[0]

    def image(self, image_id: str) -> np.ndarray:
        """The resized image a row stands for (exact at tau 0)."""
        for batch in self.table.to_batches():
            ids = batch.column("id").to_pylist()
            if image_id in ids:
                i = ids.index(image_id)
                return reconstruct(batch.column("index_map")[i].values.to_numpy(), kept_pixels(batch, i),
                                   batch.column("width")[i].as_py(), batch.column("height")[i].as_py(), PRESET)
        raise AssertionError(f"{image_id} not in {self.ids}")


def read_output(out: Path) -> pa.Table:
    with pa.OSFile(str(out)) as source:
        return pa.ipc.open_file(source).read_all()


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def compress(inputs, out: Path, *options: str) -> Run:
    """Run `pixelprune compress ... --json` in-process and read back everything it wrote."""
    result = CliRunner().invoke(main, ["compress", *map(str, inputs), "-o", str(out), "--json", "--no-progress",
                                       *options])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("uncaught exception:\n" + "".join(traceback.format_exception(*result.exc_info)))
    run = Run(result.exit_code, result.stdout, result.stderr)
    no_traceback(run.stdout + run.stderr)
    if run.code in (0, 1):
        run.summary = json.loads(run.stdout)
        run.table = read_output(out)
        errors_file = Path(str(out) + ".errors.jsonl")
        run.logged = [json.loads(line) for line in errors_file.read_text().splitlines()]
    return run


def check_accounting(run: Run, images_in: int) -> None:
    """The invariant: images in = rows written + error entries, everywhere the run reports."""
    s = run.summary
    assert s["images"] == images_in
    assert run.table.num_rows + len(run.logged) == images_in
    assert s["written"] == run.table.num_rows
    assert s["failed"] == len(s["errors"]) == len(run.logged)
    assert s["errors"] == run.logged
    assert [e["id"] for e in s["per_image"]] == run.ids
    everyone = run.ids + [e["id"] for e in run.logged]
    assert len(set(everyone)) == len(everyone), "an image was counted twice"
    assert run.code == (1 if run.logged else 0)
    for entry in run.logged:
        assert set(entry) == {"id", "stage", "reason"}
        assert entry["stage"] in STAGES
        assert entry["reason"].strip() and "\n" not in entry["reason"] and "\r" not in entry["reason"]


def check_usage_error(run: Run, out: Path, pattern: str) -> str:
    """Exit 2, one line on stderr naming the problem, and nothing left beside the output."""
    assert run.code == 2, (run.stdout, run.stderr)
    message = run.stderr.strip()
    assert "\n" not in message and message.startswith("pixelprune: error: "), message
    assert re.search(pattern, message), message
    assert run.stdout == ""
    assert sorted(p.name for p in out.parent.iterdir()) == [], "files left beside the output"
    return message.removeprefix("pixelprune: error: ")


def check_failure(run: Run, image_id: str, stage: str, pattern: str) -> str:
    entry = run.error(image_id)
    assert entry["stage"] == stage, entry
    assert re.search(pattern, entry["reason"]), entry
    return entry["reason"]


def processor_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) after resizing, from transformers' own smart_resize (the oracle)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, PRESET.token_size, PRESET.min_pixels, PRESET.max_pixels)


def processor_rgb(data: bytes) -> np.ndarray:
    """The RGB the processor makes of a decoded image (transformers' convert_to_rgb)."""
    from transformers.image_transforms import convert_to_rgb

    return np.asarray(convert_to_rgb(Image.open(io.BytesIO(data))))


@pytest.fixture
def out(tmp_path) -> Path:
    """An output path in a folder of its own, so leftovers are easy to see."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "out.arrow"


# ----------------------------------------------------------------- single files

@pytest.mark.parametrize("name", sorted(FAILS))
def test_bad_image_file_is_one_error_entry_with_its_stage_and_reason(tmp_path, out, name):
    path = bad.write_files(tmp_path / "in", [name])[name]
    run = compress([path], out)
    check_accounting(run, 1)
    stage, pattern = FAILS[name]
    reason = check_failure(run, path.name, stage, pattern)  # one input: its name is the id
    record(name, run.code, f"{stage}: {reason}")


def test_error_ids_with_several_inputs_are_the_paths_as_given(tmp_path, out):
    folder = tmp_path / "in"
    bad.write_files(folder, ["zero_bytes.png"])
    bad.write_good(folder, 1)
    single = bad.write_files(tmp_path / "other", ["text.png"])["text.png"]
    table = bad.write_parquet(tmp_path / "t.parquet", bad.hf_image_table([None]))
    run = compress([folder, single, table], out)
    check_accounting(run, 4)
    assert run.ids == [f"{folder}/good_000.png"]
    assert [e["id"] for e in run.logged] == [f"{folder}/zero_bytes.png", str(single), f"{table}#0"]


@pytest.mark.parametrize("name", WRITTEN)
def test_odd_but_valid_image_is_written_at_the_processor_size(tmp_path, out, name):
    path = bad.write_files(tmp_path / "in", [name])[name]
    run = compress([path], out)
    check_accounting(run, 1)
    row = run.row(path.name)
    upright = ImageOps.exif_transpose(Image.open(path))
    assert (row["source_width"], row["source_height"]) == upright.size
    assert (row["height"], row["width"]) == processor_size(upright.height, upright.width)
    record(name, run.code, f"written, {upright.width}x{upright.height} -> {row['width']}x{row['height']}")


def test_unidentifiable_image_reason_is_the_same_every_run(tmp_path, out):
    """Pillow's own message holds a memory address ('<_io.BytesIO object at 0x7f...>'); ours must not."""
    path = bad.write_files(tmp_path / "in", ["random_bytes.png"])["random_bytes.png"]
    first = compress([path], out).error(path.name)["reason"]
    second = compress([path], out, "--overwrite").error(path.name)["reason"]
    assert first == second and "object at 0x" not in first


def test_png_named_txt_is_coded_when_given_explicitly_and_skipped_in_a_folder(tmp_path, out):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "picture.txt").write_bytes(bad.png(seed=4))
    bad.write_good(folder, 1)
    run = compress([folder / "picture.txt"], out)
    check_accounting(run, 1)
    assert run.ids == ["picture.txt"]
    run = compress([folder], out, "--overwrite")
    check_accounting(run, 1)
    assert run.ids == ["good_000.png"] and run.summary["skipped_files"] == 1
    record("png_named.txt", 0, "written when named on the command line; skipped (counted) inside a folder")


def test_palette_transparency_and_la_are_composited_on_white_like_the_processor(tmp_path, out):
    folder = tmp_path / "in"
    folder.mkdir()
    cases = {"p.png": bad.palette_transparent(), "la.png": bad.la_image()}
    for name, (data, _) in cases.items():
        (folder / name).write_bytes(data)
    run = compress([folder], out)
    check_accounting(run, 2)
    for name, (data, expected) in cases.items():
        got = run.image(name)
        assert np.array_equal(got, expected), name
        assert np.array_equal(got, processor_rgb(data)), name


def test_sixteen_bit_and_cmyk_pixels_equal_the_processor_rgb(tmp_path, out):
    paths = bad.write_files(tmp_path / "in", ["sixteen_bit.png", "cmyk.jpg"])
    run = compress([tmp_path / "in"], out)
    check_accounting(run, 2)
    for name, path in paths.items():
        assert np.array_equal(run.image(name), processor_rgb(path.read_bytes())), name


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp"])
def test_animation_is_coded_from_its_first_frame(tmp_path, out, name):
    folder = tmp_path / "in"
    data = bad.write_files(folder, [name])[name].read_bytes()
    (folder / "frame0.png").write_bytes(bad.frame_png(data, 0))
    (folder / "frame1.png").write_bytes(bad.frame_png(data, 1))
    run = compress([folder], out)
    check_accounting(run, 3)
    first = run.image("frame0.png")
    assert np.array_equal(run.image(name), first)
    assert run.row(name)["index_map"] == run.row("frame0.png")["index_map"]
    assert not np.array_equal(run.image("frame1.png"), first), "frames must differ for this test to mean anything"


def test_exif_rotated_jpeg_is_coded_upright_with_the_rotated_source_size(tmp_path, out):
    folder = tmp_path / "in"
    data = bad.write_files(folder, ["exif_rotated.jpg"])["exif_rotated.jpg"].read_bytes()
    assert Image.open(io.BytesIO(data)).size == (320, 256)  # stored landscape
    (folder / "upright.png").write_bytes(bad.upright_png(data))
    run = compress([folder], out)
    check_accounting(run, 2)
    row = run.row("exif_rotated.jpg")
    assert (row["source_width"], row["source_height"]) == (256, 320)
    assert (row["width"], row["height"]) == (256, 320)
    assert np.array_equal(run.image("exif_rotated.jpg"), run.image("upright.png"))


# ----------------------------------------------------------------- decompression bombs

# A small launcher reports its child's peak RSS. Measuring the CLI as a direct
# child of pytest would count pytest's own pages, shared at fork before exec
# (884 MB once Ray's tests had run in the same session).
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-m", "pixelprune_cli", *sys.argv[2:]])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, float, int, str, str]:
    """Run the CLI in a subprocess: (exit code, wall seconds, peak RSS bytes, stdout, stderr)."""
    stdout, stderr, peak = cwd / "stdout.txt", cwd / "stderr.txt", cwd / "peak_kb.txt"
    with open(stdout, "w") as o, open(stderr, "w") as e:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak), *args], stdout=o, stderr=e, cwd=cwd,
                              timeout=timeout)
        seconds = time.perf_counter() - start
    return proc.returncode, seconds, int(peak.read_text()) * 1024, stdout.read_text(), stderr.read_text()


@pytest.mark.parametrize("width,height", [(50_000, 50_000), (8193, 8192)])
def test_decompression_bomb_is_refused_without_allocating_it(tmp_path, width, height):
    bomb = tmp_path / f"bomb_{width}x{height}.png"
    bomb.write_bytes(bad.bomb_png(width, height))
    assert bomb.stat().st_size < 100_000
    code, seconds, peak, stdout, stderr = run_measured(["compress", bomb.name, "-o", "out.arrow", "--json",
                                                        "--workers", "1"], tmp_path)
    no_traceback(stdout + stderr)
    assert code == 1, stderr
    summary = json.loads(stdout)
    assert summary["images"] == 1 and summary["written"] == 0
    (entry,) = summary["errors"]
    assert entry["id"] == bomb.name and entry["stage"] == "decode"
    assert re.search(r"decompression bomb|over the limit", entry["reason"]), entry
    assert peak < 500 << 20, f"peak RSS {peak >> 20} MB"
    record(bomb.name, code, f"decode: {entry['reason']} ({seconds:.1f} s, peak RSS {peak >> 20} MB)")


def test_image_just_over_the_default_limit_names_the_max_image_pixels_option(tmp_path, out):
    path = tmp_path / "over.png"
    path.write_bytes(bad.bomb_png(8193, 8192))  # 1<<26 + 8192 pixels
    run = compress([path], out)
    check_accounting(run, 1)
    check_failure(run, path.name, "decode", r"--max-image-pixels")


def test_huge_bomb_message_names_the_max_image_pixels_option(tmp_path, out):
    path = tmp_path / "bomb.png"
    path.write_bytes(bad.bomb_png())
    run = compress([path], out)
    check_accounting(run, 1)
    check_failure(run, path.name, "decode", r"--max-image-pixels")


def test_max_image_pixels_option_sets_the_refusal_limit(tmp_path, out):
    folder = tmp_path / "in"
    folder.mkdir()
    flat = np.full((1000, 1000, 3), 90, dtype=np.uint8)
    Image.fromarray(flat).save(folder / "at_limit.png")
    Image.fromarray(np.full((1000, 1001, 3), 90, dtype=np.uint8)).save(folder / "over_limit.png")
    run = compress([folder], out, "--max-image-pixels", "1000000")
    check_accounting(run, 2)
    assert run.ids == ["at_limit.png"]
    check_failure(run, "over_limit.png", "decode", r"1001x1000.*1,000,000.*--max-image-pixels")


# ----------------------------------------------------------------- Parquet

def good_cell(seed: int = 1) -> dict:
    return {"bytes": bad.png(seed=seed), "path": None}


def test_parquet_without_image_column_alone_is_a_usage_error(tmp_path, out):
    path = bad.write_parquet(tmp_path / "nocol.parquet", pa.table({"a": [1, 2], "s": ["x", "y"]}))
    message = check_usage_error(compress([path], out), out, r"no image column found.*--image-column")
    record("parquet: no image column", 2, message)
    message = check_usage_error(compress([path], out, "--image-column", "nope"), out, r"no column 'nope'")
    record("parquet: --image-column nope", 2, message)
    ok = bad.write_parquet(tmp_path / "ok.parquet", bad.hf_image_table([good_cell()]))
    check_usage_error(compress([ok], out, "--image-column", "nope"), out, r"no column 'nope' \(columns: image\)")


def test_parquet_null_and_empty_image_cells_are_read_errors(tmp_path, out):
    path = bad.write_parquet(tmp_path / "nulls.parquet",
                             bad.hf_image_table([good_cell(), None, {"bytes": None, "path": None}]))
    run = compress([path], out)
    check_accounting(run, 3)
    assert run.ids == ["nulls.parquet#0"]
    record("parquet: null image cell", 1, "read: " + check_failure(run, "nulls.parquet#1", "read", r"null"))
    record("parquet: struct with bytes and path both null", 1,
           "read: " + check_failure(run, "nulls.parquet#2", "read", r"neither bytes nor path"))


def test_parquet_path_cells_resolve_relative_to_the_parquet_file(tmp_path, out):
    folder = tmp_path / "data"
    (folder / "pics").mkdir(parents=True)
    (folder / "pics" / "rel.png").write_bytes(bad.png(seed=2))
    path = bad.write_parquet(folder / "paths.parquet", bad.hf_image_table(
        [{"bytes": None, "path": "pics/rel.png"}, {"bytes": None, "path": "pics/missing.png"}]))
    run = compress([folder], out)  # the folder run also codes pics/rel.png itself
    check_accounting(run, 3)
    assert run.ids == ["paths.parquet#0", "pics/rel.png"]
    assert np.array_equal(run.image("paths.parquet#0"), run.image("pics/rel.png"))
    reason = check_failure(run, "paths.parquet#1", "read", r"missing\.png.*No such file")
    record("parquet: struct with only a path (exists)", 0, "written, read relative to the Parquet file")
    record("parquet: struct with only a path (missing)", 1, f"read: {reason}")
    # The path is relative to the Parquet file, not to the working directory.
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        run = compress([path], out, "--overwrite")
    finally:
        os.chdir(cwd)
    check_accounting(run, 2)
    assert run.ids == ["paths.parquet#0"]


def test_parquet_non_image_bytes_are_decode_errors(tmp_path, out):
    path = bad.write_parquet(tmp_path / "nonimage.parquet", bad.hf_image_table(
        [{"bytes": b"hello, not an image", "path": None}, good_cell()]))
    run = compress([path], out)
    check_accounting(run, 2)
    assert run.ids == ["nonimage.parquet#1"]
    reason = check_failure(run, "nonimage.parquet#0", "decode", r"not an image")
    record("parquet: non-image bytes", 1, f"decode: {reason}")


def test_parquet_with_garbage_data_pages_accounts_for_every_row(tmp_path, out):
    rows = 40
    path = bad.write_parquet(tmp_path / "corrupt.parquet",
                             bad.hf_image_table([good_cell(seed=k) for k in range(rows)]))
    bad.corrupt_middle(path)  # valid magic and footer, garbage pages
    run = compress([path], out)
    check_accounting(run, rows)
    assert run.ids == []
    assert sorted(e["id"] for e in run.logged) == sorted(f"corrupt.parquet#{k}" for k in range(rows))
    reason = check_failure(run, "corrupt.parquet#0", "read", r"Parquet data unreadable from row 0")
    record("parquet: garbage data pages (footer intact)", 1, f"read, one entry per row: {reason!r}")


@pytest.mark.parametrize("kind", ["truncated", "not_parquet"])
def test_unreadable_parquet_file_alone_is_a_usage_error(tmp_path, out, kind):
    path = tmp_path / f"{kind}.parquet"
    if kind == "truncated":
        bad.write_parquet(path, bad.hf_image_table([good_cell()] * 3))
        path.write_bytes(path.read_bytes()[:-100])
    else:
        path.write_text("name,value\n1,2\n")
    message = check_usage_error(compress([path], out), out, rf"{kind}\.parquet: not a readable Parquet file")
    record(f"parquet: {kind.replace('_', ' ')} (alone)", 2, message)


def test_empty_parquet_alone_is_a_usage_error_saying_no_images(tmp_path, out):
    path = bad.write_parquet(tmp_path / "empty.parquet", bad.hf_image_table([]))
    message = check_usage_error(compress([path], out), out, r"no images found")
    record("parquet: 0 rows (alone)", 2, message)


def test_unusable_parquet_files_inside_a_folder_are_error_entries(tmp_path, out):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "fake.parquet").write_text("name,value\n1,2\n")
    bad.write_parquet(folder / "nocol.parquet", pa.table({"a": [1]}))
    bad.write_parquet(folder / "trunc.parquet", bad.hf_image_table([good_cell()] * 3))
    (folder / "trunc.parquet").write_bytes((folder / "trunc.parquet").read_bytes()[:-100])
    bad.write_parquet(folder / "empty.parquet", bad.hf_image_table([]))
    bad.write_good(folder, 1)
    run = compress([folder], out)
    check_accounting(run, 4)  # the empty file holds no image
    assert run.ids == ["good_000.png"]
    for name, pattern in (("fake", "not a readable Parquet file"), ("trunc", "not a readable Parquet file"),
                          ("nocol", "no image column found")):
        reason = check_failure(run, f"{name}.parquet", "read", pattern)
        record(f"parquet: {name}.parquet inside a folder", 1, f"read: {reason}")


def test_large_parquet_is_read_a_few_rows_at_a_time(tmp_path):
    rows, cell = 600, 50_000  # 30 MB of cells in row groups of 100 rows (5 MB each)
    rng = np.random.default_rng(0)
    table = pa.table({"image": pa.array([rng.bytes(cell) for _ in range(rows)], pa.binary())})
    path = tmp_path / "big.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, str(path), row_group_size=100, compression="none")
    del table
    base, peak, count = pa.total_allocated_bytes(), 0, 0
    for item in sources.iter_items([str(path)]):
        assert len(item.read()) == cell
        peak = max(peak, pa.total_allocated_bytes() - base)
        count += 1
    assert count == rows
    assert peak < 12 << 20, f"Arrow memory reached {peak >> 20} MB while reading a {rows * cell >> 20} MB file"


# ----------------------------------------------------------------- file system

@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_and_folder_are_error_entries(tmp_path, out):
    folder = tmp_path / "in"
    bad.write_good(folder, 1)
    (folder / "secret.png").write_bytes(bad.png(seed=3))
    (folder / "locked").mkdir()
    (folder / "locked" / "x.png").write_bytes(bad.png(seed=3))
    os.chmod(folder / "secret.png", 0)
    os.chmod(folder / "locked", 0)
    try:
        run = compress([folder], out)
    finally:
        os.chmod(folder / "secret.png", 0o644)
        os.chmod(folder / "locked", 0o755)
    check_accounting(run, 3)
    record("chmod 000 file", 1, "read: " + check_failure(run, "secret.png", "read", r"Permission denied"))
    record("chmod 000 folder", 1, "read: " + check_failure(run, "locked", "read", r"cannot list folder"))


def test_permission_denied_file_and_folder_are_error_entries_simulated(tmp_path, out, monkeypatch):
    """The same as above, with EACCES raised by stand-ins, so it runs as root too."""
    folder = tmp_path / "in"
    bad.write_good(folder, 1)
    (folder / "secret.png").write_bytes(bad.png(seed=3))
    bad.write_good(folder / "locked", 1)
    real_open, real_scandir = open, os.scandir

    def denied(path):
        return OSError(13, "Permission denied", str(path))

    def fake_open(path, *args, **kwargs):
        if str(path).endswith("secret.png"):
            raise denied(path)
        return real_open(path, *args, **kwargs)

    def fake_scandir(path="."):
        if str(path).endswith("locked"):
            raise denied(path)
        return real_scandir(path)

    monkeypatch.setattr(input_files, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    run = compress([folder], out, "--workers", "2")
    monkeypatch.undo()
    check_accounting(run, 3)
    assert run.ids == ["good_000.png"]
    reason = check_failure(run, "secret.png", "read", r"cannot read .*secret\.png: Permission denied")
    record("unreadable file (EACCES, simulated as root)", 1, f"read: {reason}")
    reason = check_failure(run, "locked", "read", r"cannot list folder")
    record("unlistable folder (EACCES, simulated as root)", 1, f"read: {reason}")


def test_unlistable_folder_reason_names_the_cause(tmp_path, out, monkeypatch):
    folder = tmp_path / "in"
    bad.write_good(folder, 1)
    bad.write_good(folder / "locked", 1)
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if str(path).endswith("locked"):
            raise OSError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    run = compress([folder], out)
    monkeypatch.undo()
    check_accounting(run, 2)
    check_failure(run, "locked", "read", r"cannot list folder .*Permission denied")


def test_directory_symlink_loop_ends_and_reads_each_image_once(tmp_path):
    folder = tmp_path / "in"
    bad.write_good(folder, 2)
    bad.write_good(folder / "sub", 1, "inner")
    bad.make_symlink_loop(folder)  # in/sub/back -> in
    os.symlink("../sub", folder / "sub" / "self", target_is_directory=True)  # in/sub/self -> in/sub
    # Subprocess with a timeout: a hang fails the test instead of stalling the suite.
    result = subprocess.run([sys.executable, "-m", "pixelprune_cli", "compress", "in", "-o", "out.arrow", "--json",
                             "--workers", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    no_traceback(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    ids = read_output(tmp_path / "out.arrow").column("id").to_pylist()
    assert ids == ["good_000.png", "good_001.png", "sub/inner_000.png"]
    assert json.loads(result.stdout)["images"] == 3
    record("directory symlink loop", 0, "each image read once (ids: " + ", ".join(ids) + ")")


def test_file_symlink_to_itself_is_an_error_entry(tmp_path, out):
    folder = tmp_path / "in"
    bad.write_good(folder, 1)
    bad.make_self_symlink(folder / "me.png")
    run = compress([folder], out)
    check_accounting(run, 2)
    assert run.ids == ["good_000.png"]
    reason = check_failure(run, "me.png", "read", r"symlink")
    record("file symlink to itself (in a folder)", 1, f"read: {reason}")
    run = compress([folder / "me.png"], out, "--overwrite")
    check_accounting(run, 1)
    reason = check_failure(run, "me.png", "read", r"symbolic links|symlink")
    record("file symlink to itself (named)", 1, f"read: {reason}")


def test_missing_path_is_a_usage_error_even_beside_good_input(tmp_path, out):
    bad.write_good(tmp_path / "in", 1)
    message = check_usage_error(compress([tmp_path / "nowhere"], out), out, r"nowhere: no such file or folder")
    record("path that does not exist", 2, message)
    check_usage_error(compress([tmp_path / "in", tmp_path / "nowhere.png"], out), out, r"nowhere\.png: no such file")


def test_empty_folder_and_folder_without_images_are_usage_errors(tmp_path, out):
    (tmp_path / "empty").mkdir()
    message = check_usage_error(compress([tmp_path / "empty"], out), out, r"no images found")
    record("empty folder", 2, message)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hi")
    message = check_usage_error(compress([tmp_path / "text"], out), out, r"no images found.*1 file skipped: notes\.txt")
    record("folder with only non-image files", 2, message)


# ----------------------------------------------------------------- everything at once

def test_bad_and_good_inputs_in_one_folder_write_every_good_image(tmp_path):
    """The whole corpus in one folder, in a real process with two workers: good images all written."""
    folder = tmp_path / "in"
    bad.write_files(folder)
    good = [p.name for p in bad.write_good(folder, 3)]
    (folder / "notes.txt").write_text("not an image, skipped")
    (folder / "pics").mkdir()
    (folder / "pics" / "rel.png").write_bytes(bad.png(seed=2))
    bad.write_parquet(folder / "table.parquet", bad.hf_image_table([
        good_cell(), None, {"bytes": None, "path": "pics/rel.png"}, {"bytes": None, "path": "pics/gone.png"},
        {"bytes": b"not an image", "path": None}]))
    (folder / "fake.parquet").write_text("not parquet")
    bad.write_parquet(folder / "empty.parquet", bad.hf_image_table([]))
    bad.make_symlink_loop(folder)
    bad.make_self_symlink(folder / "me.png")

    result = subprocess.run([sys.executable, "-m", "pixelprune_cli", "compress", "in", "-o", "out.arrow", "--json",
                             "--workers", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    no_traceback(result.stdout + result.stderr)
    run = Run(result.returncode, result.stdout, result.stderr, json.loads(result.stdout),
              read_output(tmp_path / "out.arrow"),
              [json.loads(line) for line in (tmp_path / "out.arrow.errors.jsonl").read_text().splitlines()])
    files = len(bad.file_cases()) + len(good) + 1  # + pics/rel.png
    images_in = files + 5 + 1 + 1  # table rows, fake.parquet, me.png
    check_accounting(run, images_in)
    written = set(WRITTEN) | set(good) | {"pics/rel.png", "table.parquet#0", "table.parquet#2"}
    assert set(run.ids) == written
    failed = {e["id"]: e["stage"] for e in run.logged}
    expected = {**{name: stage for name, (stage, _) in FAILS.items()}, "table.parquet#1": "read",
                "table.parquet#3": "read", "table.parquet#4": "decode", "fake.parquet": "read", "me.png": "read"}
    assert failed == expected
    assert run.summary["skipped_files"] == 1
    # The table (no --json) lists the failures too, still without a traceback.
    result = subprocess.run([sys.executable, "-m", "pixelprune_cli", "compress", "in", "-o", "out2.arrow",
                             "--table", "summary"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    no_traceback(result.stdout + result.stderr)
    assert result.returncode == 1
    assert f"{len(expected)} failed" in result.stdout
    record("all of the above in one folder (2 workers)", 1,
           f"{len(written)} good images written, {len(expected)} error entries, 1 non-image file skipped")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
