"""Query parameters reach the engine as given, whatever they hold (issue 16, finding 6).

chdb used to pass them unescaped, and ClickHouse reads a parameter in its escaped text form:
``GET /api/v1/events/a\\`` failed with CANNOT_PARSE_ESCAPE_SEQUENCE (answered 503), and ``a\\b``
was looked up as ``a`` + backspace. Runs on chdb, and on a ClickHouse server when
``METERLINE_TEST_CLICKHOUSE_URL`` is set. Also the dead-letter pages of the store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks import ddl, wire
from sinks.chdb_store import ChdbStore
from sinks.sql_store import SqlStore
from streams.batch import DeadLetter, RawRecord

pytestmark = pytest.mark.integration

CLICKHOUSE_URL = os.environ.get("METERLINE_TEST_CLICKHOUSE_URL", "")
T0 = 1_699_999_200_000

AWKWARD = [
    "a\\b", "a\\", "\\", "\\\\", "a\\tb", "a\tb", "a\nb", "a\rb", "a\x00b", "'", "a'b", "`",
    "\\N", "{o:String}", "%5C", "é\u2028😀", "\\x41", " lead and trail ", "",
]


@pytest.fixture(params=["chdb"] + (["clickhouse"] if CLICKHOUSE_URL else []))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "chdb":
        opened: SqlStore = ChdbStore(tmp_path / "chdb", database="meterline")
    else:
        from sinks.clickhouse_store import ClickHouseStore

        opened = ClickHouseStore(CLICKHOUSE_URL, database=f"t_{uuid.uuid4().hex[:12]}")
    opened.ensure_schema()
    try:
        yield opened
    finally:
        if request.param == "clickhouse":
            opened._command(f"DROP DATABASE IF EXISTS {opened.database}")
        opened.close()


@pytest.mark.parametrize("value", AWKWARD)
def test_string_parameters_arrive_unchanged(store: SqlStore, value: str) -> None:
    assert store._query("SELECT {v:String} AS v", {"v": value}).column("v")[0].as_py() in (
        value, value.encode())


def _letters(store: SqlStore, codes: list[str], payloads: list[bytes] | None = None) -> None:
    letters = [
        DeadLetter(RawRecord("raw", 0, i, T0, (payloads or [b"{}"] * len(codes))[i]), code,
                   f"{code} #{i}")
        for i, code in enumerate(codes)
    ]
    table = wire.dead_letters_table(letters, T0, "b1")
    store.insert(ddl.DEAD_LETTERS_INSERT, table, "b1:dead")


def test_lookups_by_awkward_ids_find_exactly_what_was_stored(store: SqlStore) -> None:
    _letters(store, AWKWARD[:-1])
    for code in AWKWARD[:-1]:
        found = store.dead_letters(error_code=code)
        assert [d["error_code"] for d in found] == [code]
        assert store.count_dead_letters(error_code=code) == 1
    assert store.find_events("org", "a\\") == []
    assert store.find_events("org\\", "a\tb") == []


def test_dead_letter_pages_previews_and_positions(store: SqlStore) -> None:
    payloads = [bytes([i]) * (10 + i) for i in range(7)]
    _letters(store, ["c"] * 7, payloads)
    assert store.count_dead_letters() == 7
    pages = [store.dead_letters(limit=3, offset=skip) for skip in (0, 3, 6)]
    offsets = [d["source_offset"] for page in pages for d in page]
    assert sorted(offsets) == list(range(7)) and [len(p) for p in pages] == [3, 3, 1]
    preview = store.dead_letters(limit=7, payload_limit=4)
    assert {len(d["payload"]) for d in preview} == {4}
    assert sorted(d["payload_bytes"] for d in preview) == [10 + i for i in range(7)]
    [one] = store.dead_letters(position=("raw", 0, 5))
    assert one["payload"] == payloads[5] and one["payload_bytes"] == 15
    assert store.dead_letters(position=("raw", 1, 5)) == []
    assert store.count_dead_letters(position=("raw", 0, 5)) == 1
