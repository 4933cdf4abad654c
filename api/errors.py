"""What a request is answered with when its handler raised: 503 with ``Retry-After`` when a
retry can succeed, else 500 (everything a caller can fix is a 4xx before anything is written,
so any other exception is a bug)."""

from __future__ import annotations

import dataclasses

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from api.envelope import ApiResponse, error
from services.publishing import PublishFailed
from sinks.store import StoreDataError, StoreError

RETRY_AFTER_SECONDS = 1


def retryable(exc: BaseException) -> bool:
    """True for a failure a retry can fix: the store or Kafka down, slow or not ready yet."""
    if isinstance(exc, StoreDataError):  # the engine refused the data: it would again
        return False
    if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
        return False
    return isinstance(exc, StoreError | PublishFailed | KafkaError | TimeoutError)


def retry_later(code: str) -> ApiResponse:
    """503 ``code`` with ``Retry-After``."""
    return dataclasses.replace(
        error(503, code), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def failure_response(exc: BaseException) -> ApiResponse:
    """The answer to a request whose handler raised ``exc``.

    503 with ``Retry-After`` when a retry can succeed. Everything a caller can fix is
    rejected with a 4xx before anything is written, so any other exception is a bug: 500.
    """
    if retryable(exc):
        return retry_later("temporarily_unavailable")
    return error(500, "internal_error")


def not_ready() -> ApiResponse:
    """The answer to a request that came before the worker was ready: retry shortly."""
    return retry_later("not_ready")
