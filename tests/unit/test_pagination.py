"""Pagination like Lago on every list endpoint: a bad ``page`` or ``per_page`` is a 422 naming
it (never a silent clamp), Lago's default and largest page is 100, and ``meta`` is Lago's,
empty lists included."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from api.dead_letters import DeadLetterApi
from api.envelope import ApiResponse
from api.lago import LagoControlApi
from api.pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE, Page, page_meta, requested_page
from services.catalog import CatalogService
from services.dead_letters import DeadLetterService
from sinks.memory_store import MemoryStore
from tests.unit.test_dead_letter_api import LettersDouble, RecordingPublisher

ORG = "org-1"
Lister = Callable[[dict[str, str]], ApiResponse]


def listers() -> dict[str, Lister]:
    """Every list endpoint, by its path."""
    store = MemoryStore()
    catalog = CatalogService(store)  # type: ignore[arg-type]
    lago = LagoControlApi(catalog, store)  # type: ignore[arg-type]
    letters = DeadLetterApi(DeadLetterService(
        store=LettersDouble([]), publisher=RecordingPublisher(),  # type: ignore[arg-type]
        default_organization_id=ORG))
    return {
        "/api/v1/billable_metrics": lambda q: lago.billable_metrics.list(ORG, q),
        "/api/v1/plans": lambda q: lago.plans.list(ORG, q),
        "/api/v1/customers": lambda q: lago.customers.list(ORG, q),
        "/api/v1/subscriptions": lambda q: lago.subscriptions.list(ORG, q),
        "/api/v1/meterline/dead_letters": lambda q: letters.list(ORG, q),
    }


BAD = [
    ({"per_page": str(MAX_PER_PAGE + 1)}, "per_page", "value_is_out_of_range"),
    ({"per_page": "500"}, "per_page", "value_is_out_of_range"),
    ({"per_page": "0"}, "per_page", "value_is_out_of_range"),
    ({"per_page": "-1"}, "per_page", "value_is_out_of_range"),
    ({"per_page": "ten"}, "per_page", "invalid_type"),
    ({"per_page": "2.5"}, "per_page", "invalid_type"),
    ({"per_page": ""}, "per_page", "invalid_type"),
    ({"per_page": "9" * 5000}, "per_page", "value_is_out_of_range"),
    ({"page": "0"}, "page", "value_is_out_of_range"),
    ({"page": "x"}, "page", "invalid_type"),
    ({"page": "١"}, "page", "invalid_type"),  # a digit, but not an ASCII one
]


@pytest.mark.parametrize("path", list(listers()))
@pytest.mark.parametrize(("query", "field", "code"), BAD)
def test_a_bad_page_or_page_size_is_a_422_on_every_list(path, query, field, code):
    answer = listers()[path](query)
    assert answer.status == 422, (path, query, answer.body)
    assert answer.body["code"] == "validation_errors"
    assert answer.body["error_details"] == {field: [code]}


@pytest.mark.parametrize("path", list(listers()))
def test_an_empty_list_has_lagos_empty_meta(path):
    answer = listers()[path]({"per_page": str(MAX_PER_PAGE)})
    assert answer.status == 200
    assert answer.body["meta"] == {"current_page": 0, "next_page": None, "prev_page": None,
                                   "total_pages": 0, "total_count": 0}


def test_lago_pages_by_100_and_serves_at_most_100():
    """getlago/lago-api, app/controllers/concerns/pagination.rb: ``PER_PAGE = 100``."""
    assert DEFAULT_PER_PAGE == MAX_PER_PAGE == 100
    assert requested_page(None, None) == Page(1, 100)
    assert requested_page("3", "100") == Page(3, 100)
    assert requested_page(" 2", "7 ") == Page(2, 7)


def test_a_page_slices_and_counts_as_lago_does():
    items = list(range(45))
    page = Page(3, 20)
    assert page.of(items) == list(range(40, 45))
    assert page.meta(45) == {"current_page": 3, "next_page": None, "prev_page": 2,
                             "total_pages": 3, "total_count": 45}
    assert Page(9, 20).of(items) == []
    assert page_meta(9, 20, 45)["next_page"] is None and page_meta(9, 20, 45)["prev_page"] == 8
    assert page_meta(1, 20, 45)["next_page"] == 2


def test_customers_come_a_page_at_a_time():
    store = MemoryStore()
    lago = LagoControlApi(CatalogService(store), store)  # type: ignore[arg-type]
    for i in range(5):
        created = lago.customers.create(ORG, orjson.dumps({"customer": {"external_id": f"c{i}"}}))
        assert created.status == 200, created.body
    second = lago.customers.list(ORG, {"page": "2", "per_page": "2"})
    assert len(second.body["customers"]) == 2
    assert second.body["meta"] == {"current_page": 2, "next_page": 3, "prev_page": 1,
                                   "total_pages": 3, "total_count": 5}
