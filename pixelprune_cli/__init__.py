"""pixelprune: drop pixel-redundant visual tokens of VLM images before the vision encoder.

The public API is imported lazily so that `pixelprune --help` starts fast:
`prune_tokens` (the coder), `prune_image` (one image to one output row),
`model_inputs` (a row back to model inputs) and
`compress` / `stats` / `restore` / `show` / `warmup` (what the CLI commands do).
"""

__version__ = "0.2.0"

_LAZY = {
    "prune_tokens": ("coding.coder", "prune_tokens"),
    "prune_image": ("prune", "prune_image"),
    "model_inputs": ("model", "model_inputs"),
    "compress": ("api", "compress"),
    "stats": ("api", "stats"),
    "restore": ("api", "restore"),
    "warmup": ("api", "warmup"),
    "CodingConfig": ("coding.pipeline", "CodingConfig"),
    "SourceOptions": ("inputs.pieces", "SourceOptions"),
    "RunOptions": ("run.job", "RunOptions"),
    "PRESETS": ("coding.presets", "PRESETS"),
    "resolve_preset": ("coding.presets", "resolve_preset"),
    "show": ("api", "show"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """The public names too, though they are imported only when first used (help(), tab completion)."""
    return sorted({*globals(), *_LAZY})
