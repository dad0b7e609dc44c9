"""Valid request bodies to start from; tests change one thing at a time."""

from __future__ import annotations

import copy
import hashlib
import itertools
from typing import Any

_counter = itertools.count(1)


def mother_pin(province: str, authority: str, number: str) -> str:
    """A well-formed PIN for a body's mother, derived from its registration key: bodies of
    different registrations are different children (the duplicate check of contract 9 does
    not refuse them), and the same registration built twice is the same body."""
    digest = hashlib.sha256(f"{province}|{authority}|{number}".encode()).digest()
    return f"052{int.from_bytes(digest[:8], 'big') % 10**9:09d}"


def issue_body(province: str = "052", *, number: str | None = None, sex: str = "F",
               dob: str = "2024-03-02", registered_on: str = "2024-03-10",
               full_name: str = "Nguyễn Thị Minh Anh", authority: str = "UBND xã Nhơn Lý",
               other_names: list[str] | None = None) -> dict[str, Any]:
    number = number or f"T-{next(_counter)}-{id(object())}"
    return copy.deepcopy({
        "registration": {"authority": authority,
                         "number": number,
                         "book": "01/2024", "registered_on": registered_on,
                         "province_code": province},
        "child": {"full_name": full_name, "other_names": other_names or [], "sex": sex,
                  "date_of_birth": dob, "place_of_birth": "Quy Nhơn", "home_town": "Bình Định",
                  "ethnicity": "Kinh", "nationality": "VN"},
        "father": {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345", "nationality": "VN"},
        "mother": {"full_name": "Trần Thị Lan", "pin": mother_pin(province, authority, number),
                   "nationality": "VN"},
    })
