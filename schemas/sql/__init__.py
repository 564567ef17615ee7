"""Versioned SQL migrations of the store, applied in order by ``tutorstream db migrate``.

Files are named ``NNNN_name.sql`` (both modes), ``NNNN_name.timescaledb.sql`` (TimescaleDB only)
and ``NNNN_name.postgresql.sql`` (the plain-PostgreSQL fallback only). One version is the
shared file followed by the file of the store's mode, applied in one transaction. Applied
migrations are never edited: a change is a new version.
"""
