"""A record's canonical JSON (the stored form and the input of its idempotency digest) stays
byte for byte what `json.dumps(sort_keys, compact, ensure_ascii=False)` gives: a digest that
changed would turn every replay of an old registration into a 409."""

from __future__ import annotations

import json
import random

from idservice.persons.views import canonical_json
from tests.unit.audit.test_canonical_json import _random_value


def test_canonical_json_is_the_sorted_compact_dumps() -> None:
    rng = random.Random(16)
    for _ in range(3000):
        value = {"a": _random_value(rng), "registration": _random_value(rng), "Z": None}
        assert canonical_json(value) == json.dumps(value, ensure_ascii=False, sort_keys=True,
                                                   separators=(",", ":"))
    assert canonical_json({"b": "Đức", "a": [1, None]}) == '{"a":[1,null],"b":"Đức"}'
