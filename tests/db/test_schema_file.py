"""`migrations/schema.sql` is the schema the migrations build (issue 10 item 5): regenerated
here with the real command, in a throw-away embedded cluster, and compared with the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idservice.db.schema import HEADER, normalize_dump, schema_file

pytestmark = pytest.mark.embedded_only  # the command always dumps an embedded cluster of its own


def test_schema_file_is_what_the_migrations_build(tmp_path: Path) -> None:
    generated = tmp_path / "schema.sql"
    result = subprocess.run(
        [sys.executable, "-m", "idservice.cli", "db", "schema", "--output", str(generated)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "IDSERVICE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    committed = schema_file().read_text("utf-8")
    assert generated.read_text("utf-8") == committed, (
        "migrations/schema.sql is stale: run `idservice db schema --output "
        "migrations/schema.sql` and commit the result")


def test_volatile_dump_lines_are_dropped() -> None:
    dump = ("--\n-- Dumped from database version 18.6\n-- Dumped by pg_dump version 18.6\n"
            "\\restrict AbC123\nCREATE TABLE t ();\n\\unrestrict AbC123\n")
    assert normalize_dump(dump) == HEADER + "--\nCREATE TABLE t ();\n"
