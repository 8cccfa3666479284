"""`pixelprune eval`: a checkpoint run full and pruned on a benchmark table, scored as lmms-eval scores it.

metrics (the scores), tasks (prompts, columns, which metric), table (rows
streamed from a Parquet file), runner (the model and its arms), results
(predictions file, resume, the per-arm summary), output (table, JSON, plot).
"""
