"""What a run counts (`summary`), and what people see of it (`report`, the only user of rich)."""
