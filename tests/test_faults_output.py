"""Fault injection on the output side: what a failure may never take down.

Each section is one class of fault: a replaced shard folder, files that are
not ours, a cut stream, restore's PNGs, damaged shards under --resume, two
runs on one output, and output I/O errors. The faults are real where the
machine allows: signals to a `python -m pixelprune_cli` process, a 1 MiB
tmpfs for a full disk, a read-only bind mount (both need root, and are
skipped with the reason elsewhere), /dev/full for a full stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from pixelprune_cli.outputs import writer
from pixelprune_cli.outputs.manifest import STAGING, SWAP
from pixelprune_cli.storage import atomic

import badfiles as bad
from conftest import (
    SAMPLES,
    cli_result,
    finish,
    hidden_leftovers,
    manifest,
    one_line_error,
    read_arrow,
    run_process,
    shard_rows,
    slow_folder_of,
    small_folder,
    snapshot,
    start,
    wait_for,
)
from conftest import cli as cli_text


def cli(*args, stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """The CLI in-process: (exit code, stdout bytes, stderr); any traceback fails the test."""
    result = cli_result(*args, stdin=stdin)
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.fixture(scope="module")
def slow_folder(tmp_path_factory) -> Path:
    return slow_folder_of(tmp_path_factory.mktemp("slow"), 24, seed=1)


def mkdir(folder: Path) -> Path:
    folder.mkdir()
    return folder


def tree(folder: Path) -> dict:
    """relative path -> bytes of every file under folder (hidden ones too)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------- 1. --overwrite keeps the old output until the new one commits

@pytest.fixture
def old_output(tmp_path) -> tuple[Path, dict]:
    """A complete shard folder of 5 small images (3 shards) and its files' bytes."""
    folder = small_folder(tmp_path, 5)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)[0] == 0
    return out, tree(out)


def test_overwrite_that_finds_no_images_leaves_the_old_output_whole(old_output, tmp_path):
    out, before = old_output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    code, _, stderr = cli("compress", empty, "-o", f"{out}/", "--overwrite")
    assert code == 2
    one_line_error(stderr, "no images found")
    assert tree(out) == before


def test_overwrite_stopped_by_fail_fast_leaves_the_old_output_whole(old_output, tmp_path):
    out, before = old_output
    other = tmp_path / "other"
    other.mkdir()
    for k in range(4):
        (other / f"x_{k}.png").write_bytes(b"" if k == 3 else bad.png(seed=40 + k))
    code, _, stderr = cli("compress", other, "-o", f"{out}/", "--shard-size", 1, "--overwrite", "--fail-fast",
                          "--workers", 1)
    assert code == 1, stderr
    assert tree(out).keys() >= before.keys()
    assert {k: v for k, v in tree(out).items() if not k.startswith(".")} == before  # committed shards wait, hidden
    assert cli_text("stats", out, "--json")[0] == 0


@pytest.mark.parametrize("when", ["before any shard", "after shards were committed"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_overwrite_leaves_the_old_output_readable_in_full(old_output, slow_folder, tmp_path, when, signum):
    out, before = old_output
    staging = out / STAGING
    options = ["--shard-size", 4, "--workers", 1, "--no-progress", "--table", "none"]
    proc = start(["compress", slow_folder, "-o", f"{out}/", *options, "--overwrite"], tmp_path)
    if when == "before any shard":
        wait_for(lambda: (staging / "manifest.json").exists(), proc, "the staging folder was made")
    else:
        wait_for(lambda: (staging / "manifest.json").exists() and len(manifest(staging)["shards"]) >= 2, proc,
                 "two shards were committed")
    visible = {k: v for k, v in tree(out).items() if not k.startswith(".")}
    assert visible == before  # while the new run works, the old output is all there is to read
    proc.send_signal(signum)
    code = proc.wait(timeout=60)
    assert code == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
    assert {k: v for k, v in tree(out).items() if not k.startswith(".")} == before
    code, stdout, stderr = cli_text("stats", out, "--json")
    assert code == 0 and json.loads(stdout)["images"] == 5 and "warning" not in stderr

    if signum == signal.SIGTERM and when == "before any shard":
        assert hidden_leftovers(out) == []  # a replacement that committed nothing leaves no trace
        finish_with = "--overwrite"
    else:  # --resume finishes the replacement (the staging folder holds what was committed)
        assert (staging / "manifest.json").exists()
        finish_with = "--resume"
    code, _, stderr = run_process(["compress", slow_folder, "-o", f"{out}/", *options, finish_with], tmp_path)
    assert code == 0, stderr
    full = tmp_path / "full"
    assert run_process(["compress", slow_folder, "-o", f"{full}/", *options], tmp_path)[0] == 0
    assert shard_rows(out).equals(shard_rows(full))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in full.iterdir())
    assert hidden_leftovers(out) == []


def test_a_swap_cut_short_is_flagged_to_readers_and_finished_by_the_next_run(old_output, tmp_path):
    out, _ = old_output
    folder = small_folder(mkdir(tmp_path / "n"), 7)
    new = tmp_path / "new"
    assert cli("compress", folder, "-o", f"{new}/", "--shard-size", 3)[0] == 0
    # The state a run killed while moving its committed replacement into place leaves:
    # the swap folder, two of whose files have already replaced the old ones.
    swap = out / SWAP
    swap.mkdir()
    for p in new.iterdir():
        (swap / p.name).write_bytes(p.read_bytes())
    for name in ("part-00000.arrow", "part-00000.errors.jsonl"):
        os.replace(swap / name, out / name)
    code, stdout, stderr = cli("stats", out, "--json")
    assert "being replaced" in json.loads(stdout)["incomplete"] and "warning:" in stderr

    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 3, "--resume")
    assert code == 0, stderr
    assert tree(out) == tree(new)
    assert shard_rows(out).column("id").to_pylist() == [f"img_{k:03d}.png" for k in range(7)]


def test_overwrite_replaces_every_old_shard_and_leaves_no_staging(old_output, tmp_path):
    out, _ = old_output
    folder = small_folder(mkdir(tmp_path / "n"), 3)
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 10, "--overwrite")
    assert code == 0, stderr
    assert sorted(tree(out)) == ["errors.jsonl", "manifest.json", "part-00000.arrow", "part-00000.errors.jsonl"]
    assert manifest(out)["complete"] is True and shard_rows(out).num_rows == 3


# ----------------------------------------------------------------- 2. only pixelprune's own files count, and go

USER_FILES = {"part-time notes.txt": b"my notes", "part-1.txt": b"1", "part-00000.arrow.bak": b"backup",
              "part-x.arrow": b"mine", "README": b"read me", ".notes.txt.partial-999999999": b"hidden, mine"}


def put_user_files(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name, data in USER_FILES.items():
        (folder / name).write_bytes(data)


def test_a_folder_of_user_files_is_not_an_output_and_they_survive(tmp_path):
    out = tmp_path / "out"
    put_user_files(out)
    folder = small_folder(tmp_path, 3)
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)  # no --overwrite needed
    assert code == 0, stderr
    files = tree(out)
    assert {name: files[name] for name in USER_FILES} == USER_FILES


def test_overwrite_deletes_only_files_pixelprune_wrote(tmp_path):
    folder = small_folder(tmp_path, 5)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 1)[0] == 0  # 5 shards
    put_user_files(out)
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 5, "--overwrite")  # 1 shard
    assert code == 0, stderr
    files = tree(out)
    assert {name: files[name] for name in USER_FILES} == USER_FILES
    assert sorted(set(files) - set(USER_FILES)) == ["errors.jsonl", "manifest.json", "part-00000.arrow",
                                                    "part-00000.errors.jsonl"]


def test_readers_of_a_shard_folder_read_only_shards_pixelprune_wrote(old_output):
    out, _ = old_output
    for name in ("part-x.arrow", "part-1.parquet", "part-00001.arrow.bak"):  # a user's files, not our names
        (out / name).write_bytes(b"not an output")
    code, stdout, stderr = cli("stats", out, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["images"] == 5


@pytest.mark.parametrize("content", [b'{"files": ["a", "b"]}', b"[1, 2]", b"not json"], ids=["other-json", "list", "junk"])
def test_a_manifest_that_is_not_ours_is_refused_and_kept(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_bytes(content)
    folder = small_folder(tmp_path, 2)
    for flags in ([], ["--overwrite"], ["--resume"]):
        code, _, stderr = cli("compress", folder, "-o", f"{out}/", *flags)
        assert code == 2
        one_line_error(stderr, "manifest.json", "not a pixelprune manifest")
        assert tree(out) == {"manifest.json": content}


# ----------------------------------------------------------------- 6. a cut `-o -` stream is told from a whole one

def message_ends(data: bytes) -> list[int]:
    """Byte offsets at which each IPC message of a stream ends: the schema, then every batch."""
    reader, ends = pa.BufferReader(data), []
    while True:
        try:
            pa.ipc.read_message(reader)
        except EOFError:
            return ends
        ends.append(reader.tell())


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> bytes:
    """A complete `-o -` stream of 5 images in batches of 2, 2 and 1 rows."""
    folder = small_folder(tmp_path_factory.mktemp("stream"), 5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer.RowSink, "BATCH_ROWS", 2)
        code, data, stderr = cli("compress", folder, "-o", "-", "--table", "none", "--workers", 1)
    assert code == 0, stderr
    return data


def readers_of(data: bytes, tmp_path: Path) -> dict:
    """Exit code and stderr of `stats -`, `restore -` and `show -` fed data on stdin."""
    calls = {"stats": ["stats", "-", "--json"], "restore": ["restore", "-", "-o", tmp_path / "restored", "--table", "none"],
             "show": ["show", "-", "--id", "img_000.png", "-o", tmp_path / "shown.png"]}
    return {name: cli(*args, stdin=data)[::2] for name, args in calls.items()}


def test_a_whole_stream_reads_in_full_and_its_end_marker_is_an_empty_batch(stream, tmp_path):
    table = pa.ipc.open_stream(stream).read_all()  # any Arrow reader: the marker adds no row
    assert table.num_rows == 5
    for name, (code, stderr) in readers_of(stream, tmp_path).items():
        assert code == 0, (name, stderr)
    assert len(message_ends(stream)) == 1 + 3 + 1  # schema, three batches, the end marker


def test_a_stream_cut_at_any_batch_boundary_is_refused_by_every_reader(stream, tmp_path):
    ends = message_ends(stream)
    for cut in ends[:-1]:  # after the schema, after each batch; the last message is the end marker
        for name, (code, stderr) in readers_of(stream[:cut], tmp_path / str(cut)).items():
            assert code == 2, (name, cut, stderr)
            one_line_error(stderr, "standard input", "cut short")


def test_a_stream_cut_inside_a_message_is_refused_by_every_reader(stream, tmp_path):
    ends = message_ends(stream)
    for cut in (ends[0] + 3, (ends[1] + ends[2]) // 2, ends[-1] - 5):
        for name, (code, stderr) in readers_of(stream[:cut], tmp_path / str(cut)).items():
            assert code == 2, (name, cut, stderr)
            one_line_error(stderr, "standard input")


def test_a_stream_missing_only_the_arrow_end_bytes_after_the_marker_is_whole(stream, tmp_path):
    ends = message_ends(stream)
    for name, (code, stderr) in readers_of(stream[:ends[-1]], tmp_path).items():
        assert code == 0, (name, stderr)


def test_a_stream_stopped_by_fail_fast_is_unreadable_to_any_arrow_reader(tmp_path):
    folder = small_folder(tmp_path, 6, bad_at=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer.RowSink, "BATCH_ROWS", 2)
        code, data, stderr = cli("compress", folder, "-o", "-", "--fail-fast", "--workers", 1, "--table", "none")
    assert code == 1, stderr
    assert len(message_ends(data[:-8])) >= 3  # schema and the two batches before the bad image went out ...
    with pytest.raises(pa.ArrowInvalid):
        pa.ipc.open_stream(data).read_all()  # ... but no reader takes the stream for a whole one
    code, _, stderr = cli("stats", "-", stdin=data)
    assert code == 2 and "standard input" in stderr


def test_a_stream_stopped_by_sigterm_is_unreadable_to_any_arrow_reader(slow_folder, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(70):  # a first batch of 64 small images goes out, then the big ones take a while
        (folder / f"a_{k:03d}.png").write_bytes(bad.png(seed=k))
    for big in slow_folder.iterdir():
        os.symlink(big, folder / big.name)
    proc = start(["compress", folder, "-o", "-", "--workers", 1, "--no-progress"], tmp_path)
    out = tmp_path / "stdout.txt"
    wait_for(lambda: out.stat().st_size > 0, proc, "the first batch went out")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    data = out.read_bytes()
    with pytest.raises(pa.ArrowInvalid):
        pa.ipc.open_stream(data).read_all()
    code, _, stderr = cli("stats", "-", stdin=data)
    assert code == 2
    one_line_error(stderr, "standard input")


# ----------------------------------------------------------------- 7. restore writes each PNG whole or not at all

@pytest.fixture
def small_output(tmp_path) -> Path:
    folder = small_folder(mkdir(tmp_path / "src"), 5)
    out = tmp_path / "small.arrow"
    assert cli("compress", folder, "-o", out)[0] == 0
    return out


def assert_whole_pngs(folder: Path) -> list[str]:
    """Every file in folder is a complete PNG and nothing hidden is left; returns the names."""
    names = sorted(os.listdir(folder))
    assert [n for n in names if n.startswith(".")] == []
    for name in names:
        with Image.open(folder / name) as image:
            image.load()  # a truncated PNG raises here
    return names


def failing_save(after: int, fault: BaseException):
    """A PIL save that writes the first `after` images whole, then half an image and raises `fault`."""
    import io

    real, calls = Image.Image.save, []

    def save(self, fp, format=None, **params):
        calls.append(fp)
        if len(calls) <= after:
            return real(self, fp, format=format or "PNG", **params)
        data = io.BytesIO()
        real(self, data, format="PNG", **params)
        half = data.getvalue()[: len(data.getvalue()) // 2]
        if isinstance(fp, (str, Path)):
            Path(fp).write_bytes(half)
        else:
            fp.write(half)
        raise fault

    return save


@pytest.mark.parametrize("fault,code,words", [
    (KeyboardInterrupt(), 130, ["interrupted"]),
    (OSError(28, "No space left on device"), 2, ["No space left on device"]),
], ids=["Ctrl-C", "disk-full"])
def test_restore_that_fails_while_writing_a_png_leaves_no_partial_png(small_output, tmp_path, monkeypatch, fault, code, words):
    monkeypatch.setattr(Image.Image, "save", failing_save(2, fault))
    restored = tmp_path / "restored"
    got, _, stderr = cli("restore", small_output, "-o", restored, "--table", "none")
    assert got == code
    one_line_error(stderr, *words)
    assert assert_whole_pngs(restored) == ["img_000.png.png", "img_001.png.png"]


def test_restore_stopped_by_sigterm_leaves_only_whole_pngs(slow_folder, tmp_path):
    out = tmp_path / "big.arrow"
    assert cli("compress", slow_folder, "-o", out, "--workers", 2)[0] == 0
    restored = tmp_path / "restored"
    proc = start(["restore", out, "-o", restored, "--table", "none"], tmp_path)

    def written() -> list[str]:
        return [n for n in os.listdir(restored) if not n.startswith(".")] if restored.is_dir() else []

    wait_for(lambda: len(written()) >= 3, proc, "a few PNGs were written")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert 3 <= len(assert_whole_pngs(restored)) < 24


# A signal lands between two bytecodes: here, right after a temporary file was created and before
# the code that would remove it on failure has been entered. The CLI must still leave nothing.
SIGNAL_AFTER_CREATE = """
import sys
from pixelprune_cli import errors
from pixelprune_cli.storage import atomic
from pixelprune_cli.cli import cli
create, calls, when = atomic._create_new, [], int(sys.argv.pop(1))
def create_then_signalled(path):
    fd = create(path)
    calls.append(path)
    if len(calls) == when:
        raise errors.Terminated()
    return fd
atomic._create_new = create_then_signalled
sys.argv[0] = "pixelprune"
cli.main()
"""


@pytest.mark.parametrize("when", [1, 2, 4])
@pytest.mark.parametrize("command", ["restore", "compress"])
def test_a_signal_right_after_a_temporary_file_is_created_leaves_nothing(small_output, tmp_path, command, when):
    target = tmp_path / ("restored" if command == "restore" else "again.arrow")
    source = small_output if command == "restore" else small_folder(mkdir(tmp_path / "again"), 5)
    proc = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_CREATE, str(when), command, str(source), "-o",
                           str(target), "--table", "none"], capture_output=True, text=True, timeout=120)
    if command == "compress" and when > 2:  # a file output makes two temporaries (rows, errors): it completed
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    if command == "restore":
        assert len(assert_whole_pngs(target)) == when - 1
    else:
        assert [n for n in os.listdir(tmp_path) if n.startswith(".") or n.startswith("again.arrow")] == []


# The same, a step later: right after a lock or a shard folder's staging was set up.
SIGNAL_AFTER_SETUP = """
import sys
from pixelprune_cli import errors
from pixelprune_cli.storage import atomic
from pixelprune_cli.cli import cli
from pixelprune_cli.outputs import shards
cls = {"lock": atomic.TargetLock, "sink": shards.ShardedSink}[sys.argv.pop(1)]
set_up = cls.__init__
def set_up_then_signalled(self, *args, **kwargs):
    set_up(self, *args, **kwargs)
    raise errors.Terminated()
cls.__init__ = set_up_then_signalled
sys.argv[0] = "pixelprune"
cli.main()
"""


@pytest.mark.parametrize("what", ["lock", "sink"])
def test_a_signal_right_after_a_lock_or_staging_is_set_up_leaves_the_old_output_alone(old_output, tmp_path, what):
    out, before = old_output
    folder = small_folder(mkdir(tmp_path / "new"), 3)
    proc = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_SETUP, what, "compress", str(folder), "-o", f"{out}/",
                           "--overwrite", "--table", "none"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(out) == before  # nothing hidden either: no lock, no staging folder


def test_restore_overwrite_replaces_a_planted_symlink_instead_of_writing_through_it(small_output, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    restored = tmp_path / "restored"
    restored.mkdir()
    os.symlink(victim, restored / "img_000.png.png")
    code, _, stderr = cli("restore", small_output, "-o", restored, "--overwrite", "--table", "none")
    assert code == 0, stderr
    assert victim.read_bytes() == b"precious"
    assert not (restored / "img_000.png.png").is_symlink()
    assert len(assert_whole_pngs(restored)) == 5


def test_restore_refuses_a_dangling_symlink_at_a_target_name(small_output, tmp_path):
    restored = tmp_path / "restored"
    restored.mkdir()
    aim = tmp_path / "would_be_created.png"
    os.symlink(aim, restored / "img_000.png.png")
    code, _, stderr = cli("restore", small_output, "-o", restored, "--table", "none")
    assert code == 2
    one_line_error(stderr, "img_000.png.png", "already exists", "--overwrite")
    assert not aim.exists()


# ----------------------------------------------------------------- 8. --resume verifies committed shards

def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "torn": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "bit-flip-middle": lambda p: flip_byte(p, 0.5),
    "bit-flip-footer": lambda p: flip_byte(p, 0.999),
    "same-size-zeros": lambda p: p.write_bytes(bytes(p.stat().st_size)),
    "symlink-to-a-copy": lambda p: (p.with_name("copy.bin").write_bytes(p.read_bytes()), p.unlink(),
                                    os.symlink(p.with_name("copy.bin"), p)),
    "errors-log-edited": lambda p: p.with_name("part-00001.errors.jsonl").write_text('{"id": "x"}\n'),
    "errors-log-missing": lambda p: p.with_name("part-00001.errors.jsonl").unlink(),
}


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path, Path]:
    """The same 6 images (one bad) to out/ and full/ in shards of 2: byte-identical folders."""
    folder = small_folder(tmp_path, 6, bad_at=2)
    out, full = tmp_path / "out", tmp_path / "full"
    for target in (out, full):
        assert cli("compress", folder, "-o", f"{target}/", "--shard-size", 2)[0] == 1
    assert tree(out) == tree(full)
    return folder, out, full


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_redoes_a_damaged_committed_shard(two_runs, damage):
    folder, out, full = two_runs
    DAMAGE[damage](out / "part-00001.arrow")
    code, stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume", "--json")
    assert code == 1, stderr  # the bad image in shard 1 failed again
    summary = json.loads(stdout)
    assert summary["damaged_shards"] == ["part-00001.arrow"]
    assert (summary["images"], summary["resumed_shards"]) == (2, 2)  # only shard 1 was redone
    (out / "copy.bin").unlink(missing_ok=True)  # the symlink's target: the test's file, not the output's
    assert tree(out) == tree(full)  # byte for byte what an undamaged run wrote


def test_resume_never_reads_or_removes_files_a_manifest_names_outside_the_folder(two_runs, tmp_path):
    folder, out, full = two_runs
    secret = tmp_path / "secret.txt"
    secret.write_text('{"id": "secret"}\n')
    state = manifest(out)
    state["complete"] = False
    state["shards"][0]["errors"] = "../secret.txt"
    state["shards"][1]["errors"] = str(secret)
    state["shards"][2]["file"] = "../full/part-00002.arrow"
    (out / "manifest.json").write_text(json.dumps(state))
    code, stdout, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume", "--json")
    assert code == 1, stderr
    assert "secret" not in (out / "errors.jsonl").read_text()
    assert secret.read_text() == '{"id": "secret"}\n' and (full / "part-00002.arrow").exists()
    assert json.loads(stdout)["images"] == 6  # no listed shard could be trusted: all redone
    assert tree(out) == tree(full)


@pytest.mark.parametrize("change", [["--keep-columns", "kind"], ["--keep-columns", "name,kind"], [],
                                    ["--keep-columns", "name", "--compression", "lz4"]],
                         ids=["other-column", "more-columns", "no-columns", "compression"])
def test_resume_with_options_that_change_the_files_is_refused_and_touches_nothing(tmp_path, change):
    samples = SAMPLES / "samples.parquet"  # 10 rows: shards [0,4) [4,8) [8,10)
    out = tmp_path / "out"
    assert cli("compress", samples, "-o", f"{out}/", "--shard-size", 4, "--keep-columns", "name")[0] == 0
    (out / "part-00001.arrow").unlink()  # a shard to redo: it must not come out with another schema
    before = snapshot(out)
    code, _, stderr = cli("compress", samples, "-o", f"{out}/", "--shard-size", 4, *change, "--resume")
    assert code == 2
    one_line_error(stderr, "different configuration", "--overwrite")
    assert snapshot(out) == before


# ----------------------------------------------------------------- 9. one run at a time on an output

@pytest.mark.parametrize("kind,second", [("file", ["--overwrite"]), ("file", []), ("folder", ["--overwrite"]),
                                         ("folder", ["--resume"])],
                         ids=["file-overwrite", "file-both-new", "folder-overwrite", "folder-resume"])
def test_a_second_run_on_an_output_being_written_is_refused(slow_folder, tmp_path, kind, second):
    target = tmp_path / "out.arrow" if kind == "file" else tmp_path / "out"
    arg = str(target) if kind == "file" else f"{target}/"
    first_dir, second_dir = mkdir(tmp_path / "first"), mkdir(tmp_path / "second")
    slower = mkdir(tmp_path / "slower")  # 8 x 24 big images: seconds of work, while a second run starts
    for copy in range(8):
        for big in slow_folder.iterdir():
            os.symlink(big, slower / f"{copy}_{big.name}")
    first = start(["compress", slower, "-o", arg, "--workers", 1, "--no-progress", "--table", "none"], first_dir)
    begun = (lambda: (tmp_path / f".out.arrow.partial-{first.pid}").exists()) if kind == "file" else \
        (lambda: (target / "manifest.json").exists())
    wait_for(begun, first, "the first run opened its output")
    small = small_folder(mkdir(tmp_path / "small"), 2)
    code, _, stderr = run_process(["compress", small, "-o", arg, "--no-progress", *second], second_dir)
    assert code == 2
    one_line_error(stderr, "being written by another run", f"pid {first.pid}")
    assert first.poll() is None  # the refusal did not wait for, or disturb, the first run
    code, _, stderr = finish(first, first_dir)
    assert code == 0, stderr
    read = read_arrow(target) if kind == "file" else shard_rows(target)
    assert sorted(read.column("id").to_pylist()) == sorted(p.name for p in slower.iterdir())
    assert hidden_leftovers(tmp_path / "out" if kind == "folder" else tmp_path) == []


def test_a_lock_held_in_this_process_names_its_holder(tmp_path):
    folder = small_folder(tmp_path, 1)
    held = atomic.TargetLock(tmp_path / ".out.parquet.pixelprune-lock", "out.parquet")
    try:
        code, _, stderr = cli("compress", folder, "-o", tmp_path / "out.parquet")
        assert code == 2
        one_line_error(stderr, "out.parquet", "being written by another run", f"pid {os.getpid()}")
        assert not (tmp_path / "out.parquet").exists()
    finally:
        held.release()
    assert cli("compress", folder, "-o", tmp_path / "out.parquet")[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["in", "out.parquet", "out.parquet.errors.jsonl"]


def test_a_lock_file_a_killed_run_left_is_taken_over_and_removed(tmp_path):
    folder = small_folder(tmp_path, 1)
    (tmp_path / ".out.arrow.pixelprune-lock").write_text("pixelprune pid 999999999\n")
    code, _, stderr = cli("compress", folder, "-o", tmp_path / "out.arrow")
    assert code == 0, stderr
    assert sorted(os.listdir(tmp_path)) == ["in", "out.arrow", "out.arrow.errors.jsonl"]


@pytest.mark.parametrize("planted", ["symlink", "user-file"])
def test_something_else_at_the_lock_name_is_refused_and_left_alone(tmp_path, planted):
    folder = small_folder(tmp_path, 1)
    lock = tmp_path / "out" / ".pixelprune-lock"
    lock.parent.mkdir()
    aim = tmp_path / "aim.txt"
    if planted == "symlink":
        os.symlink(aim, lock)
    else:
        lock.write_text("my own notes\n")
    code, _, stderr = cli("compress", folder, "-o", f"{tmp_path / 'out'}/")
    assert code == 2
    one_line_error(stderr, ".pixelprune-lock")
    assert sorted(os.listdir(lock.parent)) == [".pixelprune-lock"]
    assert not aim.exists()
    if planted == "user-file":
        assert lock.read_text() == "my own notes\n"


# ----------------------------------------------------------------- 10. output I/O errors: one line, exit 2, nothing left

def _mount(*args: str) -> str | None:
    """Run mount; None when it worked, else why not."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """An empty 1 MiB tmpfs: the samples' output (4 MB) does not fit."""
    disk = mkdir(tmp_path / "disk")
    why = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    if why:
        pytest.skip(f"full-disk tests mount a 1 MiB tmpfs, which needs root: {why}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.fixture
def read_only(tmp_path) -> tuple[Path, Path]:
    """(src, ro): ro is a read-only bind mount of src (files put in src show in ro)."""
    src, ro = mkdir(tmp_path / "src-rw"), mkdir(tmp_path / "ro")
    why = _mount("--bind", "-o", "ro", str(src), str(ro))
    if why:
        pytest.skip(f"read-only tests bind-mount a folder read-only, which needs root: {why}")
    if os.access(ro, os.W_OK) and not _really_read_only(ro):
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
        pytest.skip("this kernel made the bind mount writable (old util-linux ignores -o ro on --bind)")
    yield src, ro
    subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def _really_read_only(folder: Path) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def disk_error(stderr: str, *words: str) -> None:
    one_line_error(stderr, "cannot write", *words)


@pytest.mark.parametrize("name", ["out.arrow", "out.parquet", "out/"])
def test_compress_to_a_full_disk_is_one_line_and_leaves_no_temporary_file(full_disk, name):
    shards = ["--shard-size", 4] if name.endswith("/") else []  # a single file has no shards to size
    code, _, stderr = cli("compress", SAMPLES, "-o", f"{full_disk}/{name}", *shards, "--workers", 1)
    assert code == 2
    disk_error(stderr, "No space left on device")
    left = [p for p in full_disk.rglob("*")]
    assert [p.name for p in left if p.name.startswith(".")] == []  # no temporary, lock or staging
    if name == "out/":  # committed shards may stay for --resume, whole and listed
        state = manifest(full_disk / "out")
        assert sorted(p.name for p in (full_disk / "out").glob("part-*.arrow")) == [s["file"] for s in state["shards"]]
    else:
        assert left == []


@pytest.mark.parametrize("name", ["old.arrow", "old/"])
def test_overwrite_on_a_full_disk_keeps_the_old_output(full_disk, tmp_path, name):
    folder = small_folder(tmp_path, 1)
    target = f"{full_disk}/{name}"
    assert cli("compress", folder, "-o", target)[0] == 0
    before = {k: v for k, v in tree(full_disk).items()}
    shards = ["--shard-size", 4] if name.endswith("/") else []  # a single file has no shards to size
    code, _, stderr = cli("compress", SAMPLES, "-o", target, "--overwrite", *shards, "--workers", 1)
    assert code == 2
    disk_error(stderr, "No space left on device")
    assert {k: v for k, v in tree(full_disk).items() if not k.startswith(".") and "/." not in k} == before


def test_restore_and_show_to_a_full_disk_are_one_line_and_leave_only_whole_pngs(full_disk, tmp_path):
    out = tmp_path / "samples.arrow"
    assert cli("compress", SAMPLES, "-o", out)[0] == 0
    code, _, stderr = cli("restore", out, "-o", full_disk / "restored", "--table", "none")
    assert code == 2
    disk_error(stderr, "No space left on device")
    assert_whole_pngs(full_disk / "restored")
    (full_disk / "filler").write_bytes(b"")
    with open(full_disk / "filler", "wb") as filler:  # the rest of the disk, but a few KB
        try:
            filler.write(bytes(4 << 20))
        except OSError:
            pass
    code, _, stderr = cli("show", SAMPLES / "photo.jpg", "-o", full_disk / "photo.png")
    assert code == 2
    disk_error(stderr, "photo.png", "No space left on device")
    assert sorted(os.listdir(full_disk)) == ["filler", "restored"]


def test_a_stream_to_a_full_stdout_is_one_line(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    folder = small_folder(tmp_path, 3)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "pixelprune_cli", "compress", folder, "-o", "-", "--no-progress"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2
    disk_error(done.stderr, "standard output", "No space left on device")


@pytest.mark.parametrize("command", ["compress-file", "compress-folder", "compress-over-existing", "restore",
                                     "restore-into-existing", "show"])
def test_a_read_only_location_is_one_line_and_touches_nothing(read_only, tmp_path, command):
    src, ro = read_only
    folder = small_folder(tmp_path, 2)
    out = tmp_path / "small.arrow"
    assert cli("compress", folder, "-o", out)[0] == 0
    assert cli("compress", folder, "-o", f"{src}/existing/")[0] == 0
    assert cli("restore", out, "-o", src / "pngs", "--table", "none")[0] == 0
    before = tree(src)
    args = {
        "compress-file": ["compress", folder, "-o", ro / "new.arrow"],
        "compress-folder": ["compress", folder, "-o", f"{ro}/new/"],
        "compress-over-existing": ["compress", folder, "-o", f"{ro}/existing/", "--overwrite"],
        "restore": ["restore", out, "-o", ro / "restored"],
        "restore-into-existing": ["restore", out, "-o", ro / "pngs", "--overwrite"],
        "show": ["show", SAMPLES / "chart.png", "-o", ro / "chart.png"],
    }[command]
    code, _, stderr = cli(*args)
    assert code == 2
    disk_error(stderr, "Read-only file system")
    assert tree(src) == before
