"""Database layer: embedded PostgreSQL, role set-up, migrations and connection pools.

Imports stay explicit (`from idservice.db.pool import create_pool`) so that importing one part
(say the pool, in the API) does not pull in the others.
"""
