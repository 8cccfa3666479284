"""URLs a user names, without a real store: credentials parsed once and hidden everywhere, endpoints checked,
'..' refused, GCS built and bounded, retries as configured. Servers here are a few lines on 127.0.0.1 that
answer every request with 503 (or nothing at all), so nothing leaves the machine."""

from __future__ import annotations

import http.server
import socket
import threading
from datetime import timedelta
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelprune_cli.errors import InputError, StoreUnavailable
from pixelprune_cli.run.job import RunOptions
from pixelprune_cli.storage import filesystems, storage
from pixelprune_cli.storage.urls import credentials, redact, shown

from conftest import SAMPLE_IMAGES, cli, one_line_error

# A secret is made of marker words (W + four letters + Z: never in a message of ours) between the characters
# that make URLs awkward. "No part of the secret" is then checkable: no marker word may appear anywhere.
MARKER = st.from_regex(r"\AW[a-z]{4}Z\Z")
AWKWARD = st.sampled_from(["/", "@", ":", "+", "%", "%2F", "=", "?", "#", " ", "~", "[", "]", "//", "@@", ":@/"])
SECRETS = st.lists(st.one_of(MARKER, AWKWARD), min_size=1, max_size=8).map("".join).filter(lambda s: "Z" in s)


def markers_of(secret: str) -> list[str]:
    import re

    return re.findall(r"W[a-z]{4}Z", secret)


def assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        for word in markers_of(secret):
            assert word not in text, f"{word!r} of the secret is shown in {text!r}"


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS)
def test_the_one_parse_takes_the_secret_as_written_or_refuses_and_nothing_of_it_is_ever_shown(secret):
    raw = f"s3://AKIDEXAMPLE:{secret}@bucket-name/dir/img@2x.png"
    encoded = f"s3://AKIDEXAMPLE:{quote(secret, safe='')}@bucket-name/dir/key.png"
    for url in (raw, encoded):
        found = credentials(url)
        assert found is not None
        texts = [shown(url)]
        if not any(c.isspace() for c in secret) or url == encoded:
            # Running text (a library's message) ends a URL at a space; a secret with one is refused on entry,
            # before any library sees the URL, so only these can ever be in such a message.
            texts += [redact(f"cannot read {url}: denied"), redact(f"('{url}', {url}/x)"), redact(url)]
        if found.problem is None:
            # Accepted: the parse (what signs the requests) is exactly the secret and the bucket as written.
            assert found.user == "AKIDEXAMPLE"
            assert unquote(found.secret) == (secret if url == encoded else unquote(secret))
            assert url[found.host_at:].startswith("bucket-name/")
        else:
            with pytest.raises(InputError) as refused:
                storage.locate(url)
            texts.append(str(refused.value))
            assert "percent-encode" in str(refused.value)
        assert_hidden(secret, *texts)
    assert credentials(encoded).problem is None  # percent-encoded, any secret is usable
    if "/" in secret or any(c.isspace() for c in secret):
        assert credentials(raw).problem is not None  # where such a secret ends cannot be known: refused


def test_redaction_keeps_what_is_no_secret():
    assert shown("s3://bucket/user@example.com/x.png") == "s3://bucket/user@example.com/x.png"
    assert shown("http://host:8080/img@2x.png") == "http://host:8080/img@2x.png"
    assert shown("http://[::1]:9000/x") == "http://[::1]:9000/x"
    assert redact("endpoint (http://host:9000).") == "endpoint (http://host:9000)."
    assert shown("s3://KEY:se@cret@bucket/x") == "s3://KEY:***@bucket/x"  # split at the last '@', as signed
    assert credentials("s3://KEY:se@cret@bucket/x").secret == "se@cret"
    assert shown("s3://TOKEN@bucket/x") == "s3://***@bucket/x"  # a userinfo with no ':' is all secret
    assert redact("a s3://K:S1@b/x b s3://K:S2@c/y") == "a s3://K:***@b/x b s3://K:***@c/y"


AWKWARD_URLS = {  # unusable as written: each must be refused, naming what to encode, showing none of the secret
    "slash": "s3://AKID:Wslsh1Z/Wslsh2Z@bucket/in/",
    "at then slash": "s3://AKID:Watsl1Z@Watsl2Z/Watsl3Z@bucket/in/",
    "space": "s3://AKID:Wspac1Z Wspac2Z@bucket/in/",
}


@pytest.mark.parametrize("name", sorted(AWKWARD_URLS))
def test_every_command_refuses_an_unparsable_secret_without_echoing_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")  # never asked: refused first
    url = AWKWARD_URLS[name]
    image = SAMPLE_IMAGES[0]
    commands = [["compress", url, "-o", tmp_path / "out.arrow"], ["compress", image, "-o", url + "out.arrow"],
                ["compress", image, "-o", url], ["stats", url], ["stats", url + "x.arrow", "--json"],
                ["restore", url + "x.arrow", "-o", tmp_path / "restored"], ["show", url, "-o", tmp_path / "s.png"],
                ["show", image, "-o", url + "sheet.png"]]
    for args in commands:
        code, stdout, stderr = cli(*args)
        assert code == 2, (args, stderr)
        one_line_error(stderr, "percent-encode")
        for word in ("Wslsh", "Watsl", "Wspac"):
            assert word not in stdout + stderr, (args, stderr)
    assert not (tmp_path / "out.arrow").exists()


def test_dot_dot_segments_in_urls_are_refused_before_any_store_is_asked(tmp_path, monkeypatch):
    fsspec = pytest.importorskip("fsspec")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    memory = fsspec.filesystem("memory")
    memory.pipe("/pixelprune-dots/in/a.png", SAMPLE_IMAGES[0].read_bytes())
    try:
        for args in (["compress", "s3://bucket/in/../in/", "-o", tmp_path / "out.arrow"],
                     ["compress", SAMPLE_IMAGES[0], "-o", "s3://K:Wdots1Z@bucket/x/../out.arrow"],
                     ["stats", "gs://bucket/a/../b.arrow"],
                     ["compress", "memory://pixelprune-dots/x/../in/", "-o", tmp_path / "out.arrow"]):
            code, _, stderr = cli(*args)
            assert code == 2, stderr
            message = one_line_error(stderr, "'..'")
            assert "ACCESS_DENIED" not in message and "Wdots1Z" not in message and "unreachable" not in message
    finally:
        memory.rm("/pixelprune-dots", recursive=True)
    from pixelprune_cli.errors import ReadFailure

    with pytest.raises(ReadFailure, match=r"'\.\.' in a URL"):  # a key listed in a folder that no URL can name fails alone
        storage.read_bytes("s3://bucket/in/a/../b.png", 1 << 20)
    assert shown("s3://bucket/a..b/..c/x") == "s3://bucket/a..b/..c/x"
    storage.locate("s3://bucket/a..b/..c/x")  # only a whole '..' segment is refused


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_a_malformed_endpoint_is_a_usage_error_naming_the_variable_and_the_fault(variable, tmp_path, monkeypatch):
    cases = {"http://[::1": "not a URL", "ftp://host:9": "scheme is 'ftp'", "host:99999": "not a URL",
             "http://host:9000/path": "path", "http://user:Wendp1Z@host:9000": "credentials", "http://": "no host"}
    for value, fault in cases.items():
        monkeypatch.setenv(variable, value)
        code, _, stderr = cli("compress", "s3://bucket/in/", "-o", tmp_path / "out.arrow")
        assert code == 2, stderr
        one_line_error(stderr, variable, fault)
        assert "Wendp1Z" not in stderr
    monkeypatch.setenv(variable, "http://127.0.0.1:9000")
    storage.locate("s3://bucket/in/")  # a good one is taken


# ----------------------------------------------------------------- stores on 127.0.0.1 that always fail

def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def failing_store(monkeypatch):
    """An S3 endpoint on 127.0.0.1 that answers every request 503 SlowDown and counts them."""
    seen = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def _busy(self):
            seen.append(self.command)
            body = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _busy

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "Wenvi1Z")
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def requests_made(seen: list, attempts: str | None, monkeypatch) -> int:
    if attempts is None:
        monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    else:
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", attempts)
    seen.clear()
    with pytest.raises(StoreUnavailable):
        storage.kind("s3://bucket/in/image.png")
    return len(seen)


def test_aws_max_attempts_is_the_number_of_tries_the_store_sees(failing_store, monkeypatch):
    """Counted at the server, not timed: each call is tried AWS_MAX_ATTEMPTS times (ATTEMPTS when unset)."""
    once = requests_made(failing_store, "1", monkeypatch)
    assert once >= 1
    assert requests_made(failing_store, "3", monkeypatch) == 3 * once
    assert requests_made(failing_store, None, monkeypatch) == filesystems.ATTEMPTS * once
    assert requests_made(failing_store, "not a number", monkeypatch) == filesystems.ATTEMPTS * once


def test_the_store_is_unreachable_message_hides_the_secret_of_the_url(failing_store, tmp_path, monkeypatch):
    from pixelprune_cli import api

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = f"s3://AKIDEXAMPLE:{quote('Wunre1Z/Wunre2Z@', safe='')}@bucket/in/"
    with pytest.raises(StoreUnavailable) as failed:  # the API's own message, not only the CLI's line
        api.compress([url], str(tmp_path / "out.arrow"), run=RunOptions(progress=False))
    message = str(failed.value)
    assert "unreachable or failing at s3://AKIDEXAMPLE:***@bucket/in/" in message
    assert "Wunre" not in message
    code, _, stderr = cli("compress", url, "-o", tmp_path / "out.arrow")
    assert code == 2
    assert "Wunre" not in one_line_error(stderr, "unreachable or failing")


def test_a_store_error_reason_is_redacted_even_where_the_store_quotes_the_url(monkeypatch):
    """An fsspec store whose errors quote the URL it was given, credentials and all, with and without scheme,
    and another URL with its own secret (a proxy's)."""
    fsspec = pytest.importorskip("fsspec")
    from fsspec.spec import AbstractFileSystem

    class Leaky(AbstractFileSystem):
        protocol = "pixelprune-leaky"

        def info(self, path, **kwargs):
            raise PermissionError(f"403 Forbidden: pixelprune-leaky://{path} (path {path}, "
                                  "via https://proxy:Wleak3Z@proxy.example:3128/)")

    fsspec.register_implementation("pixelprune-leaky", Leaky, clobber=True)
    url = "pixelprune-leaky://AKID:Wleak1Z%2BWleak2Z@bucket/x.png"
    with pytest.raises(InputError) as failed:
        storage.kind(url)
    message = str(failed.value)
    assert "cannot read pixelprune-leaky://AKID:***@bucket/x.png: 403 Forbidden" in message
    assert "Wleak" not in message


# ----------------------------------------------------------------- Google Cloud Storage

def test_gs_and_gcs_urls_build_a_gcs_filesystem_whose_retries_are_bounded(monkeypatch):
    import pyarrow.fs as pafs

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port()}")
    for url in ("gs://bucket/in/", "gcs://bucket/in/"):
        where = storage.locate(url)
        assert isinstance(where.fs, pafs.GcsFileSystem) and where.path == "bucket/in"
        options = where.fs.__reduce__()[1][0]
        assert options["retry_time_limit"] == timedelta(seconds=filesystems.GCS_RETRY_SECONDS)
        assert options["anonymous"] and options["endpoint_override"].startswith("127.0.0.1:")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")  # no scheme: http, as Google's libraries take it
    assert storage.locate("gs://bucket/x").fs.__reduce__()[1][0]["scheme"] == "http"
    with pytest.raises(InputError, match="takes no credentials"):
        storage.locate("gs://AKID:Wgcsc1Z@bucket/in/")


def bounded_cli(*args, limit: float = 120) -> tuple[int, str, str]:
    """cli(), failing (not hanging) the test if the run does not end within `limit` seconds."""
    done: list = []
    worker = threading.Thread(target=lambda: done.append(cli(*args)), daemon=True)
    worker.start()
    worker.join(limit)
    assert done, f"pixelprune {' '.join(map(str, args))} still running after {limit} s: a hang"
    return done[0]


@pytest.fixture
def no_google_credentials(tmp_path, monkeypatch):
    """No key file, no gcloud login (HOME is empty), and the metadata server a closed loopback port."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GCE_METADATA_ROOT", f"127.0.0.1:{closed_port()}")
    monkeypatch.setattr(filesystems, "GCS_RETRY_SECONDS", 1.0)
    filesystems.cached.cache_clear()
    yield
    filesystems.cached.cache_clear()


def test_gcs_without_credentials_ends_in_one_line(no_google_credentials, tmp_path):
    code, _, stderr = bounded_cli("compress", "gs://bucket/in/", "-o", tmp_path / "out.arrow")
    assert code == 2
    one_line_error(stderr, "gs://bucket/in/", "no credentials", "GOOGLE_APPLICATION_CREDENTIALS")


def test_gcs_emulator_that_is_down_ends_in_one_line(no_google_credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port()}")
    code, _, stderr = bounded_cli("stats", "gcs://bucket/out/")
    assert code == 2
    one_line_error(stderr, "unreachable or failing", "Could not connect")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "ftp://host:9")
    code, _, stderr = bounded_cli("stats", "gs://bucket/out/")
    assert code == 2
    one_line_error(stderr, "STORAGE_EMULATOR_HOST", "scheme is 'ftp'")
