"""Schema migrations: a data directory written by release 0.1.0 opens with every row, priced the
same, with the columns of a new database and no API key left in plain text on disk."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from meterline.client import MeterlineClient
from services.catalog import CatalogService
from services.usage import UsageService
from sinks import migrations
from sinks.chdb_store import ChdbStore
from sinks.sql_store import SqlStore

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_0_1_0"


def release_0_1_0(tmp_path: Path) -> tuple[Path, dict]:
    """The release's data directory, unpacked, and what that release answered."""
    with tarfile.open(FIXTURE / "data.tar.gz") as archive:
        archive.extractall(tmp_path, filter="fully_trusted")
    return tmp_path / "chdb", json.loads((FIXTURE / "expected.json").read_text())


def columns(store: SqlStore) -> dict[str, list[tuple[str, str]]]:
    rows = store._query(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} "
        "ORDER BY table, position", {"db": store.database},
    ).to_pylist()
    out: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        out.setdefault(r["table"], []).append((r["name"], r["type"]))
    return out


def test_release_0_1_0_data_directory_migrates_to_the_latest_schema(tmp_path: Path) -> None:
    data_dir, expected = release_0_1_0(tmp_path / "old")
    old = ChdbStore(data_dir)  # chdb: one data directory open per process at a time
    try:
        assert migrations.applied_versions(old) == set()  # that release had no migrations
        old.ensure_schema()
        assert migrations.applied_versions(old) == {
            1, *(m.version for m in migrations.MIGRATIONS)}
        old.ensure_schema()  # a second start applies nothing
        assert old.scalar(f"SELECT count() FROM {old.database}.schema_migrations") == str(
            1 + len(migrations.MIGRATIONS))
        migrated_columns = columns(old)

        # Every row is found and priced as that release priced it.
        stored = int(old.scalar(f"SELECT uniqExact(transaction_id) FROM {old.database}.events"))
        assert stored == expected["committed_events"] + expected["half_written_events"]
        catalog = CatalogService(old)
        catalog.load()
        at = datetime.fromisoformat(expected["at"])
        usage = UsageService(old, lambda: catalog.index, clock=lambda: at)
        for sub, answer in expected["usage"].items():
            got = usage.usage(expected["organization_id"], sub)
            assert json.loads(json.dumps(got, default=str)) == answer

        # The organization's key survives as a digest only.
        [key] = old.api_keys()
        assert key.organization_id == expected["organization_id"]
        assert key.key_hash == hashlib.sha256(expected["api_key"].encode()).hexdigest()
    finally:
        old.close()
    secret = expected["api_key"].encode()  # and no file holds it in plain text
    assert [p for p in data_dir.rglob("*") if p.is_file() and secret in p.read_bytes()] == []

    new = ChdbStore(tmp_path / "new")
    try:
        new.ensure_schema()
        assert migrated_columns == columns(new)
    finally:
        new.close()


def test_a_migration_interrupted_after_dropping_the_old_table_finishes(tmp_path: Path) -> None:
    data_dir, expected = release_0_1_0(tmp_path)
    store = ChdbStore(data_dir)
    try:
        store.ensure_schema()
        # As if a crash hit between the DROP and the RENAME of the hashed-keys migration.
        db = store.database
        store._command(f"RENAME TABLE {db}.organizations TO {db}.organizations_rebuilt")
        store._command(f"ALTER TABLE {db}.schema_migrations DELETE WHERE version = 3 "
                       f"SETTINGS mutations_sync = 2")
        store.ensure_schema()
        assert [o.id for o in store.organizations()] == [expected["organization_id"]]
        assert len(store.api_keys()) == 1
    finally:
        store.close()


def test_a_batch_half_written_before_a_restart_is_rolled_back_and_its_events_count_again(
    stack_factory, tmp_path
):
    """Issue 16, finding 11: a batch killed between its events and its roll-ups kept its events
    and dedup keys, never got its roll-ups, and a producer re-sending its ids was told they
    were duplicates. The data directory of release 0.1.0 holds such a batch, of a log epoch
    (an embedded broker's life) that is gone."""
    data_dir = tmp_path / "data"
    release_0_1_0(data_dir)
    expected = json.loads((FIXTURE / "expected.json").read_text())
    stack = stack_factory(data_dir=data_dir, METERLINE_RAW_TOPIC="events-raw").start()
    report = stack.client.get("/api/v1/meterline/reconcile")
    [rolled] = {r["batch_id"]: r for r in report["rolled_back"]}.values()
    assert rolled["batch_id"] == expected["half_written_batch"]
    assert report["open_batches"] == []

    # The release's own key still works, once migrated to a digest.
    old_key = MeterlineClient(stack.client.url, expected["api_key"])
    assert old_key.get("/api/v1/billable_metrics")["billable_metrics"]
    # The producer sends the lost events again: they are stored, not taken for duplicates.
    resent = [{"transaction_id": f"tx_{i}", "external_subscription_id": "sub_acme",
               "code": "api_calls", "timestamp": "2026-01-15T00:00:00Z"}
              for i in range(400, 400 + expected["half_written_events"])]
    def totals(status: dict) -> tuple[int, int, int]:
        return tuple(sum(p[k] for p in status["partitions"])  # type: ignore[return-value]
                     for k in ("consumed", "stored", "duplicates"))

    consumed, stored, duplicates = totals(stack.status())
    assert (consumed, stored) == (expected["committed_events"], expected["committed_events"])
    stack.client.post("/api/v1/events/batch", {"events": resent})
    after = totals(stack.wait_consumed(consumed + len(resent)))
    assert after == (consumed + len(resent), stored + len(resent), duplicates)
