"""Prometheus metrics at /metrics, read from the database so that every process and replica
reports the same numbers."""
