"""Meterline's pure billing core: currencies, unit rounding, charge models, periods, proration.

No I/O: stdlib, ``decimal`` and ``zoneinfo`` only. Money is ``decimal.Decimal`` end to end.
"""

from billing.charge_models import PRICING_FUNCTIONS, compute_amount
from billing.currency import UnknownCurrency, amount_cents, currency_exponent, subunit
from billing.periods import (
    billing_period,
    billing_period_bounds,
    period_days,
    subscription_period_bounds,
)
from billing.proration import min_amount_true_up_cents, prorate_min_amount
from billing.rounding import round_units
from billing.usage import ChargeUsage
from billing.validation import validate_charge_properties

__all__ = [
    "PRICING_FUNCTIONS",
    "ChargeUsage",
    "UnknownCurrency",
    "amount_cents",
    "billing_period",
    "billing_period_bounds",
    "compute_amount",
    "currency_exponent",
    "min_amount_true_up_cents",
    "period_days",
    "prorate_min_amount",
    "round_units",
    "subscription_period_bounds",
    "subunit",
    "validate_charge_properties",
]
