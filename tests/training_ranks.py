"""One rank of tests/test_training_ranks.py, started by torchrun: which rows this rank reads in each of two epochs.

Each rank loads the cache, shuffles it with the shared seed, takes its part
with `datasets.distributed.split_dataset_by_node`, and reads it through a
DataLoader; rank 0 writes every rank's ids per epoch as JSON.
"""

from __future__ import annotations

import json
import sys

import torch.distributed as dist
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from pixelprune_cli.training import load_cache


def main(cache: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dataset = split_dataset_by_node(load_cache(cache).shuffle(seed=7, buffer_size=4), rank, world)
    loader = DataLoader(dataset, batch_size=2, collate_fn=lambda rows: [r["id"][0].as_py() for r in rows])
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        mine = [row_id for batch in loader for row_id in batch]
        everyone: list = [None] * world
        dist.all_gather_object(everyone, mine)
        epochs.append(everyone)
    if rank == 0:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(epochs, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
