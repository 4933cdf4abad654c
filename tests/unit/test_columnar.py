"""The columnar engine decides and writes what the per-event path does, on random batches.

Each example is a catalog with every aggregation type (a metric without a charge, filters,
pricing groups, a percentage and a dynamic charge, subscriptions that start and end within the
batch's hours) and a batch of JSON and Avro events and odd messages: duplicates inside the batch
and already stored, replays (stored positions inside the batch), values of every JSON type,
exact decimals longer than a float, unknown metrics and subscriptions, rejected messages.
Both paths must give the same tallies, dead letters (codes and messages, in order), dedup keys
and wire tables (rows compared as sets, decimals by value).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichment.catalog_index import CatalogIndex
from schemas.avro import encode_confluent
from schemas.catalog import Catalog, parse_billable_metric, parse_customer, parse_plan
from sinks.batch_tables import encode_batch
from sinks.store import LogPosition
from streams.batch import RawRecord, identity_of, process_batch
from streams.columnar.engine import ColumnarEngine
from tests.unit.catalog_factory import CUSTOMER, HOUR_MS, ORG, START_MS, subscription

EPOCH, TOPIC = "epoch_1", "raw"
START_S = START_MS // 1000
DECIMAL_COLUMNS = frozenset({
    "value_sum", "value_max", "latest_value", "precise_total_amount_cents", "value_time_sum",
    "decimal_value", "value",
})


def _charge(charge_id: str, code: str, model: str = "standard", **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"amount": "1"} if model == "standard" else {"rate": "1.5"}
    if model == "dynamic":
        props = {}
    return {"lago_id": charge_id, "billable_metric_code": code, "charge_model": model,
            "properties": {**props, **extra.pop("properties", {})}, **extra}


def build_index() -> CatalogIndex:
    metrics = [
        parse_billable_metric({"code": "calls", "aggregation_type": "count_agg"}, ORG),
        *(parse_billable_metric({"code": code, "aggregation_type": agg, "field_name": "v"}, ORG)
          for code, agg in [("gb", "sum_agg"), ("peak", "max_agg"), ("last", "latest_agg"),
                            ("users", "unique_count_agg"), ("seats", "weighted_sum_agg"),
                            ("free", "sum_agg"), ("money", "sum_agg")]),
    ]
    region = {"values": {"region": ["eu", "1"]}, "properties": {"amount": "2",
              "pricing_group_keys": ["tier"]}}
    both = {"values": {"region": ["us"], "tier": ["a"]}, "properties": {"amount": "3"}}
    one = parse_plan({"lago_id": "plan_one", "code": "one", "interval": "monthly",
                      "amount_currency": "EUR", "charges": [
        _charge("c_calls", "calls", properties={"pricing_group_keys": ["tier"]}),
        _charge("c_gb", "gb", filters=[region, both]),
        _charge("c_gb2", "gb", properties={"pricing_group_keys": ["region"]}),
        _charge("c_peak", "peak"), _charge("c_last", "last"), _charge("c_users", "users"),
        _charge("c_seats", "seats"), _charge("c_money", "money", "dynamic"),
    ]}, ORG)
    two = parse_plan({"lago_id": "plan_two", "code": "two", "interval": "monthly",
                      "amount_currency": "EUR", "charges": [
        _charge("c2_gb", "gb", "percentage"), _charge("c2_calls", "calls"),
    ]}, ORG)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    import time as _time
    at = lambda hours: _time.strftime(iso, _time.gmtime(START_S + hours * 3600))  # noqa: E731
    subs = [
        subscription("s_a", external_id="a", plan_code="one", started_at=at(0)),
        subscription("s_b", external_id="b", plan_code="two", started_at=at(0),
                     terminated_at=at(3)),
        subscription("s_b2", external_id="b", plan_code="one", started_at=at(3)),
        subscription("s_c", external_id="c", plan_code="one", started_at=at(2)),
    ]
    customer = parse_customer({"lago_id": "c_1", "external_id": CUSTOMER}, ORG)
    return CatalogIndex(Catalog(metrics=tuple(metrics), plans=(one, two), customers=(customer,),
                                subscriptions=tuple(subs)))


INDEX = build_index()

# Property values as raw JSON text, so that numbers keep every digit.
# Raw JSON text of each property's usual values (numbers keep every digit), and odd ones.
USUAL = {
    "v": ['"1.5"', '"0012.50"', "3", "-7", "2.500", "0.1234567890123456789", "1e3", '"1"',
          "123456789012345678901234.5", "0.0000000000001"],
    "region": ['"eu"', '"us"', '"1"', "1", '"apac"'],
    "tier": ['"a"', '"b"'],
    "operation_type": ['"add"', '"remove"'],
}
ODD = ['"abc"', "true", "null", "[1]", '{"x":1}', "1e26", "false", '""', "1.0"]
AVRO_USUAL = {"v": ["1.5", "7", 3, -2, 2.5], "region": ["eu", "us", "1", 1],
              "tier": ["a", "b"], "operation_type": ["add", "remove"]}
AVRO_ODD = [True, None, "abc"]
KEYS = ("v", "region", "tier", "operation_type")


@st.composite
def event_message(draw: st.DrawFn) -> bytes | None:
    """One raw message: mostly events, sometimes odd bytes."""
    kind = draw(st.integers(0, 39))
    if kind == 0:
        return draw(st.sampled_from([None, b"", b"{bad", b"[1]", b"\x00\x00\x00\x00\x01\xff",
                                     b'{"transaction_id":1}', b"\x00\x00"]))
    fields = {
        "transaction_id": draw(st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6", "t7"])),
        "external_subscription_id": draw(st.sampled_from(["a", "a", "a", "b", "b", "c", "nobody"])),
        "code": draw(st.sampled_from(
            ["calls", "gb", "gb", "peak", "last", "users", "seats", "free", "money"] * 3
            + ["nope"])),
        "organization_id": draw(st.sampled_from([ORG] * 9 + ["other"])),
    }
    seconds = START_S + draw(st.integers(-3600, 6 * 3600))
    timestamp = draw(st.sampled_from(["int", "fraction", "iso", "none"]))
    keys = ["v", *draw(st.lists(st.sampled_from(KEYS[1:]), unique=True, max_size=3))]
    if draw(st.integers(0, 9)) == 0:
        keys.pop(0)
    if kind <= 8:  # Avro
        record: dict[str, Any] = dict(fields)
        record["timestamp"] = None if timestamp == "none" else float(seconds)
        record["properties"] = {
            k: draw(st.sampled_from(AVRO_USUAL[k] * 4 + AVRO_ODD)) for k in keys}
        if draw(st.integers(0, 3)) == 0:
            record["precise_total_amount_cents"] = draw(st.sampled_from(["12.5", "1", "x"]))
        return encode_confluent(record)
    parts = [f'"{k}":{orjson.dumps(v).decode()}' for k, v in fields.items()]
    if timestamp == "int":
        parts.append(f'"timestamp":{seconds}')
    elif timestamp == "fraction":
        parts.append(f'"timestamp":{seconds}.{draw(st.integers(0, 9999))}')
    elif timestamp == "iso":
        parts.append(f'"timestamp":"{_iso(seconds)}"')
    props = ",".join(f'"{k}":{draw(st.sampled_from(USUAL[k] * 4 + ODD))}' for k in keys)
    parts.append(f'"properties":{{{props}}}')
    amount = draw(st.sampled_from(
        [None] * 12 + ['"12.5"', "0.0000000000000001", "3", "2.25", '"x"']))
    if amount is not None:
        parts.append(f'"precise_total_amount_cents":{amount}')
    return ("{" + ",".join(parts) + "}").encode()


def _iso(seconds: int) -> str:
    import time as _time
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(seconds))


@st.composite
def batch(draw: st.DrawFn) -> dict[str, Any]:
    values = draw(st.lists(event_message(), min_size=5, max_size=60))
    messages = []
    offsets = {0: draw(st.integers(0, 5)), 1: draw(st.integers(0, 5))}
    for value in values:
        partition = draw(st.integers(0, 1))
        messages.append(RawRecord(TOPIC, partition, offsets[partition], START_MS + HOUR_MS,
                                  value))
        offsets[partition] += 1
    messages.sort(key=lambda m: (m.partition, m.offset))
    txs = ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    stored: dict[bytes, list[LogPosition]] = {}
    for tx in draw(st.lists(st.sampled_from(txs), unique=True, max_size=3)):
        sub = draw(st.sampled_from(["a", "b", "c"]))
        inside = draw(st.booleans()) and messages
        message = messages[0] if inside else None
        position = (LogPosition(EPOCH, TOPIC, message.partition, message.offset)
                    if message is not None else LogPosition(EPOCH, TOPIC, 9, 1))
        stored[_ident(tx, sub)] = [position]
    also = {_ident(tx, "a"): START_MS for tx in draw(st.lists(st.sampled_from(txs), max_size=2))}
    rejected = {}
    if draw(st.booleans()):
        m = draw(st.sampled_from(messages))
        rejected[(m.partition, m.offset)] = ("storage_rejected", "refused")
    return {"messages": messages, "stored": stored, "also_seen": also, "rejected": rejected}


def _ident(tx: str, sub: str) -> bytes:
    from schemas.event import UsageEvent
    return identity_of(UsageEvent(ORG, sub, "x", tx, 0, {}, None))


def normalized(table: Any) -> list[tuple[tuple[str, str], ...]]:
    """A wire table's rows as sorted tuples; decimals by value, batch ids left out."""
    rows = []
    for row in table.to_pylist():
        row.pop("batch_id", None)
        for name in DECIMAL_COLUMNS & row.keys():
            if isinstance(row[name], str):
                with contextlib.suppress(ArithmeticError):
                    row[name] = Decimal(row[name]).normalize()
        rows.append(tuple(sorted((k, repr(v)) for k, v in row.items())))
    return sorted(rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch())
def test_columnar_engine_agrees_with_the_per_event_path(case: dict[str, Any]) -> None:
    def find_seen(keys: list[bytes], since: int) -> dict[bytes, list[LogPosition]]:
        return {k: case["stored"][k] for k in keys if k in case["stored"]}

    arguments = dict(log_epoch=EPOCH, find_seen=find_seen, dedup_window_days=30,
                     also_seen=case["also_seen"], rejected=case["rejected"])
    expected = process_batch(case["messages"], index=INDEX, **arguments)
    engine = ColumnarEngine(lambda: INDEX)
    got = engine.process(case["messages"], **arguments)

    assert got.result.tallies == expected.tallies
    assert [(d.message.offset, d.message.partition, d.code, d.reason)
            for d in got.result.dead_letters] == [
        (d.message.offset, d.message.partition, d.code, d.reason)
        for d in expected.dead_letters]
    assert got.result.stored_keys == expected.stored_keys
    old = encode_batch(expected, EPOCH, "b", 1)
    new = engine.encode(got, EPOCH, "b", 1)
    for part, table in old.tables.items():
        assert normalized(new.tables[part]) == normalized(table), part


def test_the_engine_takes_the_fast_path_for_the_usual_kinds() -> None:
    """Count, sum, max and latest rows are columns (the property test would pass if every
    row took the per-event functions; this one would not)."""
    body = {"transaction_id": "t", "external_subscription_id": "a", "code": "gb",
            "organization_id": ORG, "timestamp": START_S + 60, "properties": {"v": "2"}}
    message = RawRecord(TOPIC, 0, 0, START_MS, orjson.dumps(body))
    engine = ColumnarEngine(lambda: INDEX)
    got = engine.process([message], log_epoch=EPOCH, find_seen=lambda k, s: {},
                         dedup_window_days=30)
    assert len(got.fast.templates) == 2 and not got.result.rows  # c_gb and c_gb2
    tables = engine.encode(got, EPOCH, "b", 1).tables
    assert tables["rollups"].num_rows == 2 and tables["events"].num_rows == 2


def _usual(tx: str, code: str = "gb", sub: str = "a", value: str = "2") -> RawRecord:
    body = {"transaction_id": tx, "external_subscription_id": sub, "code": code,
            "organization_id": ORG, "timestamp": START_S + 60, "properties": {"v": value}}
    return RawRecord(TOPIC, 0, int(tx[1:]), START_MS, orjson.dumps(body))


def _rows(engine: ColumnarEngine, messages: list[RawRecord]) -> list[dict[str, Any]]:
    got = engine.process(messages, log_epoch=EPOCH, find_seen=lambda k, s: {},
                         dedup_window_days=30)
    rows: list[dict[str, Any]] = engine.encode(got, EPOCH, "b", 1).tables["events"].to_pylist()
    return rows


def test_a_new_catalog_index_is_used_from_the_next_batch() -> None:
    """Templates belong to one catalog index: a swapped index (a catalog change) gets new ones,
    so a batch is never enriched with the answers of the catalog before."""
    other = build_index()
    one_plan = parse_plan({"lago_id": "plan_new", "code": "one", "interval": "monthly",
                           "amount_currency": "EUR", "charges": [_charge("c_new", "gb")]}, ORG)
    changed = CatalogIndex(Catalog(
        metrics=tuple(INDEX.metrics.values()), plans=(one_plan,),
        customers=(parse_customer({"lago_id": "c_1", "external_id": CUSTOMER}, ORG),),
        subscriptions=(subscription("s_a", external_id="a", plan_code="one",
                                    started_at=_iso(START_S)),)))
    current = [other]
    engine = ColumnarEngine(lambda: current[0])
    assert sorted(r["charge_id"] for r in _rows(engine, [_usual("t1")])) == ["c_gb", "c_gb2"]
    current[0] = changed
    assert [r["charge_id"] for r in _rows(engine, [_usual("t2")])] == ["c_new"]
    assert [r["plan_id"] for r in _rows(engine, [_usual("t3")])] == ["plan_new"]


def test_the_template_table_starts_afresh_between_batches_when_full(monkeypatch: Any) -> None:
    """Past its limit the template table is cleared before a batch, never within one: every
    batch still writes what the per-event path writes."""
    import streams.columnar.templates as templates

    monkeypatch.setattr(templates, "TEMPLATE_LIMIT", 1)
    engine = ColumnarEngine(lambda: INDEX)
    batches = [[_usual(f"t{i}", value=str(i)), _usual(f"t{i + 1}", code="calls")]
               for i in range(1, 8, 2)]
    tables: list[Any] = []
    for messages in batches:
        expected = encode_batch(process_batch(
            messages, index=INDEX, log_epoch=EPOCH, find_seen=lambda k, s: {},
            dedup_window_days=30), EPOCH, "b", 1)
        processed = engine.process(
            messages, log_epoch=EPOCH, find_seen=lambda k, s: {}, dedup_window_days=30)
        got = engine.encode(processed, EPOCH, "b", 1)
        for part in ("events", "rollups"):
            assert normalized(got.tables[part]) == normalized(expected.tables[part])
        assert len(processed.templates) == 3  # a new table for each batch: its own 3 rows
        tables.append(processed.templates)  # kept alive, so that ids are distinct objects
    assert len({id(t) for t in tables}) == len(batches)


def test_batches_prepared_on_two_threads_at_once_get_their_own_rows() -> None:
    """The pipeline prepares the next batch while the quarantine may re-prepare the batch being
    written: with the interpreter switching threads as often as it can, every batch still
    writes what the per-event path writes (template ids are taken under a lock)."""
    import sys
    import threading

    def tiered(tx: int, tier: str) -> RawRecord:  # each tier is a new pricing group: a template
        body = {"transaction_id": f"t{tx}", "external_subscription_id": "a", "code": "calls",
                "organization_id": ORG, "timestamp": START_S + 60, "properties": {"tier": tier}}
        return RawRecord(TOPIC, 0, tx, START_MS, orjson.dumps(body))

    engine = ColumnarEngine(lambda: INDEX)
    batches = [[tiered(i, f"{n}-{i}") for i in range(300)] for n in range(6)]
    results: dict[int, Any] = {}

    def prepare(n: int) -> None:
        processed = engine.process(batches[n], log_epoch=EPOCH, find_seen=lambda k, s: {},
                                   dedup_window_days=30)
        results[n] = engine.encode(processed, EPOCH, "b", 1)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=prepare, args=(n,)) for n in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for n, messages in enumerate(batches):
        expected = encode_batch(process_batch(
            messages, index=INDEX, log_epoch=EPOCH, find_seen=lambda k, s: {},
            dedup_window_days=30), EPOCH, "b", 1)
        assert normalized(results[n].tables["events"]) == normalized(expected.tables["events"])
