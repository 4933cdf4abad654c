"""Routes for dead letters: list and re-drive."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from meterline.api import ApiResponse
from meterline.dead_letter_api import DeadLetterApi


def register_dead_letter_routes(app: faust.App, api: DeadLetterApi, guarded: Any) -> None:
    """``GET /api/v1/meterline/dead_letters`` and ``POST …/dead_letters/redrive``."""

    @app.page("/api/v1/meterline/dead_letters")
    class DeadLetters(View):
        async def get(self, request: Request) -> Response:
            query = dict(request.query)  # type: ignore[attr-defined]

            async def handler(org: str, _body: bytes | None) -> ApiResponse:
                return api.list(org, query)

            return await guarded(self, request, handler, needs_body=False)

    @app.page("/api/v1/meterline/dead_letters/redrive")
    class Redrive(View):
        async def post(self, request: Request) -> Response:
            async def handler(org: str, body: bytes | None) -> ApiResponse:
                return await api.redrive(org, body or b"")

            return await guarded(self, request, handler, needs_body=True)
