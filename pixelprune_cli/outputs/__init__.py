"""The output schema and table formats; writing, committing and reading outputs back."""
