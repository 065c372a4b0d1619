"""`make bench`: Dealflow against the SpiffWorkflow ceiling, on SQLite, PostgreSQL and HTTP (see run.py)."""
