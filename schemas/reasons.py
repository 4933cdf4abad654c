"""Why a message became a dead letter: the one list of reason codes.

A member *is* its string (``DeadLetterReason.NO_SUBSCRIPTION == "no_subscription"``), the
``error_code`` stored with the letter and the ``reason`` label of ``meterline_dead_letters_total``.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class DeadLetterReason(StrEnum):
    """The reason codes, by the step that gives them."""

    # decode (streams.batch)
    EVENT_TOO_LARGE = "event_too_large"  # over schemas.bounds.MAX_EVENT_BYTES, not read
    INVALID_JSON = "invalid_json"
    INVALID_AVRO = "invalid_avro"
    INVALID_EVENT = "invalid_event"  # a field breaks the event contract
    VALUE_OUT_OF_RANGE = "value_out_of_range"  # a number or instant the store cannot hold
    # enrich (enrichment.enricher)
    UNKNOWN_METRIC = "unknown_metric"
    INVALID_VALUE = "invalid_value"  # the metric's property missing or not a number
    NO_SUBSCRIPTION = "no_subscription"
    # write (streams.committer): the store refused the message's rows for another reason
    STORAGE_REJECTED = "storage_rejected"
    # any step: a bug met on one message; the message is set aside, the partition goes on
    PROCESSING_ERROR = "processing_error"
