"""Random requests against a real `meterline up` (real broker, real chdb): every answer is a
2xx, or a 4xx in Lago's envelope; never a 5xx (issue 16). Then the pipeline still counts a good
event, and reconciles.

Bodies: random JSON of every type (huge numbers, unicode, backslashes, control characters,
deep nesting), objects under the right root key with random fields, near-valid resources with
one field replaced, garbage bytes, bodies at and over the size limits. Every write endpoint gets
them (POST, PUT, DELETE), and every read endpoint random query strings and path ids.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

FINAL = f"final-{uuid.uuid4().hex[:8]}"  # resources of the final check: no fuzzer can name them
KNOWN = ["calls", "p1", "c1", "s1", "nope", "a\\", "a\\b", "%", "..", "é"]

# --- random values -----------------------------------------------------------------------------
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(["\\", "\t", "\n", "\x00", "'", '"', "%", "\u2028", "é",
                                      "😀", "a", "{", "}"]), max_size=12),
    st.sampled_from(KNOWN),
    st.sampled_from([257, 5_000, 300_000]).map(lambda n: "x" * n),  # over the id/event bounds
    st.sampled_from(["9999-12-31T00:00:00Z", "1969-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
                     "2099-12-31T23:59:59+14:00", "0001-01-01T00:00:00+01:00", "-1", "1e400",
                     "NaN", "02134", "1.000000000000000000001"]),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**9, -(10**9), 10**26, 1e20,
                     1e308, 5e-324, -0.0]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)

# near-valid resources: a valid body with some fields replaced or added
RANGES = [
    {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
    {"from_value": 10, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
]
TEMPLATES: dict[str, dict[str, Any]] = {
    "event": {"transaction_id": "t", "external_subscription_id": "s1", "code": "calls",
              "timestamp": 1_790_000_000, "properties": {"n": 1}},
    "billable_metric": {"code": "calls", "aggregation_type": "sum_agg", "field_name": "n",
                        "rounding_function": "round", "rounding_precision": 2,
                        "filters": [{"key": "region", "values": ["eu"]}]},
    "plan": {"code": "p1", "interval": "monthly", "amount_currency": "EUR",
             "charges": [{"billable_metric_code": "calls", "charge_model": "graduated",
                          "properties": {"graduated_ranges": RANGES},
                          "filters": [{"values": {"region": ["eu"]},
                                       "properties": {"graduated_ranges": RANGES}}]}]},
    "customer": {"external_id": "c1", "timezone": "Europe/Paris", "currency": "EUR"},
    "subscription": {"external_id": "s1", "external_customer_id": "c1", "plan_code": "p1",
                     "billing_time": "anniversary", "subscription_at": "2026-01-31T00:00:00Z"},
}
FIELDS = {
    root: sorted({*body, "lago_id", "id", "name", "properties", "charges", "filters",
                  "amount", "started_at", "terminated_at", "precise_total_amount_cents"})
    for root, body in TEMPLATES.items()
}


def near_valid(root: str) -> st.SearchStrategy[dict]:
    changes = st.dictionaries(st.sampled_from(FIELDS[root]), JSON, min_size=1, max_size=3)
    return changes.map(lambda c: {**TEMPLATES[root], **c})


def resource(root: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(TEMPLATES[root]), near_valid(root), near_valid(root), JSON)


def catalog_document() -> st.SearchStrategy[dict]:
    sections = {"billable_metrics": "billable_metric", "plans": "plan",
                "customers": "customer", "subscriptions": "subscription"}
    return st.dictionaries(
        st.one_of(st.sampled_from(list(sections)), TEXT),
        st.one_of(st.lists(st.one_of(*(near_valid(r) for r in sections.values())), max_size=3),
                  JSON),
        max_size=4,
    )


def encode(value: Any) -> bytes:
    """JSON text of any value (stdlib: huge integers, NaN and Infinity included)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([
        b"", b"{", b"[" * 5_000 + b"]" * 5_000, b'{"event":' * 3_000 + b"1" + b"}" * 3_000,
        b'{"event": {"transaction_id": "\\ud800"}}', b'{"events": [1e99999]}',
        b'{"event": 1' + b"0" * 5_000 + b"}", b"\xef\xbb\xbf{}", b"\xff\xfe{}", b"null",
        b'{"catalog": {"billable_metrics": [{"code": "m", "aggregation_type": "count_agg", '
        b'"description": "' + b'\\"' * 400_000 + b'"}]}}',
        b'{"event": {}, "event": null}',
        b"x" * 1_100_000,  # over METERLINE_MAX_BODY_BYTES
    ]),
)


def body_for(root: str | None, payload: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    rooted = (payload.map(lambda v: {root: v}) if root else payload).map(encode)
    return st.one_of(rooted, rooted, rooted, JSON.map(encode), GARBAGE)  # mostly near-valid


EVENTS_BATCH = st.one_of(st.lists(resource("event"), max_size=5), JSON)
# the web server answers a request line over 8 KB itself (a plain-text 400): ids stay below
PATH_ID = st.one_of(TEXT, st.sampled_from(KNOWN)).map(lambda t: quote(t, safe="") or "x").filter(
    lambda p: len(p) < 2_000)

WRITES = st.one_of(
    st.tuples(st.just("POST"), st.just("/api/v1/events"), body_for("event", resource("event"))),
    st.tuples(st.just("POST"), st.just("/api/v1/events/batch"),
              body_for("events", EVENTS_BATCH)),
    st.tuples(st.just("POST"), st.just("/api/v1/billable_metrics"),
              body_for("billable_metric", resource("billable_metric"))),
    st.tuples(st.just("PUT"), PATH_ID.map(lambda c: f"/api/v1/billable_metrics/{c}"),
              body_for("billable_metric", resource("billable_metric"))),
    st.tuples(st.just("POST"), st.just("/api/v1/plans"), body_for("plan", resource("plan"))),
    st.tuples(st.just("PUT"), PATH_ID.map(lambda c: f"/api/v1/plans/{c}"),
              body_for("plan", resource("plan"))),
    st.tuples(st.just("POST"), st.just("/api/v1/customers"),
              body_for("customer", resource("customer"))),
    st.tuples(st.just("POST"), st.just("/api/v1/subscriptions"),
              body_for("subscription", resource("subscription"))),
    st.tuples(st.just("POST"), st.just("/api/v1/meterline/catalog"),
              body_for("catalog", st.one_of(catalog_document(), JSON))),
    st.tuples(st.just("POST"), st.just("/api/v1/meterline/dead_letters/redrive"),
              body_for(None, st.one_of(
                  st.dictionaries(st.sampled_from(["error_code", "since", "until", "limit"]),
                                  JSON, max_size=3), JSON))),
    st.tuples(st.sampled_from(["DELETE"]),
              st.sampled_from(["billable_metrics", "plans", "subscriptions"]).flatmap(
                  lambda kind: PATH_ID.map(lambda i: f"/api/v1/{kind}/{i}")),
              st.just(b"")),
)

QUERY_KEYS = ["page", "per_page", "external_subscription_id", "period_index", "status[]",
              "status", "external_customer_id", "plan_code", "error_code", "since", "until",
              "all", "limit"]
QUERY = st.lists(
    st.tuples(st.sampled_from(QUERY_KEYS), st.one_of(TEXT.filter(lambda t: len(t) < 2_000),
                                                     NUMBERS.map(str))),
    max_size=4,
).map(lambda pairs: urlencode(pairs))
READS = st.tuples(
    st.one_of(
        st.sampled_from(["/api/v1/billable_metrics", "/api/v1/plans", "/api/v1/customers",
                         "/api/v1/subscriptions", "/api/v1/meterline/dead_letters",
                         "/api/v1/meterline/status"]),
        PATH_ID.map(lambda i: f"/api/v1/customers/{i}/current_usage"),
        PATH_ID.map(lambda i: f"/api/v1/events/{i}"),
        PATH_ID.map(lambda i: f"/api/v1/billable_metrics/{i}"),
        PATH_ID.map(lambda i: f"/api/v1/plans/{i}"),
        PATH_ID.map(lambda i: f"/api/v1/customers/{i}"),
        PATH_ID.map(lambda i: f"/api/v1/subscriptions/{i}"),
        st.tuples(PATH_ID, st.integers(-1, 2**65), st.integers(-1, 2**65)).map(
            lambda t: f"/api/v1/meterline/dead_letters/{t[0]}/{t[1]}/{t[2]}"),
    ),
    QUERY,
)


# the findings of issue 16 and what this test found, always sent first: (method, path, body)
BIG = "x" * 900_000
REGRESSIONS: list[tuple[str, str, bytes | None]] = [
    ("POST", "/api/v1/events", encode({"event": {**TEMPLATES["event"],
                                                 "external_subscription_id": BIG}})),
    ("POST", "/api/v1/events/batch", encode({"events": [
        TEMPLATES["event"], {**TEMPLATES["event"], "properties": {"blob": "x" * 600_000}},
        TEMPLATES["event"]]})),
    ("POST", "/api/v1/subscriptions", encode({"subscription": {**TEMPLATES["subscription"],
                                                               "external_id": BIG}})),
    ("POST", "/api/v1/subscriptions", encode({"subscription": {
        **TEMPLATES["subscription"], "external_id": "s9", "subscription_at": "9999-12-31"}})),
    ("GET", "/api/v1/customers/c1/current_usage?external_subscription_id=s1"
            "&period_index=-1000000", None),
    ("GET", "/api/v1/customers/c1/current_usage?external_subscription_id=" + "x" * 5_000, None),
    ("GET", "/api/v1/events/a%5C", None),
    ("GET", "/api/v1/events/a%5Cb?external_subscription_id=%5C", None),
    ("GET", "/api/v1/meterline/dead_letters?error_code=%5C&per_page=101", None),
    ("GET", "/api/v1/meterline/dead_letters?per_page=abc", None),
    ("POST", "/api/v1/meterline/catalog", encode({"catalog": {"billable_metrics": [
        {"code": "big", "aggregation_type": "count_agg", "description": '"' * 500_000}]}})),
    ("POST", "/api/v1/customers", encode({"customer": {"external_id": "c1",
                                                       "timezone": "x" * 300}})),
    ("GET", "/api/v1/billable_metrics/%7B", None),
    ("PUT", "/api/v1/events", b"{}"),
    ("GET", "/api/v1/nope", None),
]


# --- the test ----------------------------------------------------------------------------------
def call(url: str, key: str, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")  # numbers echoed
    except urllib.error.HTTPError as exc:  # exactly, e.g. 1e400: not orjson's to read
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw[:300]


def check(status: int, answer: Any, method: str, path: str, body: bytes | None) -> None:
    shown = (method, path[:200], (body or b"")[:300], status, str(answer)[:500])
    assert 200 <= status < 300 or 400 <= status < 500, shown
    if status >= 400:
        assert isinstance(answer, dict), shown
        assert answer.get("status") == status, shown
        assert isinstance(answer.get("error"), str) and isinstance(answer.get("code"), str), shown


def published(path: str, status: int, answer: Any) -> int:
    """Raw-topic messages a successful answer stands for."""
    if status != 200:
        return 0
    if path == "/api/v1/events":
        return 1
    if path == "/api/v1/events/batch":
        return len(answer["events"])
    if path.endswith("/redrive"):
        return answer["redriven"]
    return 0


def test_random_requests_never_get_a_server_error(stack_factory):
    stack = stack_factory().start()
    url, key = stack.client.url, stack.client.api_key
    started = time.monotonic()
    for root, body in TEMPLATES.items():
        if root != "event":
            status, answer = call(url, key, "POST", f"/api/v1/{root}s", encode({root: body}))
            assert status == 200, answer
    final_catalog = {
        "billable_metrics": [{"code": FINAL, "aggregation_type": "count_agg"}],
        "plans": [{"code": FINAL, "interval": "monthly", "amount_currency": "EUR",
                   "charges": [{"billable_metric_code": FINAL, "charge_model": "standard",
                                "properties": {"amount": "1"}}]}],
        "customers": [{"external_id": FINAL}],
        "subscriptions": [{"external_id": FINAL, "external_customer_id": FINAL,
                           "plan_code": FINAL, "started_at": "2026-01-01T00:00:00Z"}],
    }
    status, answer = call(url, key, "POST", "/api/v1/meterline/catalog",
                          encode({"catalog": final_catalog}))
    assert status == 200, answer
    sent = [0]
    for method, path, body in REGRESSIONS:
        status, answer = call(url, key, method, path, body)
        check(status, answer, method, path, body)
        sent[0] += published(path, status, answer)

    @settings(max_examples=1000, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(WRITES)
    def writes(request: tuple[str, str, bytes]) -> None:
        method, path, body = request
        status, answer = call(url, key, method, path, body)
        check(status, answer, method, path, body)
        sent[0] += published(path, status, answer)

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(READS)
    def reads(request: tuple[str, str]) -> None:
        path, query = request
        target = f"{path}?{query}" if query else path
        status, answer = call(url, key, "GET", target, None)
        check(status, answer, "GET", target, None)

    writes()
    reads()

    # the pipeline is alive: a good event afterwards is counted, and everything reconciles
    good = {"transaction_id": f"good-{uuid.uuid4().hex}", "external_subscription_id": FINAL,
            "code": FINAL}
    status, answer = call(url, key, "POST", "/api/v1/events", encode({"event": good}))
    assert status == 200, answer
    sent[0] += 1
    state = stack.wait_consumed(sent[0], timeout=60)
    usage = stack.client.get(
        f"/api/v1/customers/{FINAL}/current_usage?external_subscription_id={FINAL}")
    [charge] = usage["customer_usage"]["charges_usage"]
    assert charge["events_count"] == 1 and charge["amount_cents"] == 100
    assert state["reconciled"] is True
    assert time.monotonic() - started < 120  # bounded: about a minute on 2 shared cores
