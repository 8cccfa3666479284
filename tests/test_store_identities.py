"""URLs a user names, on a real S3 server (SeaweedFS on 127.0.0.1): awkward secrets work and are never shown by
any command, a read-only identity is refused before any image is coded, a URL ending in '/' names the prefix,
and an output is never one of the inputs."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import SAMPLE_IMAGES, cli, one_line_error, read_arrow
from s3server import (
    ACCESS_KEY,
    AT_KEY,
    AT_SECRET,
    AWKWARD_KEY,
    AWKWARD_SECRET,
    READONLY_KEY,
    READONLY_SECRET,
    SECRET_KEY,
)
from test_objectstore import local_copy, stored_names, upload_folder


def with_key(url: str, key: str, secret: str, encode: bool = True) -> str:
    return url.replace("s3://", f"s3://{key}:{quote(secret, safe='') if encode else secret}@", 1)


def marker_words(secret: str) -> list[str]:
    import re

    return re.findall(r"W[a-z0-9]{3,4}Z", secret)


def stored_texts(server, url: str) -> list[str]:
    """Every manifest and error log under a folder of the store, as text."""
    import pyarrow.fs as pafs

    fs = server.filesystem()
    texts = []
    for info in fs.get_file_info(pafs.FileSelector(url.removeprefix("s3://"), recursive=True, allow_not_found=True)):
        if info.path.endswith((".json", ".jsonl")):
            with fs.open_input_stream(info.path) as source:
                texts.append(source.read().decode())
    return texts


@pytest.mark.parametrize(("key", "secret", "encode"), [(AWKWARD_KEY, AWKWARD_SECRET, True), (AT_KEY, AT_SECRET, False)],
                         ids=["percent-encoded", "unencoded-at"])
def test_every_command_works_with_an_awkward_secret_and_never_shows_it(s3, tmp_path, monkeypatch, key, secret, encode):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bucket = s3.new_bucket()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    url = with_key(upload_folder(s3, bucket, [*SAMPLE_IMAGES[:2], broken]), key, secret, encode)
    out, table, picture = (with_key(f"s3://{bucket}/{name}", key, secret, encode)
                           for name in ("out/", "table.parquet", "sheet.png"))
    image = local_copy(tmp_path, SAMPLE_IMAGES[:1]) / SAMPLE_IMAGES[0].name
    runs = [(["compress", url, "-o", out, "--shard-size", "2"], 1, "wrote 2 rows"),
            (["compress", url, "-o", table, "--json"], 1, '"failed": 1'),
            (["compress", url, "-o", out], 2, "already holds"),
            (["compress", url + "missing/", "-o", tmp_path / "x.arrow"], 2, "no such file"),
            (["compress", url, "-o", url], 2, "overlaps the input"),
            (["stats", out], 0, "pixelprune stats"), (["stats", table, "--json"], 0, '"images": 2'),
            (["restore", out, "-o", tmp_path / "restored"], 0, "wrote 2 PNGs"),
            (["restore", table, "-o", f"s3://{bucket}/r/"], 2, "local folder"),
            (["show", table, "--id", SAMPLE_IMAGES[0].name, "-o", tmp_path / "one.png"], 0, "wrote"),
            (["show", image, "-o", picture], 0, "wrote s3://"), (["show", image, "-o", picture], 2, "already exists")]
    seen = []
    for args, code, words in runs:
        result = cli(*args)
        assert result[0] == code and words in result[1] + result[2], (args[0], result[2][:700])
        seen.append(result[1] + result[2])
    assert any(f"{key}:***@" in text for text in seen)  # the place is named, its secret hidden
    stored = stored_texts(s3, f"s3://{bucket}/")  # manifests and error logs name failed images by URL
    assert any("broken.png" in text for text in stored)
    seen += stored
    with s3.filesystem().open_input_stream(f"{bucket}/sheet.png") as source:
        assert source.read(4) == b"\x89PNG"
    for text in seen:
        for word in marker_words(secret):
            assert word not in text


def test_a_url_ending_in_a_slash_names_the_prefix_beside_an_object_of_the_same_name(s3, tmp_path):
    bucket = s3.new_bucket()
    with s3.filesystem().open_output_stream(f"{bucket}/both") as out:  # the object both (first: SeaweedFS's
        out.write(SAMPLE_IMAGES[2].read_bytes())                     # filer takes no file over a folder) ...
    upload_folder(s3, bucket, SAMPLE_IMAGES[:2], prefix="both")  # ... and the prefix both/
    code, _, err = cli("compress", f"s3://{bucket}/both/", "-o", tmp_path / "prefix.arrow")
    assert code == 0, err
    assert sorted(read_arrow(tmp_path / "prefix.arrow").column("id").to_pylist()) == sorted(
        p.name for p in SAMPLE_IMAGES[:2])
    code, _, err = cli("compress", f"s3://{bucket}/both", "-o", tmp_path / "object.arrow")
    assert code == 0, err
    assert read_arrow(tmp_path / "object.arrow").num_rows == 1
    code, _, err = cli("compress", f"s3://{bucket}/both/a.png/", "-o", tmp_path / "none.arrow")
    assert code == 2 and "no such file or folder" in err


def test_a_read_only_identity_is_refused_before_any_image_is_coded(s3, tmp_path, monkeypatch):
    from pixelprune_cli.run import row_coding

    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:2])
    coded = []
    real = row_coding.process  # the per-image function, as the engine's code_item calls it
    monkeypatch.setattr(row_coding, "process", lambda *a, **k: coded.append(a) or real(*a, **k))
    image = local_copy(tmp_path, SAMPLE_IMAGES[:1]) / SAMPLE_IMAGES[0].name
    for args, target in ((["compress", url, "-o"], "out.arrow"), (["compress", url, "-o"], "out/"),
                         (["show", image, "-o"], "sheet.png")):
        output = with_key(f"s3://{bucket}/{target}", READONLY_KEY, READONLY_SECRET)
        code, _, err = cli(*args, output)
        assert code == 2, err
        one_line_error(err, f"cannot write s3://{READONLY_KEY}:***@{bucket}/{target}", "ACCESS_DENIED")
        assert READONLY_SECRET not in err
    assert coded == [], "images were coded for an output the store would refuse"
    assert stored_names(s3, f"s3://{bucket}/") == {"in"}
    code, _, err = cli("compress", with_key(url, READONLY_KEY, READONLY_SECRET), "-o", tmp_path / "local.arrow")
    assert code == 0, err  # it reads well enough
    assert len(coded) == 2


def test_a_store_output_that_is_an_input_is_refused_however_it_is_spelled(s3, tmp_path):
    from pixelprune_cli.errors import ConfigError
    from pixelprune_cli.outputs.overlap import refuse_overlap

    bucket = s3.new_bucket()
    url = upload_folder(s3, bucket, SAMPLE_IMAGES[:2])
    one = f"s3://{bucket}/in/{SAMPLE_IMAGES[0].name}"
    keyed = with_key(url, ACCESS_KEY, SECRET_KEY)
    for inputs, output in (([url], url), ([url], url.rstrip("/")), ([url.rstrip("/")], url), ([keyed], url),
                           ([url], keyed), ([one], one), ([url, tmp_path], url)):
        code, _, err = cli("compress", *inputs, "-o", output, "--overwrite")
        assert code == 2, err
        one_line_error(err, "overlaps the input")
        assert SECRET_KEY not in err
    assert stored_names(s3, url) == {p.name for p in SAMPLE_IMAGES[:2]}
    for given, output in (("gs://b/in/", "gcs://b/in"), ("S3://b/in", "s3://b/in/")):
        with pytest.raises(ConfigError, match="overlaps the input"):
            refuse_overlap([given], output)
    refuse_overlap(["s3://b/in/"], "s3://b/input/")  # a longer name is no overlap
