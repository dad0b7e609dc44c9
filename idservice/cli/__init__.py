"""Command line (typer): thin commands over the same services as the HTTP API."""
