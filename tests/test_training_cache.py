"""load_cache over pixelprune outputs (files, shard folders by manifest, a store) and PrunedCollator on its rows.

The rows the cache gives must collate to exactly the tensors the same images'
`prune_image` rows give (the Arrow-buffer path against the Python one), and
bad input must cost one clear line.
"""

from __future__ import annotations

import shutil
import warnings

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch, transformers, datasets) is not installed")
pytest.importorskip("transformers", reason="the train extra (torch, transformers, datasets) is not installed")
datasets = pytest.importorskip("datasets", reason="the train extra (datasets) is not installed")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pixelprune_cli import api, prune_image  # noqa: E402
from pixelprune_cli.coding.pipeline import CodingConfig  # noqa: E402
from pixelprune_cli.errors import InputError  # noqa: E402
from pixelprune_cli.inputs.pieces import SourceOptions  # noqa: E402
from pixelprune_cli.training import PrunedCollator, load_cache  # noqa: E402

import hf_models as tiny  # noqa: E402
from conftest import SAMPLES  # noqa: E402

NAMES = ["form.png", "table.png", "slide.png", "gui_window.png", "chart.png"]
PRESET = tiny.small_preset("qwen3_vl", 160_000)


def conversation(k):
    return [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "read the page"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a form" + " ." * k}]}]


def image_table(path):
    table = pa.table({"image": [{"bytes": (SAMPLES / n).read_bytes(), "path": n} for n in NAMES],
                      "messages": [conversation(k) for k in range(len(NAMES))]})
    pq.write_table(table, path)
    return path


def compress(inputs, output, keep=("messages",), preset=PRESET):
    api.compress([str(inputs)], str(output), CodingConfig(preset=preset), SourceOptions(keep_columns=keep),
                 shard_size=2 if str(output).endswith("/") else None)
    return str(output)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    table = image_table(root / "data.parquet")
    return {"table": table, "folder": compress(table, f"{root}/shards/"), "parquet": compress(table, root / "c.parquet"),
            "root": root}


def ids(dataset):
    return [row["id"][0].as_py() for row in dataset]


def test_a_shard_folder_gives_every_row_once_with_its_carried_columns_one_datasets_shard_per_file(cache):
    dataset = load_cache(cache["folder"])
    assert isinstance(dataset, datasets.IterableDataset)
    assert dataset.n_shards == 3
    rows = list(dataset)
    assert sorted(r["id"][0].as_py() for r in rows) == sorted(f"data.parquet#{k}" for k in range(len(NAMES)))
    assert rows[4]["messages"][0].as_py() == conversation(4)


def test_a_shard_folder_is_read_through_its_manifest_never_a_listing(cache, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(cache["folder"], folder)
    shutil.copy(folder / "part-00000.arrow", folder / "part-00007.arrow")  # a shard no manifest lists
    assert len(ids(load_cache(str(folder)))) == len(NAMES)
    (folder / "manifest.json").unlink()
    with pytest.raises(InputError, match=r"no manifest\.json; a shard folder is read through its manifest"):
        load_cache(str(folder))


def test_shuffle_is_seeded_and_a_resumed_epoch_gives_the_rest(cache):
    dataset = load_cache(cache["folder"]).shuffle(seed=3, buffer_size=2)
    order = ids(dataset)
    assert order == ids(load_cache(cache["folder"]).shuffle(seed=3, buffer_size=2))
    assert sorted(order) == sorted(ids(load_cache(cache["folder"])))
    seen = []
    for row in dataset:
        seen.append(row["id"][0].as_py())
        if len(seen) == 2:
            state = dataset.state_dict()
            break
    resumed = load_cache(cache["folder"]).shuffle(seed=3, buffer_size=2)
    resumed.load_state_dict(state)
    rest = ids(resumed)
    assert sorted(seen + rest) == sorted(order)


def test_a_damaged_shard_is_an_error_naming_it_or_skipped_with_a_warning(cache, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(cache["folder"], folder)
    shard = folder / "part-00001.arrow"
    shard.write_bytes(shard.read_bytes()[:300])
    with pytest.raises(InputError, match=r"part-00001\.arrow"):
        list(load_cache(str(folder)))
    with pytest.warns(UserWarning, match="skipping a damaged shard: .*part-00001.arrow"):
        rows = ids(load_cache(str(folder), on_bad_shard="skip"))
    assert rows == ["data.parquet#0", "data.parquet#1", "data.parquet#4"]


def expected_batch(collator, picks):
    rows = [{**prune_image(SAMPLES / NAMES[k], preset=PRESET), "messages": conversation(k)} for k in picks]
    return collator(rows)


@pytest.mark.parametrize("output", ["folder", "parquet"])
def test_cached_rows_collate_to_exactly_what_the_images_own_rows_give(cache, output):
    collator = PrunedCollator(tiny.tokenizer(), cache[output])
    streamed = list(load_cache(cache[output]))
    batch = collator(streamed[:3])
    expected = expected_batch(collator, [0, 1, 2])
    assert batch.keys() == expected.keys()
    for key in batch:
        assert torch.equal(batch[key], expected[key]), key
    stored = load_cache(cache[output], streaming=False, cache_dir=str(cache["root"] / f"hf-{output}"))
    assert isinstance(stored, datasets.Dataset) and len(stored) == len(NAMES)
    again = collator([stored[k] for k in (0, 1, 2)])
    assert all(torch.equal(again[key], expected[key]) for key in expected)


def test_the_cache_on_a_store_reads_like_the_local_folder(cache, s3, tmp_path):
    url = compress(cache["table"], f"s3://{s3.new_bucket()}/cache/")
    assert ids(load_cache(url)) == ids(load_cache(cache["folder"]))
    collator = PrunedCollator(tiny.tokenizer(), url)
    assert torch.equal(collator(list(load_cache(url))[:2])["pixel_values"],
                       collator(list(load_cache(cache["folder"]))[:2])["pixel_values"])


def test_rows_without_the_conversation_name_the_keep_columns_flag(cache, tmp_path):
    bare = compress(cache["table"], tmp_path / "bare.arrow", keep=())
    with pytest.raises(ValueError, match=r"no 'messages' column .*--keep-columns messages"):
        PrunedCollator(tiny.tokenizer(), bare)(list(load_cache(bare))[:2])


def test_a_placeholder_count_that_differs_from_the_rows_images_is_refused(cache):
    row = {**prune_image(SAMPLES / "form.png", preset=PRESET), "id": "two-placeholders",
           "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}]}
    with pytest.raises(ValueError, match=r"'two-placeholders': the conversation holds 2 image placeholders .* 1 image"):
        PrunedCollator(tiny.tokenizer(), PRESET.to_meta())([row])


def test_rows_of_another_preset_or_backend_than_the_processor_are_refused(cache):
    class Processor:  # Qwen2-VL's image processor (patch 14), a PIL-backend class
        tokenizer = tiny.tokenizer()
        image_processor = tiny.image_processor(tiny.small_preset("qwen2_vl", 160_000))

    with pytest.raises(ValueError, match="patch_size is 14 but the rows were coded for preset 'qwen3-vl'"):
        PrunedCollator(Processor(), cache["folder"])
    Processor.image_processor = tiny.image_processor(PRESET)
    with pytest.raises(ValueError, match=r"coded with --backend torchvision .* but the processor is"):
        PrunedCollator(Processor(), {**PRESET.to_meta(), "backend": "torchvision"})


def test_max_length_never_cuts_an_image_refused_or_dropped_as_asked(cache):
    rows = list(load_cache(cache["folder"]))[:2]
    kept = [r["kept"][0].as_py() for r in rows]
    longest = max(len(ids) for ids in PrunedCollator(tiny.tokenizer(), cache["folder"])(rows)["attention_mask"])
    with pytest.raises(ValueError, match=r"its images reach token .* past max_length=.*; an image is never cut"):
        PrunedCollator(tiny.tokenizer(), cache["folder"], max_length=min(kept))(rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = PrunedCollator(tiny.tokenizer(), cache["folder"], max_length=min(kept) + 8, too_long="drop")(rows)
    assert len(batch["input_ids"]) == 1 and "row left out" in str(caught[0].message)
    assert int((batch["input_ids"] == tiny.TOKEN_IDS["image_token_id"]).sum()) == min(kept)
    cut = PrunedCollator(tiny.tokenizer(), cache["folder"], max_length=max(kept) + 8)(rows)
    assert cut["input_ids"].shape[1] == max(kept) + 8 < longest  # the text after the images is cut, not an image


@pytest.mark.parametrize("preset_name", ["qwen2-vl", "qwen3-vl"])
@pytest.mark.parametrize("backend", ["pil", "torchvision"])
def test_the_pixel_kernel_equals_the_numpy_lookup_exactly(preset_name, backend):
    from pixelprune_cli.coding.presets import resolve_preset
    from pixelprune_cli.model import normalised_pixels, row_pixels
    from pixelprune_cli.training.pixels import pixel_values

    preset = resolve_preset(preset_name)
    random = np.random.default_rng(1).integers(0, 256, (7, preset.token_bytes), dtype=np.uint8)
    real = row_pixels(prune_image(SAMPLES / "gui_window.png", preset=preset)["pixels"], preset.token_bytes)
    for kept in (random, real):
        ours, oracle = pixel_values(kept, preset, backend), normalised_pixels(kept, preset, backend)
        assert ours.dtype == oracle.dtype and ours.shape == oracle.shape
        assert np.array_equal(ours, oracle)


def test_a_rewritten_output_is_not_served_from_a_stale_datasets_cache(tmp_path):
    few = tmp_path / "few.parquet"
    pq.write_table(pq.read_table(image_table(tmp_path / "all.parquet")).slice(0, 2), few)
    output = compress(few, tmp_path / "out.arrow")
    hf_cache = str(tmp_path / "hf")
    assert len(load_cache(output, streaming=False, cache_dir=hf_cache)) == 2
    api.compress([str(tmp_path / "all.parquet")], output, CodingConfig(preset=PRESET),
                 SourceOptions(keep_columns=("messages",)), overwrite=True)
    assert len(load_cache(output, streaming=False, cache_dir=hf_cache)) == len(NAMES)


# -- multi-image rows, as `compress` writes a TRL `images` column ------------------------------------------

TRAJECTORIES = [(["form.png", "table.png"], [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                                        {"type": "text", "text": "two pages"}]},
                                            {"role": "assistant", "content": [{"type": "text", "text": "a form ."}]}]),
                (["slide.png", "chart.png", "gui_window.png"],
                 [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"},
                                               {"type": "image"}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "a slide , a chart , a window"}]}])]


@pytest.fixture(scope="module")
def multi_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    outputs = {"root": root}
    for name, output in (("arrow", "c.arrow"), ("parquet", "c.parquet"), ("folder", "shards/")):
        (root / name).mkdir()
        outputs[name] = tiny.multi_image_cache(root / name, PRESET, TRAJECTORIES, output)
    return outputs


@pytest.mark.parametrize("output", ["arrow", "parquet", "folder"])
def test_multi_image_rows_collate_to_exactly_what_each_images_own_row_gives(multi_cache, output):
    collator = PrunedCollator(tiny.tokenizer(), multi_cache[output])
    alone = [{"id": str(k), "messages": messages, "images": [prune_image(SAMPLES / n, preset=PRESET) for n in names]}
             for k, (names, messages) in enumerate(TRAJECTORIES)]
    expected = collator(alone)
    assert len(expected["image_grid_thw"]) == 5
    streamed = list(load_cache(multi_cache[output]))
    stored = load_cache(multi_cache[output], streaming=False, cache_dir=str(multi_cache["root"] / f"hf-{output}"))
    for rows in (streamed, [stored[0], stored[1]], stored.with_format(None)):  # Arrow rows, and dicts of lists
        batch = collator(list(rows))
        assert batch.keys() == expected.keys()
        for key in batch:
            assert torch.equal(batch[key], expected[key]), key


def test_a_multi_image_row_with_another_placeholder_count_is_refused_in_one_line(tmp_path):
    output = tiny.multi_image_cache(tmp_path, PRESET, [(["form.png", "table.png"], conversation(0))], "one.arrow")
    with pytest.raises(ValueError, match=r"^row 'trajectories.parquet#0': the conversation holds 1 image "
                                         r"placeholders \(<\|image_pad\|>\) but the row has 2 image\(s\)$"):
        PrunedCollator(tiny.tokenizer(), output)(list(load_cache(output)))
