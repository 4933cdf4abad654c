"""Plain-text tables of priced usage, for the CLI and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from billing.currency import currency_exponent


def money(cents: int, currency: str) -> str:
    """``1234`` EUR cents -> ``12.34 EUR`` (using the currency's exponent)."""
    exponent = currency_exponent(currency)
    return f"{Decimal(cents).scaleb(-exponent):.{exponent}f} {currency}"


def usage_table(usages: Sequence[dict[str, Any]]) -> str:
    """One line per (subscription, charge, filter) with units, events and amount."""
    header = f"{'subscription':<14} {'charge':<28} {'units':>12} {'events':>8} {'amount':>14}"
    lines = [header, "-" * len(header)]
    for usage in usages:
        currency = usage["currency"]
        sub = usage.get("external_subscription_id") or ""
        for charge in usage["charges_usage"]:
            name = f"{charge['billable_metric']['code']} ({charge['charge']['charge_model']})"
            lines.append(
                f"{sub:<14} {name:<28} {charge['units']:>12} {charge['events_count']:>8} "
                f"{money(charge['amount_cents'], currency):>14}"
            )
            for flt in charge["filters"]:
                label = "  " + (
                    ",".join(f"{k}={'|'.join(v)}" for k, v in flt["values"].items()) or "(default)"
                )
                lines.append(
                    f"{'':<14} {label:<28} {flt['units']:>12} {flt['events_count']:>8} "
                    f"{money(flt['amount_cents'], currency):>14}"
                )
        lines.append(
            f"{sub:<14} {'TOTAL':<28} {'':>12} {'':>8} "
            f"{money(usage['amount_cents'], currency):>14}"
        )
    return "\n".join(lines)
