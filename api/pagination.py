"""Pagination as Lago answers it, for every list endpoint: ``page`` and ``per_page`` in, one
page of items and Lago's ``meta`` out.

Lago's default page size is 100 (``Pagination::PER_PAGE`` in getlago/lago-api,
``app/controllers/concerns/pagination.rb``), which is also the largest page served here. A
``page`` or ``per_page`` that is not an integer, is below 1, or (``per_page``) above
:data:`MAX_PER_PAGE` is refused with a 422 ``validation_errors`` naming the parameter, never
clamped in silence: a client asking for 500 rows and getting 100 would think it has them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from api.envelope import ApiResponse, validation
from schemas.errors import INVALID_TYPE, VALUE_IS_OUT_OF_RANGE

__all__ = ["DEFAULT_PER_PAGE", "MAX_PER_PAGE", "Page", "page_meta", "requested_page"]

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 100
_MAX_PAGE = 2**31 - 1  # an offset beyond any list, still an integer the store can take

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A requested page: its number (from 1) and size."""

    number: int = 1
    size: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        """How many items come before this page."""
        return (self.number - 1) * self.size

    def of(self, items: Sequence[T]) -> list[T]:
        """This page's items out of all of them."""
        return list(items[self.offset:self.offset + self.size])

    def meta(self, total: int) -> dict[str, Any]:
        """Lago's ``meta`` of this page when the list holds ``total`` items."""
        return page_meta(self.number, self.size, total)


def page_meta(page: int, per_page: int, total: int) -> dict[str, Any]:
    """Lago's pagination ``meta``: for an empty list every figure is 0 and there is no next or
    previous page, as Lago answers (``pagination_metadata``)."""
    if total <= 0:
        return {"current_page": 0, "next_page": None, "prev_page": None, "total_pages": 0,
                "total_count": 0}
    pages = math.ceil(total / per_page)
    return {
        "current_page": page,
        "next_page": page + 1 if page < pages else None,
        "prev_page": page - 1 if page > 1 else None,
        "total_pages": pages,
        "total_count": total,
    }


def _number(text: str | None, default: int, upper: int) -> int | str:
    """The integer in ``text`` (``default`` when absent), or the error code."""
    if text is None:
        return default
    stripped = text.strip()
    if not stripped.lstrip("-").isdigit() or not stripped.isascii():
        return INVALID_TYPE
    if len(stripped) > 12:  # far beyond any bound, and no 5,000-digit int() to make
        return VALUE_IS_OUT_OF_RANGE
    value = int(stripped)
    return value if 1 <= value <= upper else VALUE_IS_OUT_OF_RANGE


def requested_page(page: str | None, per_page: str | None) -> Page | ApiResponse:
    """The page a query asks for (its ``page`` and ``per_page`` values), or the 422."""
    number = _number(page, 1, _MAX_PAGE)
    size = _number(per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)
    details = {name: [code] for name, code in (("page", number), ("per_page", size))
               if isinstance(code, str)}
    if details:
        return validation(details)
    assert isinstance(number, int) and isinstance(size, int)
    return Page(number, size)
