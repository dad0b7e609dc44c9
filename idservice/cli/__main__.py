"""`python -m idservice.cli`: the same as the `idservice` script."""

from idservice.cli.main import app

app()
