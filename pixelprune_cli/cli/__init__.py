"""The command line: a thin layer over the Python API."""

from pixelprune_cli.cli.cli import main

__all__ = ["main"]
