"""A Ray cluster whose nodes share no disk: tasks read images from the S3 server and write shards to it,
and losing a worker node mid-run loses nothing (Ray retries the task, or one --resume finishes the run).

Built on this machine with `ray.cluster_utils.Cluster` (a head with 0 CPUs, two worker nodes of 1 CPU), on
127.0.0.1 only. Skipped when Ray is not installed; the S3 server fixture says why when it cannot run.
"""

from __future__ import annotations

import os
import threading

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray binds to 127.0.0.1, not the machine's outward address
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

from conftest import SAMPLE_IMAGES, cli  # noqa: E402
from test_objectstore import local_copy, store_shard_rows, upload_folder, wait_for_first_shard  # noqa: E402


def test_a_cluster_without_a_shared_disk_loses_a_worker_node_and_loses_nothing(s3, tmp_path):
    from ray.cluster_utils import Cluster

    from pixelprune_cli import api
    from pixelprune_cli.errors import RayJobError
    from pixelprune_cli.run.job import RunOptions

    bucket = s3.new_bucket()
    images = local_copy(tmp_path, SAMPLE_IMAGES)
    url = upload_folder(s3, bucket, sorted(images.iterdir()))
    clean = f"s3://{bucket}/clean/"
    assert cli("compress", url, "-o", clean, "--shard-size", "1", "--shard-format", "parquet", "--no-progress")[0] == 0

    # The nodes start from this environment: the store's endpoint and credentials, as a node's own would be.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        out = f"s3://{bucket}/ray/"
        run = RunOptions(engine="ray", progress=False)
        outcome: list = []

        def compress():
            try:
                outcome.append(api.compress([url], out, shard_size=1, run=run))
            except RayJobError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=compress)
        worker.start()
        wait_for_first_shard(s3, out, lambda: None if worker.is_alive() else "finished")
        cluster.remove_node(doomed)
        worker.join(240)
        assert not worker.is_alive()
        if isinstance(outcome[0], RayJobError):  # the lost task was not retried: one --resume finishes
            api.compress([url], out, shard_size=1, run=run, resume=True)
        ours, theirs = store_shard_rows(s3, out), store_shard_rows(s3, clean)
        assert ours.column("id").to_pylist() == theirs.column("id").to_pylist()
        assert ours.drop_columns(["seconds"]).equals(theirs.drop_columns(["seconds"])) if "seconds" in ours.schema.names \
            else ours.equals(theirs)
    finally:
        ray.shutdown()
        cluster.shutdown()
