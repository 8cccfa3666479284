"""Training on a pixelprune cache: `load_cache` (a `datasets` dataset over an output) and `PrunedCollator`.

Imported lazily: `load_cache` needs `datasets`, the collator torch and
transformers too (`pip install 'pixelprune[train]'`).
"""

from __future__ import annotations

__all__ = ["PrunedCollator", "load_cache"]


def __getattr__(name: str):
    if name == "load_cache":
        from pixelprune_cli.training.cache import load_cache

        return load_cache
    if name == "PrunedCollator":
        from pixelprune_cli.training.collator import PrunedCollator

        return PrunedCollator
    raise AttributeError(f"module 'pixelprune_cli.training' has no attribute {name!r}")
