"""Property tests: one-range graduated/volume pricing agrees with simpler models."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.charge_models import ChargeUsage, compute_amount

units_st = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False)
price_st = st.decimals(min_value=0, max_value=10**4, places=6, allow_nan=False)


def one_range(price: Decimal, flat: Decimal) -> list[dict]:
    return [
        {"from_value": 0, "to_value": None, "per_unit_amount": str(price), "flat_amount": str(flat)}
    ]


@given(units=units_st, price=price_st)
def test_graduated_single_open_range_equals_standard(units, price):
    usage = ChargeUsage(units=units, events_count=1)
    graduated = compute_amount(
        "graduated", {"graduated_ranges": one_range(price, Decimal(0))}, usage
    )
    assert graduated == compute_amount("standard", {"amount": str(price)}, usage)


@given(units=units_st, price=price_st, flat=price_st)
def test_volume_equals_graduated_with_one_range(units, price, flat):
    # at 0 units too: both pay the first range's flat fee (Lago #5760, volume_service.rb)
    usage = ChargeUsage(units=units, events_count=1)
    ranges = one_range(price, flat)
    volume = compute_amount("volume", {"volume_ranges": ranges}, usage)
    assert volume == compute_amount("graduated", {"graduated_ranges": ranges}, usage)
    assert volume == units * price + flat
