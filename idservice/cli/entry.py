"""The `idservice` program's entry point.

`idservice office ...` runs on the offline office's laptop, often an old one, once per birth:
it loads only the office tool (about a third of the start-up time of the whole command line,
which imports the server, audit and HSM code). Everything else goes to `cli/main.py`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if sys.argv[1:2] == ["office"]:
        from idservice.cli.office import app as office

        office(args=sys.argv[2:], prog_name="idservice office")
        return
    from idservice.cli.main import app

    app()
