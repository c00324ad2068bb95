"""Analysis: signatures and causes, trends, job health, backlog, dependencies, findings (SQL in DuckDB, pandas out)."""
