"""What the store can hold: the one place that bounds every input at the edge.

Every number, instant and size accepted by the HTTP API or read from the raw topic must fit
the ClickHouse columns it ends in, so that no accepted input (and no sequence of them) can make
an INSERT or a read fail. An input outside these bounds is the caller's error: a 4xx at the
API, a dead letter with a reason code on the raw topic.

* Decimals (event values, ``precise_total_amount_cents``) are stored as ``Decimal(38, 12)``:
  magnitude below ``10**26``; more than 12 decimals are rounded half-even to 12.
  Aggregate columns are ``Decimal(76, 12)``, so sums of accepted values cannot overflow.
* Instants (event timestamps, catalog dates) lie in ``[1970-01-01, 2100-01-01)`` UTC: the
  roll-up buckets are ``DateTime`` (seconds in 32 bits, up to 2106).
* One event is at most ``MAX_EVENT_BYTES`` of JSON (or Avro), well below what Kafka producers
  and brokers accept by default (1 MiB).
* Identifiers (``external_subscription_id``, ``code``, ``organization_id``) are at most
  ``MAX_ID_LENGTH`` characters; ``transaction_id`` too (SPEC §1).
"""

from __future__ import annotations

from decimal import Decimal

from schemas.reasons import DeadLetterReason

__all__ = [
    "DECIMAL_SCALE",
    "MAX_ABS_DECIMAL",
    "MAX_EVENT_BYTES",
    "MAX_ID_LENGTH",
    "MAX_INSTANT_MS",
    "MIN_INSTANT_MS",
    "VALUE_IS_OUT_OF_RANGE",
    "VALUE_OUT_OF_RANGE",
    "decimal_fits",
    "instant_fits",
]

#: Dead-letter reason code of a value the store cannot hold.
VALUE_OUT_OF_RANGE = DeadLetterReason.VALUE_OUT_OF_RANGE
#: The HTTP 422 code (``error_details``) of the same: Lago's code for a value out of range.
VALUE_IS_OUT_OF_RANGE = "value_is_out_of_range"

#: Decimals are stored with 12 decimals and 38 digits: |value| < 10**26.
DECIMAL_SCALE = 12
MAX_ABS_DECIMAL = Decimal(10) ** 26

#: 1970-01-01T00:00:00Z, the first accepted instant.
MIN_INSTANT_MS = 0
#: 2100-01-01T00:00:00Z, the first instant NOT accepted.
MAX_INSTANT_MS = 4_102_444_800_000

#: Largest event, in bytes of its encoded form (JSON or Avro).
MAX_EVENT_BYTES = 256 * 1024

#: Longest identifier, in characters.
MAX_ID_LENGTH = 256


#: The smallest magnitude that rounds (half-even, 12 places) to ``MAX_ABS_DECIMAL``: from here a
#: value no longer fits once rounded. Written out, as arithmetic would round to the context.
_ROUNDS_TO_MAX = Decimal("99999999999999999999999999.9999999999995")


def decimal_fits(value: Decimal) -> bool:
    """True when ``value`` is finite and fits ``Decimal(38, 12)`` (after rounding to 12 places).

    Exact whatever the thread's decimal context: ``copy_abs`` and comparisons never round
    (``abs()`` would, to the context's precision, and overflow on ``Decimal("1E+1000000")``).
    """
    return value.is_finite() and value.copy_abs() < _ROUNDS_TO_MAX


def instant_fits(ms: int) -> bool:
    """True when ``ms`` (Unix milliseconds) lies in the accepted range of instants."""
    return MIN_INSTANT_MS <= ms < MAX_INSTANT_MS
