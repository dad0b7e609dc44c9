"""The one writer of audit exports (API and web page): CSV with a byte-order mark, RFC 4180
CRLF records, formula cells escaped (contract 7); NDJSON as the API's event objects."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from idservice.audit.export_format import CSV_HEADER, ExportFormat, render_export

EVENT: dict[str, Any] = {
    "index": 7, "at": "2026-12-05T01:02:03.000Z", "actor": {"type": "client", "id": "@evil"},
    "action": "person.read", "pin": "052326000001", "purpose": "=HYPERLINK(\"x\")\r\nline",
    "outcome": "found", "request_id": None, "source_ip": "10.0.0.1", "details": {"tên": "Đặng"}}


def _render(fmt: ExportFormat) -> bytes:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        yield EVENT

    async def main() -> bytes:
        return b"".join([chunk async for chunk in render_export(rows(), fmt)])

    return asyncio.run(main())


def test_csv_has_bom_crlf_and_escaped_formulas() -> None:
    data = _render("csv")
    assert data.startswith(b"\xef\xbb\xbfindex,at,")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert list(rows[0]) == CSV_HEADER and len(rows) == 1
    assert rows[0]["actor_id"] == "'@evil"
    assert rows[0]["purpose"] == "'=HYPERLINK(\"x\")\r\nline"  # the CR stays in its cell
    assert json.loads(rows[0]["details"]) == {"tên": "Đặng"}


def test_ndjson_is_the_event_unaltered() -> None:
    assert [json.loads(line) for line in _render("ndjson").splitlines()] == [EVENT]
