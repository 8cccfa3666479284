"""What every engine gets: how to run (`RunOptions`), what to run (`Job`), and the `Engine` interface.

Below the engines and the API: `api.compress` builds a Job and hands it to
the engine `engine.engine_for` picks; an engine never imports the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pixelprune_cli.coding.pipeline import CodingConfig
from pixelprune_cli.errors import InputError
from pixelprune_cli.inputs.pieces import SourceCounts, SourceOptions
from pixelprune_cli.outputs import writer
from pixelprune_cli.outputs.schema import read_meta
from pixelprune_cli.outputs.shards import ShardedSink
from pixelprune_cli.outputs.store_sinks import StoreFileSink, StoreShardSink
from pixelprune_cli.records import Sink
from pixelprune_cli.report.summary import Summary
from pixelprune_cli.storage.urls import is_url, redact

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to produce): engine, workers, failure policy, progress."""

    workers: int | None = None  # threads here, or a local Ray's CPUs; None: every core
    fail_fast: bool = False
    progress: bool = True
    engine: str = "local"  # "local" (threads here) or "ray" (Ray Data tasks; a shard folder output)
    ray_address: str | None = None  # with "ray": a cluster to join instead of starting a local Ray


@dataclass(frozen=True)
class Job:
    """One compress run as every engine gets it: what to code, into which output, in which layout."""

    inputs: list[str]
    output: str
    config: CodingConfig
    sources: SourceOptions
    schema: pa.Schema
    compression: str
    shard_size: int  # images per shard of a DIR/ output
    shard_format: str  # formats.TABLE_FORMATS name of the shards
    resume: bool = False
    overwrite: bool = False
    target: str = ""  # writer.output_target(output), decided once by the command; "" to decide here

    def open_sink(self) -> Sink:
        """The output's sink, chosen from the output's name (the only place that chooses)."""
        target = self.target or writer.output_target(self.output)
        if target == "stream":
            return writer.StdoutSink(self.schema, self.compression)
        if target == "folder":
            return self.open_shard_folder()
        if is_url(self.output):
            return StoreFileSink(self.output, self.schema, self.compression, overwrite=self.overwrite)
        return writer.FileSink(self.output, self.schema, self.compression, overwrite=self.overwrite)

    def open_shard_folder(self, manifest_extra: dict | None = None) -> ShardedSink:
        meta = read_meta(self.schema) or self.config.to_meta()  # with the image column, when known
        sink = ShardedSink
        if is_url(self.output):
            sink = StoreShardSink  # the same sink, committed without rename or lock
        return sink(self.output, self.schema, meta, self.shard_size, self.compression,
                    self.shard_format, resume=self.resume, overwrite=self.overwrite, manifest_extra=manifest_extra)


class Engine(Protocol):
    """Where the per-image function runs; see the module docstring."""

    shard_size: int  # default images per shard
    shard_format: str  # default shard format

    def check(self, output: str, run: RunOptions, target: str) -> None:
        """Refuse (ConfigError) options this engine cannot honour, before anything is touched."""
        ...

    def run(self, job: Job, run: RunOptions, summary: Summary, counts: SourceCounts) -> Sink:
        """Code every input not already in the output into the job's sink, committed; returns the sink."""
        ...


def no_images_error(inputs: list[str], counts: SourceCounts) -> InputError:
    skipped = ""
    if counts.skipped_files:
        names = counts.skipped.head(3) if counts.skipped is not None else []
        skipped = (f" ({counts.skipped_files} {'file' if counts.skipped_files == 1 else 'files'} skipped: "
                   + ", ".join(names) + (", ..." if counts.skipped_files > len(names) else "")
                   + ("; hidden ones are included with --hidden" if counts.skipped_hidden else "") + ")")
    return InputError(f"no images found in {', '.join(map(redact, inputs))}{skipped}")
