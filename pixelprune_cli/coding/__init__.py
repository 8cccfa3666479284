"""The per-image function and what it calls: presets, decoding, resizing, the coder's kernels, budgets.

Pure: no files the user named, no engines, no report."""
