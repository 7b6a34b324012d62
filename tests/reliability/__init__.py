"""Fault tests: real processes (worker, gunicorn, Redis, PostgreSQL) killed or restarted."""
