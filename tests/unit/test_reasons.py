"""The dead-letter reason codes: one list, documented, and what the steps give."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.reasons import DeadLetterReason
from streams.batch import RawRecord, decode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_reason_is_documented_for_operators():
    text = README.read_text()
    missing = [r.value for r in DeadLetterReason if f"`{r.value}`" not in text]
    assert missing == []


def test_a_reason_is_its_string():
    assert DeadLetterReason.NO_SUBSCRIPTION == "no_subscription"
    assert orjson.dumps(DeadLetterReason.INVALID_JSON) == b'"invalid_json"'


def test_decode_gives_members_of_the_list():
    letters = [decode(RawRecord("raw", 0, 0, 0, value)) for value in (
        b"{", b"\x00\x00", b"x" * 300_000, orjson.dumps({"transaction_id": 1}))]
    assert all(letter.code in set(DeadLetterReason) for letter in letters)  # type: ignore[union-attr]
