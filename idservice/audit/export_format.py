"""The bytes of an audit export (`GET /v1/audit/export`, and the auditor UI's export buttons):
NDJSON, one event object per line as the API returns it, or CSV for spreadsheets.

One writer for both interfaces, so a file downloaded from the web page is the file the API
sends. CSV (contract 7): RFC 4180 records ending in CRLF (a CR or LF inside a cell stays quoted
in its cell), a UTF-8 byte-order mark first so that spreadsheets show Vietnamese names, and a
leading `'` on every cell that a spreadsheet would run as a formula (CSV injection: a purpose or
a client id is caller-chosen text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from idservice.audit.entry import EVENT_FIELDS

__all__ = ["CSV_HEADER", "ExportFormat", "export_headers", "render_export"]

ExportFormat = Literal["csv", "ndjson"]

CSV_HEADER = ["index", "at", "actor_type", "actor_id", "action", "pin", "purpose", "outcome",
              "request_id", "source_ip", "details"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_BOM = "\ufeff".encode()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_csv_cell(v) for v in values])
    return out.getvalue().encode()


async def render_export(rows: AsyncIterator[dict[str, Any]],
                        fmt: ExportFormat) -> AsyncIterator[bytes]:
    """Stream `rows` (events from `audit.reads.export`) as `fmt`."""
    if fmt == "csv":
        yield _BOM + _csv_line(CSV_HEADER)
    async for event in rows:
        if fmt == "csv":
            yield _csv_line([event["index"], event["at"], event["actor"]["type"],
                             event["actor"]["id"], event["action"], event["pin"],
                             event["purpose"], event["outcome"], event["request_id"],
                             event["source_ip"],
                             json.dumps(event["details"], ensure_ascii=False, sort_keys=True)])
        else:
            yield json.dumps({k: event[k] for k in EVENT_FIELDS}, ensure_ascii=False).encode() \
                + b"\n"


def export_headers(fmt: ExportFormat) -> tuple[str, dict[str, str]]:
    """Media type and headers of an export response: both formats are downloads."""
    if fmt == "csv":
        return "text/csv; charset=utf-8", {
            "Content-Disposition": 'attachment; filename="audit-events.csv"'}
    return "application/x-ndjson", {
        "Content-Disposition": 'attachment; filename="audit-events.ndjson"'}
