"""The Python API as a notebook user first meets it: names for presets, one path as one input, dir() of the package."""

from __future__ import annotations

from pathlib import Path

import pytest

import pixelprune_cli as pp
from pixelprune_cli.coding.presets import PRESETS
from pixelprune_cli.errors import ConfigError

from conftest import SAMPLE_IMAGES, SAMPLES, read_arrow, small_folder

QUIET = pp.RunOptions(progress=False)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_coding_config_takes_a_preset_by_name(name):
    config = pp.CodingConfig(preset=name)
    assert config.preset == PRESETS[name]
    assert config.preset.token_size == PRESETS[name].patch_size * PRESETS[name].merge_size
    assert config == pp.CodingConfig(preset=PRESETS[name])  # the same config as the Preset gives


def test_coding_config_refuses_an_unknown_preset_name_or_type_clearly():
    with pytest.raises(ConfigError, match="unknown preset 'qwen9'; choose one of"):
        pp.CodingConfig(preset="qwen9")
    with pytest.raises(ConfigError, match=r"preset must be a preset name .* or a Preset, got int"):
        pp.CodingConfig(preset=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("as_given", [str, Path], ids=["str", "Path"])
def test_compress_and_stats_take_one_folder_path_as_one_input(tmp_path, as_given):
    folder = small_folder(tmp_path, 3)
    out = tmp_path / "out.arrow"
    summary = pp.compress(as_given(f"{folder}/"), as_given(str(out)), run=QUIET)
    assert summary.images == summary.written == 3
    assert read_arrow(out).column("id").to_pylist() == [f"img_{k:03d}.png" for k in range(3)]
    assert pp.stats(as_given(str(folder)), run=QUIET).images == 3
    assert pp.stats(as_given(str(out))).images == 3  # an output, read back


def test_compress_still_takes_a_list_of_paths(tmp_path):
    summary = pp.compress([SAMPLES / "chart.png", str(SAMPLE_IMAGES[-1])], tmp_path / "out.arrow", run=QUIET)
    assert summary.images == 2


def test_dir_of_the_package_lists_its_public_names_before_they_are_imported():
    names = dir(pp)
    for name in ("compress", "stats", "restore", "CodingConfig", "RunOptions", "SourceOptions", "prune_image",
                 "prune_tokens", "model_inputs", "PRESETS", "resolve_preset", "__version__"):
        assert name in names, name
    assert set(pp.__all__) <= set(names)
