"""The offline registration office tool (contract 8): journal and CLI commands."""
