"""Audit log: in-transaction event writes, sequencing (contract section 5)."""
