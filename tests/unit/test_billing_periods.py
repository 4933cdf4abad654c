"""Billing periods (SPEC §7); expected instants derived by hand from the zone's UTC offset."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.periods import billing_period, billing_period_bounds, period_days


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def end_of(*args) -> datetime:
    """Inclusive end: the given UTC instant minus one microsecond."""
    return utc(*args) - timedelta(microseconds=1)


STARTED = utc(2020, 1, 1)


def _kwargs(at, interval, billing_time, started, terminated, tz, index):
    return dict(
        interval=interval,
        billing_time=billing_time,
        subscription_started_at=started,
        subscription_terminated_at=terminated,
        timezone=tz,
        at=at,
        index=index,
    )


def period(at, *, interval="monthly", billing_time="calendar", started=STARTED,
           terminated=None, tz="UTC", index=0):  # fmt: skip
    """billing_period: inclusive ``to``."""
    return billing_period(**_kwargs(at, interval, billing_time, started, terminated, tz, index))


def bounds(at, *, interval="monthly", billing_time="calendar", started=STARTED,
           terminated=None, tz="UTC", index=0):  # fmt: skip
    """billing_period_bounds: exclusive ``to``."""
    return billing_period_bounds(
        **_kwargs(at, interval, billing_time, started, terminated, tz, index)
    )


# --- calendar ------------------------------------------------------------------------------


def test_monthly_calendar_utc():
    # Feb 2024 has 29 days: [Feb 1 00:00, Feb 29 23:59:59.999999], exclusive end Mar 1 00:00
    assert period(utc(2024, 2, 15, 12)) == (utc(2024, 2, 1), end_of(2024, 3, 1))
    assert bounds(utc(2024, 2, 15, 12)) == (utc(2024, 2, 1), utc(2024, 3, 1))


def test_monthly_calendar_new_york_winter():
    # EST = UTC-5: Jan 1 00:00 local = 05:00Z; Feb 1 00:00 local = 05:00Z
    got = period(utc(2024, 1, 15), tz="America/New_York")
    assert got == (utc(2024, 1, 1, 5), end_of(2024, 2, 1, 5))


def test_monthly_calendar_new_york_summer():
    # EDT = UTC-4: Jun 1 00:00 local = 04:00Z; Jul 1 00:00 local = 04:00Z
    got = bounds(utc(2024, 6, 15), tz="America/New_York")
    assert got == (utc(2024, 6, 1, 4), utc(2024, 7, 1, 4))


def test_at_is_read_in_the_customer_timezone():
    # Feb 1 03:00Z is Jan 31 22:00 in New York -> January's period
    got = bounds(utc(2024, 2, 1, 3), tz="America/New_York")
    assert got == (utc(2024, 1, 1, 5), utc(2024, 2, 1, 5))


def test_monthly_calendar_kolkata_half_hour_offset():
    # IST = UTC+05:30: Feb 1 00:00 local = Jan 31 18:30Z; Mar 1 00:00 local = Feb 29 18:30Z.
    # at = Jan 31 19:00Z is Feb 1 00:30 local -> February's period
    got = period(utc(2024, 1, 31, 19), tz="Asia/Kolkata")
    assert got == (utc(2024, 1, 31, 18, 30), end_of(2024, 2, 29, 18, 30))


def test_weekly_calendar_starts_monday():
    # 2024-05-15 is a Wednesday: Monday May 13 .. Sunday May 19
    expected = (utc(2024, 5, 13), end_of(2024, 5, 20))
    assert period(utc(2024, 5, 15), interval="weekly") == expected
    assert period(utc(2024, 5, 13), interval="weekly") == expected  # Monday 00:00
    assert period(utc(2024, 5, 19, 23, 59), interval="weekly") == expected  # Sunday night


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        (utc(2024, 2, 10), utc(2024, 1, 1), utc(2024, 4, 1)),
        (utc(2024, 5, 15), utc(2024, 4, 1), utc(2024, 7, 1)),
        (utc(2024, 9, 30, 23), utc(2024, 7, 1), utc(2024, 10, 1)),
        (utc(2024, 12, 31), utc(2024, 10, 1), utc(2025, 1, 1)),
    ],
)
def test_quarterly_calendar(at, start, end):
    assert bounds(at, interval="quarterly") == (start, end)


def test_yearly_calendar():
    assert period(utc(2024, 7, 4), interval="yearly") == (utc(2024, 1, 1), end_of(2025, 1, 1))


# --- anniversary ---------------------------------------------------------------------------

JAN_31 = utc(2022, 1, 31)


def test_anniversary_monthly_jan_31_follows_lago_last_day_anchor():
    # Anchors: Jan 31, Feb 28 (Feb has no 31st -> last day), Mar 31, Apr 30 (as Lago's
    # previous_anniversary_day/build_date; Lago's spec: sub Jan 31 -> to 2022-02-27 23:59:59).
    assert period(utc(2022, 2, 10), billing_time="anniversary", started=JAN_31) == (
        utc(2022, 1, 31),
        end_of(2022, 2, 28),
    )
    # The February-anchored period starts at the end of February and runs to Mar 30
    assert period(utc(2022, 2, 28), billing_time="anniversary", started=JAN_31) == (
        utc(2022, 2, 28),
        end_of(2022, 3, 31),
    )
    assert period(utc(2022, 4, 15), billing_time="anniversary", started=JAN_31) == (
        utc(2022, 3, 31),
        end_of(2022, 4, 30),
    )


def test_anniversary_monthly_jan_31_leap_year():
    # 2024: Feb 29 is the February anchor, so the first period ends Feb 28 23:59:59.999999
    start = utc(2024, 1, 31)
    assert period(utc(2024, 2, 15), billing_time="anniversary", started=start) == (
        start,
        end_of(2024, 2, 29),
    )


def test_anniversary_uses_local_start_day():
    # Started Mar 15 02:00Z = Mar 14 22:00 in New York -> anchor day 14 (EDT, UTC-4):
    # period Apr 14 .. May 13 local = [Apr 14 04:00Z, May 14 04:00Z)
    got = bounds(
        utc(2024, 4, 20),
        billing_time="anniversary",
        started=utc(2024, 3, 15, 2),
        tz="America/New_York",
    )
    assert got == (utc(2024, 4, 14, 4), utc(2024, 5, 14, 4))


def test_anniversary_weekly():
    # Started Thursday May 2: periods run Thursday .. Wednesday; May 15 is a Wednesday
    got = period(
        utc(2024, 5, 15, 12), interval="weekly", billing_time="anniversary", started=utc(2024, 5, 2)
    )
    assert got == (utc(2024, 5, 9), end_of(2024, 5, 16))


def test_anniversary_quarterly_end_of_month():
    # Started Nov 30 2023: anchors Nov 30, Feb 29 (2024 has no Feb 30), May 30
    got = bounds(
        utc(2024, 3, 10),
        interval="quarterly",
        billing_time="anniversary",
        started=utc(2023, 11, 30),
    )
    assert got == (utc(2024, 2, 29), utc(2024, 5, 30))


def test_anniversary_yearly_feb_29():
    started = utc(2024, 2, 29)
    # 2025 has no Feb 29 -> anchor Feb 28; 2026 anchor Feb 28 too
    got = bounds(utc(2025, 6, 1), interval="yearly", billing_time="anniversary", started=started)
    assert got == (utc(2025, 2, 28), utc(2026, 2, 28))
    # leap 2028 -> Feb 29 again
    got = bounds(utc(2028, 3, 1), interval="yearly", billing_time="anniversary", started=started)
    assert got == (utc(2028, 2, 29), utc(2029, 2, 28))


# --- clamping ------------------------------------------------------------------------------


def test_clamped_to_subscription_start():
    started = utc(2024, 2, 10, 15, 30)
    assert period(utc(2024, 2, 20), started=started) == (started, end_of(2024, 3, 1))


def test_clamped_to_termination():
    terminated = utc(2024, 2, 20, 8)
    assert period(utc(2024, 2, 20), terminated=terminated) == (utc(2024, 2, 1), terminated)
    # exclusive form: one microsecond after terminated_at, so ts <= terminated_at is inside
    assert bounds(utc(2024, 2, 20), terminated=terminated) == (
        utc(2024, 2, 1),
        terminated + timedelta(microseconds=1),
    )


def test_termination_in_a_later_period_does_not_clamp():
    assert period(utc(2024, 2, 15), terminated=utc(2024, 3, 10)) == (
        utc(2024, 2, 1),
        end_of(2024, 3, 1),
    )


def test_period_outside_subscription_raises():
    with pytest.raises(ValueError):
        period(utc(2024, 1, 15), started=utc(2024, 2, 10))
    with pytest.raises(ValueError):
        period(utc(2024, 4, 15), terminated=utc(2024, 3, 10))


# --- index ---------------------------------------------------------------------------------


def test_period_by_index():
    kwargs = dict(
        interval="monthly",
        billing_time="calendar",
        subscription_started_at=utc(2020, 1, 1),
        subscription_terminated_at=None,
        timezone="America/New_York",
        at=utc(2024, 3, 15),
    )
    assert billing_period(**kwargs, index=0) == period(utc(2024, 3, 15), tz="America/New_York")
    # previous: February, EST both ends
    assert billing_period(**kwargs, index=-1) == (utc(2024, 2, 1, 5), end_of(2024, 3, 1, 5))
    assert billing_period(**kwargs, index=-2) == (utc(2024, 1, 1, 5), end_of(2024, 2, 1, 5))
    # next: April, EDT both ends
    assert billing_period(**kwargs, index=1) == (utc(2024, 4, 1, 4), end_of(2024, 5, 1, 4))


def test_period_by_index_anniversary():
    # at Mar 15 2022 is in [Feb 28, Mar 31); the previous period is [Jan 31, Feb 28)
    got = period(utc(2022, 3, 15), billing_time="anniversary", started=JAN_31, index=-1)
    assert got == (utc(2022, 1, 31), end_of(2022, 2, 28))


# --- DST and days --------------------------------------------------------------------------


def test_dst_spring_forward_month():
    # March 2024 in New York: Mar 1 00:00 EST = 05:00Z, Apr 1 00:00 EDT = 04:00Z
    start, end = bounds(utc(2024, 3, 20), tz="America/New_York")
    assert (start, end) == (utc(2024, 3, 1, 5), utc(2024, 4, 1, 4))
    assert end - start == timedelta(days=31) - timedelta(hours=1)  # 743 hours
    assert period_days(start, end, "America/New_York") == 31


def test_dst_fall_back_month():
    # November 2024: Nov 1 00:00 EDT = 04:00Z, Dec 1 00:00 EST = 05:00Z; 721 hours, 30 days
    start, end = bounds(utc(2024, 11, 20), tz="America/New_York")
    assert (start, end) == (utc(2024, 11, 1, 4), utc(2024, 12, 1, 5))
    assert period_days(start, end, "America/New_York") == 30


def test_skipped_local_midnight_starts_at_the_dst_jump():
    # Havana skips 2024-03-10 00:00 (CST -5 -> CDT -4): the day starts at 05:00Z (= 01:00 CDT).
    # Weekly anniversary from Sunday Mar 3: period Sunday Mar 10 .. Saturday Mar 16
    got = bounds(
        utc(2024, 3, 12),
        interval="weekly",
        billing_time="anniversary",
        started=utc(2024, 3, 3, 5),
        tz="America/Havana",
    )
    assert got == (utc(2024, 3, 10, 5), utc(2024, 3, 17, 4))


def test_period_days():
    assert period_days(utc(2024, 2, 1), utc(2024, 3, 1), "UTC") == 29
    # partial period Feb 10 15:30 .. end of Feb: Feb 10..29 = 20 days
    assert period_days(utc(2024, 2, 10, 15, 30), utc(2024, 3, 1), "UTC") == 20
    assert period_days(utc(2024, 1, 31, 18, 30), utc(2024, 2, 29, 18, 30), "Asia/Kolkata") == 29
    assert period_days(utc(2024, 2, 1), utc(2024, 2, 1), "UTC") == 0


# --- errors --------------------------------------------------------------------------------


def test_invalid_arguments():
    with pytest.raises(ValueError):
        period(datetime(2024, 2, 1))  # naive
    with pytest.raises(ValueError):
        period(utc(2024, 2, 1), interval="daily")
    with pytest.raises(ValueError):
        period(utc(2024, 2, 1), billing_time="whenever")
    with pytest.raises(ValueError):
        period(utc(2024, 2, 1), tz="Mars/Olympus_Mons")
