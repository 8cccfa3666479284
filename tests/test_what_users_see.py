"""What a user sees: progress with an end, reports that fit 80 columns, honest streams and exit codes.

Terminal behaviour is checked in a real pseudo-terminal (the `pty` module,
with its window size set), not by mocking isatty: the child process asks the
terminal itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image

from pixelprune_cli import api
from pixelprune_cli.cli.cli import main
from pixelprune_cli.cli.cli_errors import EXIT_BROKEN_PIPE
from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.errors import ConfigError
from pixelprune_cli.report.report import shorten_middle
from pixelprune_cli.report.summary import ImageEntry, Summary, sample_estimate

import badfiles as bad
import terminal
from conftest import ROOT as REPO
from conftest import SAMPLE_IMAGES as IMAGES
from conftest import SAMPLES

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run(args, code: int = 0, stdin: bytes | None = None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=stdin)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exc_info)
    return result


def in_terminal(args, columns: int = 80, rows: int = 40, env: dict | None = None):
    """Run the CLI on a pseudo-terminal of `columns` x `rows` that it measures itself (no COLUMNS)."""
    env = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    code, shown, piped = terminal.run_in_terminal(args, env, columns, rows, cwd=REPO)
    return code, shown.decode("utf-8", "replace"), piped


def screen_lines(shown: str) -> list[str]:
    """The lines left on screen, escape codes removed (progress redraws end in a cleared line)."""
    return [line.rstrip() for line in ANSI.sub("", shown).replace("\r\n", "\n").split("\n")]


@pytest.fixture(scope="module")
def thirty_images(tmp_path_factory) -> Path:
    """30 sample images in a folder: long enough a run for a progress bar to be drawn."""
    folder = tmp_path_factory.mktemp("thirty")
    for k in range(3):
        for image in IMAGES:
            shutil.copy(image, folder / f"{k}_{image.name}")
    return folder


# ---------------------------------------------------------------- progress


def test_progress_shows_the_total_and_time_left_in_a_terminal(thirty_images, tmp_path):
    out = tmp_path / "p.arrow"
    code, shown, _ = in_terminal(["compress", thirty_images, "-o", out, "-j", "1", "--table", "none"])
    assert code == 0, shown
    text = ANSI.sub("", shown)
    counts = [int(m) for m in re.findall(r"(\d+)/30\b", text)]
    assert counts and max(counts) < 30 + 1, text  # the total was known while coding
    assert not re.search(r"[1-9]\d*/\?", text), text  # the count arrived before the first image was done
    assert re.search(r"eta \d+:\d\d", text), text
    assert re.search(r"\d+\.\d img/s", text)


def test_first_progress_frame_says_what_is_listed_and_the_count_never_reads_n_of_unknown(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(150):
        (folder / f"img_{k:03d}.png").write_bytes(bad.png(seed=k))
    code, shown, _ = in_terminal(["compress", f"{folder}/", "-o", tmp_path / "p.arrow", "-j", "1", "--table", "none"],
                                 columns=120)
    assert code == 0, shown
    frames = [f.strip() for f in ANSI.sub("", shown).replace("\r\n", "\r").split("\r") if "━" in f]
    assert frames and frames[0].startswith(f"listing {folder}/"), frames[:3]  # drawn before any count is known
    assert not [f for f in frames if "/?" in f], frames
    counted = [f for f in frames if re.search(r"\b\d+/150\b", f)]
    assert counted and counted[-1].split()[2] == "150/150", frames


@pytest.mark.parametrize("sample", ["0", "30"])  # every image (counted aside), or a sample (its size known)
def test_show_draws_a_progress_line_for_a_contact_sheet(tmp_path, sample):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(60):
        (folder / f"img_{k:03d}.png").write_bytes(bad.png(seed=k))
    total = 60 if sample == "0" else 30
    args = ["show", folder, "-o", tmp_path / "sheet.png", "--thumb", 32, "--sample", sample, "-j", "1"]
    code, shown, _ = in_terminal(args, columns=120)
    assert code == 0, shown
    frames = [f.strip() for f in ANSI.sub("", shown).replace("\r\n", "\r").split("\r") if "━" in f]
    assert frames and not [f for f in frames if "/?" in f], frames
    assert [f for f in frames if f.startswith("drawing ") and f"/{total} " in f], frames
    code, shown, _ = in_terminal([*args, "--no-progress", "--overwrite"], columns=120)
    assert code == 0 and "━" not in shown


def test_progress_count_column_shows_no_open_ended_total():
    from types import SimpleNamespace

    from pixelprune_cli.report.report import _count_column

    column = _count_column()
    shown = [column.render(SimpleNamespace(completed=done, total=total)).plain
             for done, total in [(0, None), (3, None), (0, 150), (3, 150)]]
    assert shown == ["", "3", "0/150", "3/150"]


def test_restore_shows_progress_with_the_row_count(thirty_images, tmp_path):
    out = tmp_path / "r.arrow"
    run(["compress", thirty_images, "-o", out, "--table", "none"])
    code, shown, _ = in_terminal(["restore", out, "-o", tmp_path / "png", "--table", "none"])
    assert code == 0, shown
    text = ANSI.sub("", shown)
    assert "restoring" in text and re.search(r"\d+/30\b", text), text
    assert len(list((tmp_path / "png").iterdir())) == 30


def test_progress_total_of_a_parquet_table_comes_from_its_footer(tmp_path):
    from pixelprune_cli.inputs.pieces import SourceOptions
    from pixelprune_cli.report.report import Progress

    class Recorder(Progress):
        def __init__(self):
            super().__init__(False)
            self.bar = object()  # active, draws nothing

        def set_total(self, total):
            self.total = total

    import time

    import pyarrow.parquet as pq

    progress = Recorder()
    api.count_in_background([str(SAMPLES / "samples.parquet")], SourceOptions(), progress)
    deadline = time.time() + 30
    while progress.total is None and time.time() < deadline:
        time.sleep(0.01)
    assert progress.total == pq.ParquetFile(SAMPLES / "samples.parquet").metadata.num_rows


# ---------------------------------------------------------------- tables


@pytest.fixture(scope="module")
def long_ids(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    deep = folder / "screenshots_from_the_mobile_team" / "2024-q3"
    deep.mkdir(parents=True)
    shutil.copy(SAMPLES / "mobile_screen.png", deep / "mobile_screen_of_the_checkout_page_in_dark_mode.png")
    shutil.copy(SAMPLES / "slide.png", folder / "slide.png")
    shutil.copy(SAMPLES / "photo.jpg", folder / "photo.jpg")
    return folder


def test_tables_fit_80_columns_with_ids_shortened_in_the_middle(long_ids):
    code, shown, _ = in_terminal(["stats", long_ids, "--budget", "400", "--no-progress"], columns=80)
    assert code == 0, shown
    lines = screen_lines(shown)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    title = next(line for line in lines if line.startswith("pixelprune stats"))
    assert "qwen3-vl" in title and "pred_2d" in title and "max" in title and "budget 400" in title
    header = next(line for line in lines if line.startswith("id "))
    assert header.split() == ["id", "source", "resized", "tokens", "kept", "saved", "tau", "over", "time"]
    long_id = "screenshots_from_the_mobile_team/2024-q3/mobile_screen_of_the_checkout_page_in_dark_mode.png"
    row = next(line for line in lines if "\u2026" in line)
    shortened = row.split()[0]
    head, tail = shortened.split("\u2026")
    assert long_id.startswith(head) and long_id.endswith(tail) and len(head) >= 3 and len(tail) >= 3
    assert "(over budget)" not in shown  # the mark has its own column, the id is left alone
    photo = next(line for line in lines if line.startswith("photo.jpg"))
    assert photo.split()[7] == "over"  # 475 tokens, all needed: over a 400-token budget at any tau
    assert "slide.png" in shown and "total" in shown


def test_shorten_middle_keeps_both_ends_and_the_width():
    from rich.cells import cell_len

    text = "folder/sub/a_long_file_name.png"
    for width in range(1, len(text) + 3):
        cut = shorten_middle(text, width)
        assert len(cut) == min(width, len(text))
        if width < len(text) and width > 2:
            head, tail = cut.split("\u2026")
            assert text.startswith(head) and text.endswith(tail)
    wide = "\u6587\u66f8/\u8acb\u6c42\u66f8_2024_\u7b2c\u4e09\u56db\u534a\u671f.png"  # two cells a character
    for width in range(3, cell_len(wide)):
        cut = shorten_middle(wide, width)
        head, tail = cut.split("\u2026")
        assert cell_len(cut) <= width and wide.startswith(head) and wide.endswith(tail)


def test_group_by_header_names_the_column_and_stays_with_table_none(tmp_path):
    result = run(["stats", SAMPLES / "samples.parquet", "--group-by", "kind", "--table", "none"])
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("kind "))
    assert header.split() == ["kind", "images", "tokens", "kept", "saved", "median", "kept"]
    assert not any(line.startswith("samples.parquet#") for line in lines)  # no per-image rows
    assert any(line.startswith("total ") for line in lines)


def test_table_none_keeps_totals_and_failure_notice_and_a_failing_run_says_why(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "chart.png", folder / "good.png")
    (folder / "bad.png").write_bytes(b"not a png at all")
    out = tmp_path / "out.arrow"
    result = run(["compress", folder, "-o", out, "--table", "none"], code=1)
    assert re.search(r"^total +620 +327", result.stdout, re.M)
    assert "1 failed" in result.stdout and "bad.png" in result.stdout
    assert not re.search(r"^good\.png ", result.stdout, re.M)
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"pixelprune: 1 of 2 images failed (see {out}.errors.jsonl)"
    stats = run(["stats", folder, "--table", "none"], code=1)
    assert stats.stdout.strip() and "total" in stats.stdout
    assert stats.stderr.strip().splitlines()[-1] == "pixelprune: 1 of 2 images failed (listed above)"
    as_json = run(["stats", folder, "--json"], code=1)
    assert as_json.stderr.strip() == 'pixelprune: 1 of 2 images failed (see "errors" in the JSON)'


def test_restore_source_column_is_the_source_size_not_the_resized_one(tmp_path):
    out = tmp_path / "o.arrow"
    run(["compress", SAMPLES / "chart.png", "-o", out])  # 1000x650, resized to 992x640
    restored = json.loads(run(["restore", out, "-o", tmp_path / "png", "--json"]).stdout)["per_image"][0]
    assert (restored["source_width"], restored["source_height"]) == (1000, 650)
    assert (restored["width"], restored["height"]) == (992, 640)
    table = run(["restore", out, "-o", tmp_path / "png2"]).stdout
    assert re.search(r"^chart\.png +1000x650 +992x640", table, re.M)


# ---------------------------------------------------------------- what was written


def test_compress_and_restore_end_with_one_line_saying_what_was_written(tmp_path):
    from pixelprune_cli.report.report import format_bytes

    assert [format_bytes(n) for n in (999, 1000, 120_449, 2_100_000, 3_000_000_000)] == [
        "999 bytes", "1.0 kB", "120.4 kB", "2.1 MB", "3.0 GB"]
    out = tmp_path / "o.arrow"
    result = run(["compress", SAMPLES / "chart.png", SAMPLES / "form.png", "-o", out])
    assert result.stderr == f"wrote 2 rows ({format_bytes(out.stat().st_size)}) to {out}\n"
    restored = run(["restore", out, "-o", tmp_path / "png"])
    pngs = sum(p.stat().st_size for p in (tmp_path / "png").iterdir())
    assert restored.stderr == f"wrote 2 PNGs ({format_bytes(pngs)}) to {tmp_path / 'png'}\n"
    streamed = run(["compress", SAMPLES / "chart.png", "-o", "-", "--table", "none"])
    sent = len(streamed.stdout_bytes)
    assert f"wrote 1 row ({format_bytes(sent)}) to stdout (an Arrow IPC stream)" in streamed.stderr
    shards = tmp_path / "shards"
    sharded = run(["compress", SAMPLES / "chart.png", SAMPLES / "form.png", "-o", f"{shards}/", "--shard-size", 1])
    total = sum(p.stat().st_size for p in shards.iterdir())
    assert sharded.stderr == f"wrote 2 rows ({format_bytes(total)}) to {shards}/\n"


# ---------------------------------------------------------------- stats --sample


def test_sample_estimate_intervals_cover_the_true_totals_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    population = 2000
    tokens = rng.choice([300, 620, 918, 1000, 2400], size=population)
    kept = np.minimum(tokens, np.rint(tokens * rng.beta(2, 3, size=population)).astype(int) + 1)
    truth = {"tokens": tokens.sum(), "kept": kept.sum(), "saved": 1 - kept.sum() / tokens.sum()}
    covered = {name: 0 for name in truth}
    trials = 400
    for trial in range(trials):
        chosen = rng.choice(population, size=40, replace=False)
        summary = Summary()
        for i in chosen:
            summary.add_image(ImageEntry(f"{i}", (1, 1), (1, 1), int(tokens[i]), int(kept[i]), 0.0))
        estimate = sample_estimate(summary, population)
        if trial == 0:  # the point estimates are N times the sample means, and their ratio
            assert math.isclose(estimate["tokens"]["value"], population * tokens[chosen].mean())
            assert math.isclose(estimate["saved"]["value"], 1 - kept[chosen].sum() / tokens[chosen].sum())
        for name in truth:
            covered[name] += estimate[name]["low"] <= truth[name] <= estimate[name]["high"]
    for name, hits in covered.items():
        assert 0.90 <= hits / trials <= 0.99, (name, hits / trials)


def test_stats_sample_reports_an_estimate_for_the_whole_set():
    result = run(["stats", SAMPLES, "--sample", 8, "--table", "none"])
    assert "estimated for all 20 images from a random sample of 8 (seed 0):" in result.stdout
    assert re.search(r"saved +\d+\.\d% \(\d+\.\d-\d+\.\d%\)", result.stdout)
    summary = json.loads(run(["stats", SAMPLES, "--sample", 8, "--json"]).stdout)
    estimate = summary["sample"]["estimate"]
    assert math.isclose(estimate["tokens"]["value"], 20 * summary["tokens"] / 8)
    assert estimate["tokens"]["low"] <= estimate["tokens"]["value"] <= estimate["tokens"]["high"]


# ---------------------------------------------------------------- streams


def test_compress_to_a_terminal_stdout_is_refused_with_a_hint(tmp_path):
    code, shown, _ = in_terminal(["compress", SAMPLES / "chart.png", "-o", "-"])
    lines = [line for line in screen_lines(shown) if line]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("pixelprune: error: ") and "terminal" in lines[0] and "-o out.arrow" in lines[0]
    assert "ARROW" not in shown  # no stream began


def test_a_closed_downstream_pipe_is_a_failure_without_traceback(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "pixelprune_cli", "compress", *IMAGES, "-o", "-", "-j", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(process.stdout.read(100)) == 100  # `| head -c 100`
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == EXIT_BROKEN_PIPE == 141
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == ("pixelprune: error: standard output was closed by its reader before "
                                               "everything was written (broken pipe)")


@pytest.mark.parametrize("command", [["stats", "{samples}/chart.png"], ["stats", "{out}"],
                                     ["compress", "{samples}/chart.png", "-o", "{tmp}/again.arrow"]])
def test_a_table_report_into_a_closed_pipe_exits_141_with_one_line(tmp_path, command):
    """`pixelprune stats DIR/ | head -1`: the reader went away, which is not an image that failed (exit 1)."""
    out = tmp_path / "out.arrow"
    run(["compress", SAMPLES / "chart.png", "-o", out, "--no-progress"])
    args = [a.format(samples=SAMPLES, out=out, tmp=tmp_path) for a in command]
    process = subprocess.Popen([sys.executable, "-m", "pixelprune_cli", *args, "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # closed before the table is drawn: every write to stdout meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == EXIT_BROKEN_PIPE, stderr
    assert stderr.strip().splitlines() == ["pixelprune: error: standard output was closed by its reader before "
                                           "everything was written (broken pipe)"]


def test_shell_pipe_into_head_exits_141():
    shell = (f"{sys.executable} -m pixelprune_cli compress {' '.join(map(str, IMAGES))} -o - -j 1 "
             "| head -c 100 > /dev/null; echo ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "141" and "Traceback" not in done.stderr


def test_show_of_a_one_row_stream_needs_no_row(tmp_path):
    stream = run(["compress", SAMPLES / "chart.png", "-o", "-", "--table", "none"]).stdout_bytes
    run(["show", "-", "-o", tmp_path / "one.png"], stdin=stream)
    picture = Image.open(tmp_path / "one.png")
    assert picture.width == 992 and picture.height > 640  # the row at 1:1, with its caption below


@pytest.mark.parametrize("layout", ["file", "shards", "stream"])
def test_show_of_a_compressed_output_gives_a_contact_sheet(layout, tmp_path):
    from pixelprune_cli.pictures.contact_sheet import contact_tile_size, header_height

    files = [SAMPLES / name for name in ("chart.png", "form.png", "slide.png")]
    target = {"file": tmp_path / "o.arrow", "shards": f"{tmp_path / 'sh'}/", "stream": "-"}[layout]
    shards = ["--shard-size", 2] if layout == "shards" else []  # a file or stream has no shards to size
    made = run(["compress", *files, "-o", target, "--table", "none", *shards])
    source = "-" if layout == "stream" else target
    run(["show", source, "-o", tmp_path / "sheet.png", "--thumb", 64],
        stdin=made.stdout_bytes if layout == "stream" else None)
    tile_w, tile_h = contact_tile_size(64)
    assert Image.open(tmp_path / "sheet.png").size == (3 * tile_w, header_height(3 * tile_w) + tile_h)
    sampled = run(["show", source, "-o", tmp_path / "two.png", "--thumb", 64, "--sample", 2],
                  stdin=made.stdout_bytes if layout == "stream" else None)
    assert Image.open(tmp_path / "two.png").size == (2 * tile_w, header_height(2 * tile_w) + tile_h)
    assert "a random sample of 2 of 3 rows" in sampled.stderr


# ---------------------------------------------------------------- folders


def test_make_demo_codes_each_sample_once(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "pixelprune").exists():
        pytest.skip("pixelprune script not installed beside this python")
    done = subprocess.run(["make", "-s", "demo", "DEMO_STAMP=", f"VENV={bin_dir.parent}", f"DEMO_OUT={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pa.ipc.open_file(str(tmp_path / "samples.arrow")).read_all()
    assert sorted(table.column("id").to_pylist()) == [p.name for p in IMAGES]
    assert f"\n{len(IMAGES)} images in " in done.stdout and "20 images" not in done.stdout


def make_plan(*args: str) -> list[str]:
    """The commands `make ARGS` would run (make -n runs none of them), as on a fresh shell: under `make test
    EXTRAS=...` (as CI runs the suite) make's own variables reach this make through MAKEFLAGS, so they go."""
    fresh = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                                                                "EXTRAS", "VENV", "PYTHON", "TORCH")}
    done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=fresh)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def pip_installs(commands: list[str]) -> list[str]:
    return [c.split(" install ", 1)[1] for c in commands if " -m pip install " in c]


def test_make_demo_installs_only_the_base_package_and_make_test_the_test_extra(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    venv = tmp_path / "venv"  # a fresh clone: no venv yet
    assert pip_installs(make_plan("demo", f"VENV={venv}")) == ["--quiet -e '.'"]
    assert pip_installs(make_plan("test", f"VENV={venv}")) == ["--quiet -e '.[test]'"]
    assert pip_installs(make_plan("test", f"VENV={venv}", "EXTRAS=test,hf")) == [
        "--quiet torch==2.14.1 torchvision==0.29.1", "--quiet -e '.[test,hf]'"]
    venv.mkdir()
    (venv / ".installed-test-hf").touch()  # after `make test EXTRAS=test,hf`: the demo installs nothing more
    os.utime(venv / ".installed-test-hf", (2**31, 2**31))  # newer than pyproject.toml
    demo = make_plan("demo", f"VENV={venv}")
    assert pip_installs(demo) == [] and any(" compress " in c for c in demo)


def test_skipped_files_are_named_and_hidden_ones_skipped_unless_asked(tmp_path):
    folder = tmp_path / "data"
    for hidden in (".git/objects", ".ipynb_checkpoints", ".cache"):
        (folder / hidden).mkdir(parents=True)
        shutil.copy(SAMPLES / "chart.png", folder / hidden / "copy.png")
    shutil.copy(SAMPLES / "chart.png", folder / ".thumb.png")
    shutil.copy(SAMPLES / "form.png", folder / "form.png")
    notes = [f"note_{k}.txt" for k in range(7)]
    for name in notes:
        (folder / name).write_text("text")
    summary = json.loads(run(["stats", folder, "--json"]).stdout)
    assert [e["id"] for e in summary["per_image"]] == ["form.png"]
    hidden = [".cache/", ".git/", ".ipynb_checkpoints/", ".thumb.png"]
    assert sorted(summary["skipped"]) == sorted(hidden + notes)  # every one of them, by name
    assert (summary["skipped_files"], summary["skipped_hidden"]) == (11, 4)
    table = run(["stats", folder]).stdout
    line = " ".join(table[table.index("skipped"):].splitlines())  # wrapped at spaces to the width
    assert line.startswith("skipped 7 files that are not images and 4 hidden (--hidden includes them): ")
    assert line.endswith(", and 6 more (--json lists all)") and line.count(", ") == 5
    everything = json.loads(run(["stats", folder, "--json", "--hidden"]).stdout)
    assert sorted(e["id"] for e in everything["per_image"]) == sorted(
        [".cache/copy.png", ".git/objects/copy.png", ".ipynb_checkpoints/copy.png", ".thumb.png", "form.png"])
    assert everything["skipped_files"] == 7 and everything["skipped_hidden"] == 0


def test_one_skipped_file_is_named_in_the_singular(tmp_path):
    (tmp_path / "a.png").write_bytes((SAMPLES / "chart.png").read_bytes())
    (tmp_path / "README.md").write_text("about")
    assert "skipped 1 file that is not an image: README.md" in run(["stats", tmp_path]).stdout


# ---------------------------------------------------------------- the Python API


def test_python_api_errors_name_the_parameter_and_the_cli_names_the_flag(tmp_path):
    out = tmp_path / "o.arrow"
    out.write_bytes(b"old")
    with pytest.raises(ConfigError) as raised:
        api.compress([str(SAMPLES / "chart.png")], str(out))
    assert "overwrite=True" in str(raised.value) and "--overwrite" not in str(raised.value)
    with pytest.raises(ValueError) as raised:
        CodingConfig(budget=100, tau=0.1)
    assert "max_tau=" in str(raised.value) and "--" not in str(raised.value)
    refused = run(["compress", SAMPLES / "chart.png", "-o", out], code=2)
    assert "pass --overwrite to replace it" in refused.stderr and "overwrite=True" not in refused.stderr
    assert out.read_bytes() == b"old"


# ---------------------------------------------------------------- show --side-by-side


def _largest_token_error(original: np.ndarray, restored: np.ndarray, ts: int, metric: str) -> float:
    """Brute force over tokens: the coder's statistic of each token, the largest of them."""
    worst = 0.0
    for y in range(0, original.shape[0], ts):
        for x in range(0, original.shape[1], ts):
            d = original[y:y + ts, x:x + ts].astype(float) - restored[y:y + ts, x:x + ts].astype(float)
            value = {"max": np.abs(d).max() / 255, "mae": np.abs(d).mean() / 255,
                     "rmse": math.sqrt((d ** 2).mean()) / 255}[metric]
            worst = max(worst, value)
    return worst


@pytest.mark.parametrize("name, metric, tau", [("text_page.png", "mae", 0.05), ("scan_gray.png", "max", 0.1),
                                               ("text_page.png", "rmse", 0.05), ("chart.png", "max", 0.0)])
def test_side_by_side_states_the_largest_per_token_error(name, metric, tau, tmp_path):
    from pixelprune_cli.coding.backends import resize_for_model
    from pixelprune_cli.pictures.token_overlay import describe_error

    out = tmp_path / f"{metric}.png"
    result = run(["show", SAMPLES / name, "-o", out, "--side-by-side", "--metric", metric, "--tau", tau])
    restore_out = tmp_path / "restored"
    run(["compress", SAMPLES / name, "-o", tmp_path / "o.arrow", "--metric", metric, "--tau", tau])
    run(["restore", tmp_path / "o.arrow", "-o", restore_out])
    resized = resize_for_model(Image.open(SAMPLES / name), CodingConfig().preset)
    restored = np.asarray(Image.open(next(restore_out.iterdir())))
    worst = _largest_token_error(resized, restored, 32, metric)
    assert worst <= tau + 1e-9
    assert describe_error(worst, metric, tau) in result.stderr
    if tau == 0:
        assert "largest per-token error: 0 (restored = resized image, nothing lost)" in result.stderr
    else:
        assert worst > 0 and f"largest per-token error: {worst:.4g}" in result.stderr
