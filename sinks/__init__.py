"""Storage: the only package (with ``streams``) that talks to ClickHouse."""

from __future__ import annotations

from pathlib import Path

from sinks.store import Store, StoreError

__all__ = ["Store", "StoreError", "open_store"]


def open_store(*, clickhouse_url: str, data_dir: Path, database: str) -> Store:
    """The server store when ``clickhouse_url`` is set, else chdb on ``data_dir/chdb``."""
    if clickhouse_url:
        from sinks.clickhouse_store import ClickHouseStore

        store: Store = ClickHouseStore(clickhouse_url, database)
    else:
        from sinks.chdb_store import ChdbStore

        store = ChdbStore(Path(data_dir) / "chdb", database)
    store.ensure_schema()
    return store
