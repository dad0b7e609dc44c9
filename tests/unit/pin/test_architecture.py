"""The pin package is pure: its modules import only the standard library (STYLE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import idservice.pin

PIN_DIR = Path(idservice.pin.__file__).parent


def forbidden_imports(source: str) -> list[str]:
    """Top-level modules imported by ``source`` that are neither stdlib nor idservice.pin."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside idservice.pin
        for name in names:
            if name.split(".")[0] not in sys.stdlib_module_names and not (
                name == "idservice.pin" or name.startswith("idservice.pin.")
            ):
                found.append(name)
    return found


def test_pin_modules_import_only_stdlib() -> None:
    modules = sorted(PIN_DIR.glob("*.py"))
    assert {m.name for m in modules} >= {"format.py", "provinces.py", "allocator.py"}
    for module in modules:
        assert forbidden_imports(module.read_text("utf-8")) == [], module.name


def test_third_party_import_is_flagged() -> None:
    source = "import os\nimport numpy as np\nfrom pydantic import BaseModel\nfrom . import format\n"
    assert forbidden_imports(source) == ["numpy", "pydantic"]


def test_import_of_other_idservice_package_is_flagged() -> None:
    assert forbidden_imports("from idservice.db import pool\n") == ["idservice.db"]
