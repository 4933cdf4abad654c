"""Routes for dead letters: list (a page at a time), read one, re-drive."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.web import Request, Response, View

from meterline.api import ApiResponse
from meterline.dead_letter_api import DeadLetterApi
from streams.web_lago import any_segment


def register_dead_letter_routes(app: faust.App, api: DeadLetterApi, guarded: Any) -> None:
    """``GET /api/v1/meterline/dead_letters``, ``GET …/dead_letters/{topic}/{partition}/{offset}``
    and ``POST …/dead_letters/redrive``. Store calls run in a thread, off the event loop."""

    @app.page("/api/v1/meterline/dead_letters")
    class DeadLetters(View):
        async def get(self, request: Request) -> Response:
            query = dict(request.query)  # type: ignore[attr-defined]

            async def handler(org: str, _body: bytes | None) -> ApiResponse:
                return await asyncio.to_thread(api.list, org, query)

            return await guarded(self, request, handler, needs_body=False)

    @app.page(any_segment(
        "/api/v1/meterline/dead_letters/{source_topic}/{source_partition}/{source_offset}"
    ))
    class DeadLetter(View):
        async def get(self, request: Request, source_topic: str, source_partition: str,
                      source_offset: str) -> Response:
            async def handler(org: str, _body: bytes | None) -> ApiResponse:
                return await asyncio.to_thread(
                    api.get, org, source_topic, source_partition, source_offset
                )

            return await guarded(self, request, handler, needs_body=False)

    @app.page("/api/v1/meterline/dead_letters/redrive")
    class Redrive(View):
        async def post(self, request: Request) -> Response:
            async def handler(org: str, body: bytes | None) -> ApiResponse:
                return await api.redrive(org, body or b"")

            return await guarded(self, request, handler, needs_body=True)
