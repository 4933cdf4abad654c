"""Billing periods (SPEC §7): plan interval and billing_time in the customer's timezone.

Periods are built from local calendar dates, then each local midnight is converted to UTC, so
DST changes and offsets such as +05:30 are exact. ``from`` is the start of the first local day,
the inclusive ``to`` the last microsecond of the last local day; both are clamped to the
subscription's start and termination.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from schemas.catalog import Plan, Subscription

INTERVALS = frozenset({"weekly", "monthly", "quarterly", "yearly"})
BILLING_TIMES = frozenset({"calendar", "anniversary"})
_INTERVAL_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
#: Calendar periods are anniversary periods anchored on a Monday that is also January 1st.
_CALENDAR_ANCHOR = date(2001, 1, 1)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone: {timezone!r}") from None


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _add_months(anchor: date, months: int) -> date:
    """``anchor`` moved by ``months``; a missing day (31st, Feb 29) becomes the month's last day."""
    years, month0 = divmod(anchor.month - 1 + months, 12)
    year = anchor.year + years
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor.day, last_day))


def _local_period(interval: str, anchor: date, day: date, index: int) -> tuple[date, date]:
    """[start, next start) in local dates of the period ``index`` periods away from ``day``'s."""
    if interval == "weekly":
        start = anchor + timedelta(days=7 * ((day - anchor).days // 7 + index))
        return start, start + timedelta(days=7)
    step = _INTERVAL_MONTHS[interval]
    k = ((day.year - anchor.year) * 12 + day.month - anchor.month) // step
    if _add_months(anchor, k * step) > day:
        k -= 1
    k += index
    return _add_months(anchor, k * step), _add_months(anchor, (k + 1) * step)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """UTC instant where local ``day`` starts (a skipped midnight maps to the DST jump)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def billing_period_bounds(
    *,
    interval: str,
    billing_time: str,
    subscription_started_at: datetime,
    subscription_terminated_at: datetime | None,
    timezone: str,
    at: datetime,
    index: int = 0,
    clamp: bool = True,
) -> tuple[datetime, datetime]:
    """UTC ``[from, to_exclusive)`` of the period holding ``at`` (shifted by ``index`` periods).

    Calendar periods start on Monday / the 1st / Jan-Apr-Jul-Oct 1 / Jan 1; anniversary periods
    on the subscription's local start day (the month's last day when it has no such day, as
    Lago). With ``clamp`` (default) ``from >= started_at`` and ``to_exclusive <= terminated_at
    + 1µs``; a period left empty raises ``ValueError``. This is the form storage queries use.
    """
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval: {interval!r}")
    if billing_time not in BILLING_TIMES:
        raise ValueError(f"unknown billing_time: {billing_time!r}")
    _require_aware("at", at)
    _require_aware("subscription_started_at", subscription_started_at)
    if subscription_terminated_at is not None:
        _require_aware("subscription_terminated_at", subscription_terminated_at)
    zone = _zone(timezone)
    if billing_time == "calendar":
        anchor = _CALENDAR_ANCHOR
    else:
        anchor = subscription_started_at.astimezone(zone).date()
    start, end = _local_period(interval, anchor, at.astimezone(zone).date(), index)
    from_utc, to_exclusive = _local_midnight(start, zone), _local_midnight(end, zone)
    if not clamp:
        return from_utc, to_exclusive
    from_utc = max(from_utc, subscription_started_at.astimezone(UTC))
    if subscription_terminated_at is not None:
        to_exclusive = min(
            to_exclusive, subscription_terminated_at.astimezone(UTC) + _ONE_MICROSECOND
        )
    if from_utc >= to_exclusive:
        raise ValueError("the period is outside the subscription's lifetime")
    return from_utc, to_exclusive


def subscription_period_bounds(
    sub: Subscription, plan: Plan, timezone: str, at: datetime, *, index: int = 0,
    clamp: bool = True,
) -> tuple[datetime, datetime]:
    """:func:`billing_period_bounds` of a subscription on its plan, in its customer's
    ``timezone``."""
    return billing_period_bounds(
        interval=plan.interval,
        billing_time=sub.billing_time,
        subscription_started_at=sub.started_at,
        subscription_terminated_at=sub.terminated_at,
        timezone=timezone,
        at=at,
        index=index,
        clamp=clamp,
    )


def billing_period(
    *,
    interval: str,
    billing_time: str,
    subscription_started_at: datetime,
    subscription_terminated_at: datetime | None,
    timezone: str,
    at: datetime,
    index: int = 0,
) -> tuple[datetime, datetime]:
    """UTC ``(from, to)`` of the period holding ``at``, ``to`` inclusive (23:59:59.999999 local,
    or ``terminated_at``), as Lago reports periods. See :func:`billing_period_bounds`."""
    from_utc, to_exclusive = billing_period_bounds(
        interval=interval,
        billing_time=billing_time,
        subscription_started_at=subscription_started_at,
        subscription_terminated_at=subscription_terminated_at,
        timezone=timezone,
        at=at,
        index=index,
    )
    return from_utc, to_exclusive - _ONE_MICROSECOND


def period_days(from_utc: datetime, to_exclusive: datetime, timezone: str) -> int:
    """Number of local calendar days touched by ``[from_utc, to_exclusive)`` (0 when empty).

    A DST month still counts its calendar days (March in New York: 31 days of 743 hours).
    """
    _require_aware("from_utc", from_utc)
    _require_aware("to_exclusive", to_exclusive)
    if to_exclusive <= from_utc:
        return 0
    zone = _zone(timezone)
    first = from_utc.astimezone(zone).date()
    last = (to_exclusive - _ONE_MICROSECOND).astimezone(zone).date()
    return (last - first).days + 1
