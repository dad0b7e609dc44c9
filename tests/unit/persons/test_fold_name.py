"""`fold_name`'s table fast path gives what the full rule (NFD, marks dropped, đ -> d,
casefold, white space collapsed) gives, for every character and for mixed names."""

from __future__ import annotations

import random

from idservice.persons.names import _fold_full, fold_name


def test_every_bmp_character_folds_as_the_full_rule() -> None:
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        assert fold_name(ch) == _fold_full(ch), f"U+{code:04X}"
        assert fold_name(f"A{ch}b") == _fold_full(f"A{ch}b"), f"U+{code:04X}"


def test_mixed_names_fold_as_the_full_rule() -> None:
    rng = random.Random(16)
    alphabet = ("Nguyễn Văn Đức ĐỖ THỊ Ngọc Ánh đ ð Ð ß \u017f İ Ĳ ﬁ ǅ "
                "\u00a0\u2003\t  e\u0301 a\u0323")
    for _ in range(20000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert fold_name(name) == _fold_full(name), repr(name)
    assert fold_name("Nguyễn  Văn ĐỨC") == "nguyen van duc"
