"""percentage charge model (SPEC §6, Lago's percentage_service.rb); arithmetic in comments."""

from decimal import Decimal as D

from billing.charge_models import ChargeUsage, compute_amount

VALUES = (D(100), D(200), D(300), D(400))  # Σ = 1000, in timestamp order


def usage(units="1000", values=VALUES, count=None) -> ChargeUsage:
    return ChargeUsage(
        units=D(units),
        events_count=len(values) if count is None else count,
        event_values=values,
    )


def test_rate_only():
    # 1000 x 2% = 20
    assert compute_amount("percentage", {"rate": "2"}, usage()) == D("20")


def test_fixed_amount_per_event():
    # 1000 x 2% + 4 events x 0.5 = 20 + 2 = 22
    props = {"rate": "2", "fixed_amount": "0.5"}
    assert compute_amount("percentage", props, usage()) == D("22")


def test_no_usage_no_fixed_amount():
    props = {"rate": "2", "fixed_amount": "0.5"}
    assert compute_amount("percentage", props, usage("0", (), 0)) == 0


def test_free_units_per_events():
    # first 2 events free: free = 100 + 200 = 300; (1000 - 300) x 2% = 14;
    # 2 paid events x 0.5 = 1; total 15
    props = {"rate": "2", "fixed_amount": "0.5", "free_units_per_events": 2}
    assert compute_amount("percentage", props, usage()) == D("15")


def test_free_units_per_total_aggregation():
    # running total 100 (< 250, free), 300 (crosses 250): free = 250, 1 fully free event;
    # (1000 - 250) x 2% = 15; 3 paid events x 0.5 = 1.5; total 16.5
    props = {"rate": "2", "fixed_amount": "0.5", "free_units_per_total_aggregation": "250"}
    assert compute_amount("percentage", props, usage()) == D("16.5")


def test_free_total_reached_exactly_is_a_paid_event_like_lago():
    # values 250, 100 with 250 free: event 1 uses all free units but is not "below" the total,
    # so it pays the fixed amount (Lago: remaining > value). free = 250;
    # (350 - 250) x 2% = 2; 2 paid events x 0.5 = 1; total 3
    props = {"rate": "2", "fixed_amount": "0.5", "free_units_per_total_aggregation": "250"}
    assert compute_amount("percentage", props, usage("350", (D(250), D(100)))) == D("3")


def test_both_free_settings_total_is_smaller():
    # N = 3 events would free 600, total caps at 250 -> free 250, 1 fully free event:
    # (1000 - 250) x 2% = 15; 3 paid x 0.5 = 1.5; total 16.5 (Lago gives the same)
    props = {
        "rate": "2",
        "fixed_amount": "0.5",
        "free_units_per_events": 3,
        "free_units_per_total_aggregation": "250",
    }
    assert compute_amount("percentage", props, usage()) == D("16.5")


def test_both_free_settings_events_is_smaller():
    # only event 1 may be free: free = 100 (< 250), 1 free event;
    # (1000 - 100) x 2% = 18; 3 paid x 0.5 = 1.5; total 19.5 (Lago gives the same)
    props = {
        "rate": "2",
        "fixed_amount": "0.5",
        "free_units_per_events": 1,
        "free_units_per_total_aggregation": "250",
    }
    assert compute_amount("percentage", props, usage()) == D("19.5")


def test_free_units_above_units_is_zero_like_lago():
    # free 300 (both events) > units 250 -> 0, and no paid event -> no fixed amount
    props = {"rate": "2", "fixed_amount": "0.5", "free_units_per_total_aggregation": "1000"}
    assert compute_amount("percentage", props, usage("250", (D(100), D(200)))) == 0


MIN_MAX = {"rate": "2", "fixed_amount": "0.1"}
EVENTS = (D(10), D(100), D(300), D(1000))


def test_per_transaction_min_and_max():
    # each event: value x 2% + 0.1, clamped to [1, 5]
    # 10 -> 0.3 -> 1; 100 -> 2.1; 300 -> 6.1 -> 5; 1000 -> 20.1 -> 5; total 13.1
    props = {**MIN_MAX, "per_transaction_min_amount": "1", "per_transaction_max_amount": "5"}
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("13.1")


def test_per_transaction_min_only():
    # 1 + 2.1 + 6.1 + 20.1 = 29.3
    props = {**MIN_MAX, "per_transaction_min_amount": "1"}
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("29.3")


def test_per_transaction_max_only():
    # 0.3 + 2.1 + 5 + 5 = 12.4
    props = {**MIN_MAX, "per_transaction_max_amount": "5"}
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("12.4")


def test_per_transaction_with_free_events():
    # event 1 free (0, not clamped to the min); 2.1 + 5 + 5 = 12.1
    props = {
        **MIN_MAX,
        "per_transaction_min_amount": "1",
        "per_transaction_max_amount": "5",
        "free_units_per_events": 1,
    }
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("12.1")


def test_per_transaction_with_free_total():
    # 150 free: 10 free (140 left), 100 free (40 left), 300 pays 260 -> 5.3 -> 5, 1000 -> 5
    props = {
        **MIN_MAX,
        "per_transaction_min_amount": "1",
        "per_transaction_max_amount": "5",
        "free_units_per_total_aggregation": "150",
    }
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("10")


def test_blank_per_transaction_limits_are_ignored_like_lago():
    # "" is not "present" in Lago: plain path, 1410 x 2% + 4 x 0.1 = 28.2 + 0.4 = 28.6
    props = {**MIN_MAX, "per_transaction_min_amount": "", "per_transaction_max_amount": None}
    assert compute_amount("percentage", props, usage("1410", EVENTS)) == D("28.6")
