"""A small synchronous client for the Meterline HTTP API (used by the CLI and the demo)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson


class ApiError(RuntimeError):
    """The API answered with an error status."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body}")


class MeterlineClient:
    """Calls the API at ``url`` with a Bearer ``api_key``."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send a JSON request; return the decoded JSON answer or raise :class:`ApiError`."""
        data = None if body is None else orjson.dumps(body)
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return orjson.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                decoded = orjson.loads(payload)
            except orjson.JSONDecodeError:
                decoded = payload.decode(errors="replace")
            raise ApiError(exc.code, decoded) from None

    def get(self, path: str) -> Any:
        """GET ``path``."""
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path``."""
        return self.request("POST", path, body)

    def ready(self) -> bool:
        """True when the stack is ready (``/ready`` answers 200: it takes events)."""
        return self._answers_ok("/ready")

    def healthy(self) -> bool:
        """True when the API answers its health check."""
        return self._answers_ok("/health")

    def _answers_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False
