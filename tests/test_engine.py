"""One entry for every engine: api.compress picks the engine, and each refuses what it cannot do before touching anything."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from pixelprune_cli import api
from pixelprune_cli.cli.cli import main
from pixelprune_cli.errors import ConfigError
from pixelprune_cli.run.engine import LocalEngine
from pixelprune_cli.run.job import RunOptions

from conftest import SAMPLES

IMAGE = SAMPLES / "chart.png"


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/out.arrow", "--engine", "ray"], "--engine ray writes shards: give a folder, -o DIR/"),
    (["-o", "{tmp}/out/", "--engine", "ray", "--fail-fast"], "--fail-fast is not supported with --engine ray"),
    (["-o", "{tmp}/out.arrow", "--ray-address", "auto"], "--ray-address needs --engine ray"),
])
def test_options_an_engine_cannot_honour_are_refused_before_anything_is_written(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["compress", str(IMAGE), "--no-progress", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"pixelprune: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_engine_ray_without_ray_installed_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where Ray is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    result = CliRunner().invoke(main, ["compress", str(IMAGE), "--no-progress", "-o", f"{tmp_path}/out/", "--engine", "ray"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "pixelprune: error: --engine ray needs Ray Data: pip install 'pixelprune[ray]'"
    assert list(tmp_path.iterdir()) == []  # no out/manifest.json to refuse the same command once Ray is there


def test_engine_ray_that_cannot_start_writes_nothing(tmp_path, monkeypatch):
    from pixelprune_cli.errors import PixelpruneError
    from pixelprune_cli.run import ray_engine

    def unreachable(address=None, num_cpus=None):
        raise PixelpruneError(f"cannot reach the Ray cluster at {address}")

    monkeypatch.setattr(ray_engine, "import_ray", lambda: None)
    monkeypatch.setattr(ray_engine, "connect", unreachable)
    result = CliRunner().invoke(main, ["compress", str(IMAGE), "--no-progress", "-o", f"{tmp_path}/out/", "--engine", "ray",
                                       "--ray-address", "10.0.0.1:6379"])
    assert result.exit_code == 2, result.output
    assert "cannot reach the Ray cluster at 10.0.0.1:6379" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_engine_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown engine 'spark'; choose local or ray"):
        api.compress([str(IMAGE)], str(tmp_path / "out.arrow"), run=RunOptions(engine="spark", progress=False))
    assert list(tmp_path.iterdir()) == []


def test_shard_size_and_format_default_to_the_engines(tmp_path):
    """Local shards: the local engine's size and format, whatever the Ray engine's are."""
    import json

    api.compress([str(SAMPLES)], str(tmp_path / "out") + "/", run=RunOptions(workers=1, progress=False))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["shard_size"], manifest["format"]) == (LocalEngine.shard_size, LocalEngine.shard_format)
    assert [s["file"] for s in manifest["shards"]] == [f"part-00000.{LocalEngine.shard_format}"]


def test_shard_size_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        api.compress([str(SAMPLES)], str(tmp_path / "out") + "/", run=RunOptions(progress=False), shard_size=0)
    assert list(tmp_path.iterdir()) == []
