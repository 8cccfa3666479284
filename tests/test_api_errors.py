"""The public API raises the project's error types, each still a ValueError where callers caught one."""

from __future__ import annotations

import numpy as np
import pytest

import pixelprune_cli as pp
from pixelprune_cli import api
from pixelprune_cli.errors import BadImage, BadRow, ConfigError, PixelpruneError

from conftest import SAMPLE_IMAGES


def test_prune_image_raises_bad_image_with_its_stage_for_bytes_that_do_not_decode():
    with pytest.raises(BadImage, match=r"^page\.png: decode failed: ") as caught:
        pp.prune_image(b"not an image", image_id="page.png")
    assert caught.value.stage == "decode"
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PixelpruneError)


def test_prune_image_raises_config_error_for_an_argument_of_the_wrong_kind():
    with pytest.raises(ConfigError, match=r"PIL\.Image\.fromarray"):
        pp.prune_image(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("options, named", [({"method": "zigzag"}, "unknown method"), ({"metric": "l7"}, "unknown metric"),
                                            ({"tau": -1.0}, "tau must be")])
def test_prune_tokens_raises_config_error_for_bad_options(options, named):
    with pytest.raises(ConfigError, match=named):
        pp.prune_tokens(np.zeros((64, 64, 3), np.uint8), 32, **options)


def test_prune_tokens_raises_config_error_for_an_image_not_tiled_by_tokens():
    with pytest.raises(ConfigError, match="not a positive multiple"):
        pp.prune_tokens(np.zeros((40, 64, 3), np.uint8), 32)


def test_compress_raises_config_error_for_a_shard_size_below_one(tmp_path):
    with pytest.raises(ConfigError, match="shard_size must be >= 1"):
        api.compress([str(SAMPLE_IMAGES[0])], str(tmp_path / "out") + "/", shard_size=0)


def test_model_inputs_raises_bad_row_for_a_row_that_is_not_an_output_row():
    with pytest.raises(BadRow, match=r"^row 'x': no 'kept_index'"):
        pp.model_inputs({"id": "x", "grid_thw": "nonsense"})
    assert issubclass(BadRow, ValueError)
