"""The input plan's records: options, counts, and the pieces a plan is made of (image files, runs of Parquet rows).

Planning (sources.plan) makes them from folder listings and Parquet footers
only; readers (sources.read_piece) turn each into items. Engines, resume and
sampling work on pieces, so they are small and picklable (Ray sends them to
its tasks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pixelprune_cli.errors import ConfigError, option
from pixelprune_cli.inputs.path_cells import scheme_names
from pixelprune_cli.records import FailedImage, SpooledList


@dataclass
class SourceCounts:
    """What enumeration saw besides images: files left out of a folder walk, by name, and Parquet files."""

    skipped_files: int = 0
    skipped_hidden: int = 0  # of skipped_files: hidden files and folders (a folder counts once)
    parquet_files: int = 0
    skipped: SpooledList | None = None  # the skipped paths, spooled past 10,000; made on the first one
    image_columns: dict[str, int] = field(default_factory=dict)  # Parquet files read, by the column of their images

    def skip(self, name: str, hidden: bool = False) -> None:
        if self.skipped is None:
            self.skipped = SpooledList()
        self.skipped.append(name)
        self.skipped_files += 1
        self.skipped_hidden += hidden


@dataclass(frozen=True)
class SourceOptions:
    image_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    hidden: bool = False  # walk into hidden files and folders (names starting with '.'), as rg/fd --hidden
    own_output: str | None = None  # the single output file a run writes: it and its companions are never inputs
    # Schemes whose URLs a table's path cells may name on any store ("file": local files from a table
    # on a store); without them a path cell reads only beside its table (path_cells.resolve).
    allow_path_schemes: tuple[str, ...] = ()
    limit: int | None = None  # only the first N input positions of the plan (--limit), to try settings quickly
    id_column: str | None = None  # Parquet inputs: ids from this column's values instead of NAME#ROW (--id-column)

    def __post_init__(self):
        try:
            object.__setattr__(self, "allow_path_schemes", scheme_names(self.allow_path_schemes))
        except ValueError as exc:
            given = self.allow_path_schemes
            shown = given if isinstance(given, str) else ",".join(map(str, given))
            raise ConfigError(f"{option('allow_path_schemes', given, shown)}: {exc}") from None
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{option('limit', self.limit)} must be at least 1")
        twice = sorted({c for c in self.keep_columns if self.keep_columns.count(c) > 1})
        if twice:  # an Arrow table may hold two columns of one name, but no reader can pick one of them
            raise ConfigError(f"{option('keep_columns', list(self.keep_columns), ','.join(self.keep_columns))} "
                              f"names {', '.join(map(repr, twice))} more than once; name each column once")


@dataclass(frozen=True)
class ImageFile:
    """One image file to read: its id and its path."""

    id: str
    path: str


@dataclass(frozen=True)
class ParquetRows:
    """Rows [start, stop) of a Parquet image table, known from its footer; ids are `name#ROW`."""

    path: str
    name: str
    column: str
    start: int
    stop: int
    allow_path_schemes: tuple[str, ...] = ()  # SourceOptions': how its path cells may be read
    id_column: str | None = None  # ids from this column (parquet_source.row_ids reads it), not NAME#ROW
    many: bool = False  # the column holds a list of images per row (image_lists): one ImageRow each

    @property
    def size(self) -> int:
        return self.stop - self.start

    def ids(self) -> Iterator[str]:
        """`NAME#ROW` ids, which need no read; with an id column, parquet_source.row_ids gives the ids."""
        return (f"{self.name}#{row}" for row in range(self.start, self.stop))


# A piece of the input plan: an image file, a run of Parquet rows, or an input that failed
# to enumerate (FailedImage). Planning reads folder listings and Parquet footers, never images.
Piece = ImageFile | ParquetRows | FailedImage


def piece_size(piece: Piece) -> int:
    """How many input positions a piece takes."""
    return piece.size if isinstance(piece, ParquetRows) else 1


def piece_ids(piece: Piece) -> Iterator[str]:
    return piece.ids() if isinstance(piece, ParquetRows) else iter([piece.id])
