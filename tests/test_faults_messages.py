"""Messages that must be true: --resume with --overwrite, and what "wrote ..." counts."""

from __future__ import annotations

from pixelprune_cli import api
from pixelprune_cli.outputs.manifest import is_shard_file

from conftest import cli, one_line_error, small_folder, snapshot


def test_resume_with_overwrite_is_refused_as_contradictory_and_touches_nothing(tmp_path):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)[0] == 0
    before = snapshot(out)
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--resume", "--overwrite")
    assert code == 2
    one_line_error(stderr, "--resume", "--overwrite", "one of the two")
    assert snapshot(out) == before


def test_resume_with_other_options_says_to_use_overwrite_instead_of_resume(tmp_path):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out"
    assert cli("compress", folder, "-o", f"{out}/", "--shard-size", 2)[0] == 0
    code, _, stderr = cli("compress", folder, "-o", f"{out}/", "--shard-size", 2, "--tau", "0.1", "--resume")
    assert code == 2
    one_line_error(stderr, "pass --overwrite instead of --resume")


def test_the_size_of_a_shard_folder_output_counts_only_the_files_pixelprune_wrote(tmp_path):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.bin").write_bytes(bytes(1 << 20))  # the user's, beside the shards
    summary = api.compress([str(folder)], f"{out}/", shard_size=2)
    ours = [p for p in out.iterdir() if is_shard_file(p.name) or p.name in ("manifest.json", "errors.jsonl")]
    assert len(ours) == 6  # two shards, their error logs, the manifest, the merged error log
    assert summary.bytes_written is not None and summary.bytes_written.size == sum(p.stat().st_size for p in ours)
