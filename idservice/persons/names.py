"""Name rules and folding for search.

Folding makes "Nguyễn Văn Đức", "NGUYEN VAN DUC" and "nguyen  van duc" meet: Unicode NFD,
combining marks dropped, đ/Đ (a letter of its own, not a d with a mark) mapped to d, case-folded,
runs of white space collapsed. Pure: used by the API models, the repository and the CLI.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_NAME_LENGTH", "check_text", "fold_name", "normalize_text"]

MAX_NAME_LENGTH = 200
_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d"})


def normalize_text(value: str) -> str:
    """Stored form of any text field: NFC, so equal names compare equal byte for byte."""
    return unicodedata.normalize("NFC", value)


def check_text(value: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """Refuse empty, over-long, blank or control-character text; return its NFC form."""
    value = normalize_text(value)
    if not value or not value.strip():
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    if value.isprintable():  # C-speed fast path: no Cc/Cf/Cs/Co/Cn/Zl/Zp characters at all
        return value
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            raise ValueError(f"must not contain control or invisible characters (U+{ord(ch):04X})")
    return value


def fold_name(value: str) -> str:
    decomposed = unicodedata.normalize("NFD", value.translate(_EXTRA_FOLDS))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
