"""`python -m idservice.cli`: the same as the `idservice` script."""

from idservice.cli.entry import main

main()
