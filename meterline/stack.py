"""``meterline up``: the embedded stack (broker, chdb store, worker and API) in one process."""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path

from meterline.catalog_service import CatalogService
from meterline.settings import Settings
from sinks import open_store
from streams.broker import EmbeddedBroker

log = logging.getLogger("meterline.stack")

API_KEY_FILE = "api_key"
URL_FILE = "api_url"


def read_local_api(data_dir: Path) -> tuple[str, str]:
    """The (URL, API key) a running ``meterline up`` on ``data_dir`` wrote for CLI commands."""
    url = (data_dir / URL_FILE).read_text().strip()
    key = (data_dir / API_KEY_FILE).read_text().strip()
    return url, key


def run_stack(settings: Settings) -> int:
    """Start everything, serve until SIGINT/SIGTERM, stop what was started. Returns 0."""
    import faust

    from streams.app import build_app

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker.start(settings.embedded_broker_port)
    store = None
    try:
        bootstrap = broker.bootstrap_servers if broker else settings.kafka_bootstrap_servers
        store = open_store(
            clickhouse_url=settings.clickhouse_url,
            data_dir=data_dir,
            database=settings.clickhouse_database,
        )
        org = store.ensure_organization(
            settings.default_organization_id, "Default organization",
            settings.api_key or secrets.token_urlsafe(24),
        )
        catalog = CatalogService(store)
        catalog.load()
        app, _runtime = build_app(
            settings=settings, bootstrap_servers=bootstrap, store=store, catalog=catalog
        )
        url = f"http://{settings.http_host}:{settings.http_port}"
        key_file = data_dir / API_KEY_FILE
        key_file.write_text(org.api_key + "\n")
        key_file.chmod(0o600)
        (data_dir / URL_FILE).write_text(url + "\n")
        print(f"Meterline API   {url}", flush=True)
        print(f"API key         {org.api_key}  (organization {org.id!r})", flush=True)
        print(f"Kafka           {bootstrap}{' (embedded Tansu)' if broker else ''}", flush=True)
        print(f"Store           {settings.clickhouse_url or data_dir / 'chdb'}", flush=True)
        sys.stdout.flush()
        worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:  # Faust exits the process through SystemExit
            return int(exc.code or 0)
        return 0
    finally:
        if store is not None:
            store.close()
        if broker is not None:
            broker.stop()
