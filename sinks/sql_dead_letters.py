"""The store's SQL for dead letters: listing, counting, and recording re-drives."""

from __future__ import annotations

import base64
from typing import Any

from sinks import ddl
from sinks.sql_base import SqlBase
from sinks.wire import table_for


class DeadLetterSql(SqlBase):
    """Dead letters and their re-drives."""

    def mark_redriven(self, letters: list[dict[str, Any]]) -> None:
        """Record that these dead letters were re-published to the raw topic."""
        if letters:
            table = table_for(ddl.REDRIVES_INSERT, {
                "source_topic": [d["source_topic"] for d in letters],
                "source_partition": [d["source_partition"] for d in letters],
                "source_offset": [d["source_offset"] for d in letters],
            })
            self._insert_wire(ddl.REDRIVES_INSERT, table, None)

    def _dead_letter_filters(
        self, *, error_code: str | None = None, organization_id: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None,
        include_unattributed: bool = False, pending_only: bool = False,
        position: tuple[str, int, int] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The WHERE clause and parameters of a dead-letter filter."""
        where = ["1"]
        params: dict[str, Any] = {}
        if error_code:
            where.append("error_code = {code:String}")
            params["code"] = error_code
        if organization_id:
            org_filter = "organization_id = {org:String}"
            if include_unattributed:
                org_filter = f"({org_filter} OR organization_id = '')"
            where.append(org_filter)
            params["org"] = organization_id
        if pending_only:
            where.append(
                f"(source_topic, source_partition, source_offset) NOT IN (SELECT source_topic, "
                f"source_partition, source_offset FROM {self.database}.redrives)"
            )
        if since_ms is not None:
            where.append("failed_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')")
            params["since"] = since_ms
        if until_ms is not None:
            where.append("failed_at < fromUnixTimestamp64Milli({until:Int64}, 'UTC')")
            params["until"] = until_ms
        if position is not None:
            where.append("source_topic = {st:String} AND source_partition = {sp:UInt32} "
                         "AND source_offset = {so:UInt64}")
            params.update(st=position[0], sp=position[1], so=position[2])
        return " AND ".join(where), params

    def dead_letters(
        self, *, limit: int = 1000, offset: int = 0, payload_limit: int | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Dead letters, newest first, filtered by reason, organization and failure time.

        ``include_unattributed`` adds letters with no organization (e.g. invalid JSON) to an
        organization filter; ``pending_only`` leaves out letters already re-driven; ``position``
        (topic, partition, offset) picks one letter. Rows ``offset`` to ``offset + limit``.
        ``payload_limit`` keeps the first bytes of each payload only (``payload_bytes`` is
        always the whole size).
        """
        where, params = self._dead_letter_filters(**filters)
        params.update(limit=limit, skip=offset)
        payload = "payload" if payload_limit is None else "substring(payload, 1, {pl:UInt32})"
        if payload_limit is not None:
            params["pl"] = payload_limit
        rows = self._rows(
            f"SELECT organization_id, external_subscription_id, transaction_id, error_code, "
            f"error_message, base64Encode({payload}) payload_b64, length(payload) payload_bytes, "
            f"source_topic, source_partition, source_offset, "
            f"toUnixTimestamp64Milli(failed_at) failed_at_ms "
            f"FROM {self.database}.dead_letters WHERE {where} "
            f"ORDER BY failed_at DESC, source_partition, source_offset "
            f"LIMIT {{limit:UInt32}} OFFSET {{skip:UInt64}}",
            params,
        )
        for row in rows:  # the original bytes, which need not be UTF-8
            row["payload"] = base64.b64decode(row.pop("payload_b64"))
        return rows

    def count_dead_letters(self, **filters: Any) -> int:
        """How many dead letters :meth:`dead_letters` has for these filters (no limit)."""
        where, params = self._dead_letter_filters(**filters)
        return int(self.scalar(
            f"SELECT count() FROM {self.database}.dead_letters WHERE {where}", params
        ) or 0)
