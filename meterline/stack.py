"""``meterline up``: the embedded stack (broker, chdb store, worker and API) in one process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from meterline.settings import Settings
from services.api_keys import hash_key, new_key, new_key_record
from services.catalog import CatalogService
from sinks import Store, open_store
from streams.broker import EmbeddedBroker

log = logging.getLogger("meterline.stack")

API_KEY_FILE = "api_key"
URL_FILE = "api_url"
PID_FILE = "broker.pid"


def read_local_api(data_dir: Path) -> tuple[str, str]:
    """The (URL, API key) a running ``meterline up`` on ``data_dir`` wrote for CLI commands.

    The URL is written once the stack is ready; the key file exists when the first start made
    the key (with ``METERLINE_API_KEY`` set there is none: the CLI reads that variable)."""
    url = (data_dir / URL_FILE).read_text().strip()
    key_file = data_dir / API_KEY_FILE
    key = key_file.read_text().strip() if key_file.exists() else ""
    return url, key


def provision_api_key(store: Store, settings: Settings, data_dir: Path) -> str | None:
    """Make sure the default organization has an admin key; return a key made now, if any.

    ``METERLINE_API_KEY``, when set, is the default organization's admin (operator) key on
    every start: registered (its digest) unless it is a valid admin key already, so a revoked
    one is valid again after a restart with it. Otherwise a key is made on the first start
    only: it is shown once and written to ``DATA_DIR/api_key`` (mode 0600) for the CLI
    commands; the store keeps only its digest."""
    org = store.ensure_organization(settings.default_organization_id, "Default organization")
    digests = {k.key_hash for k in store.api_keys()
               if k.organization_id == org.id and k.revoked_at_ms is None and k.role == "admin"}
    if settings.api_key:
        if hash_key(settings.api_key) not in digests:
            store.add_api_key(new_key_record(settings.api_key, org.id, "METERLINE_API_KEY"))
        return None
    if digests:
        return None
    key = new_key()
    store.add_api_key(new_key_record(key, org.id, "first start"))
    key_file = data_dir / API_KEY_FILE
    key_file.touch(mode=0o600)
    key_file.chmod(0o600)
    key_file.write_text(key + "\n")
    return key


def run_stack(settings: Settings) -> int:
    """Start everything, serve until SIGINT/SIGTERM, stop what was started. Returns 0."""
    import faust

    from meterline.app import build_app

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the store, the key file: readable by this user only
    broker = None
    if settings.embedded_broker:
        broker = EmbeddedBroker.start(settings.embedded_broker_port, pid_file=data_dir / PID_FILE)
    store = None
    try:
        bootstrap = broker.bootstrap_servers if broker else settings.kafka_bootstrap_servers
        store = open_store(
            clickhouse_url=settings.clickhouse_url,
            data_dir=data_dir,
            database=settings.clickhouse_database,
        )
        new_api_key = provision_api_key(store, settings, data_dir)
        catalog = CatalogService(store)
        catalog.load()
        url = f"http://{settings.http_host}:{settings.http_port}"

        def announce() -> None:
            """Print where the API is once it takes requests (the key only when made now)."""
            (data_dir / URL_FILE).write_text(url + "\n")
            if new_api_key:
                key = f"{new_api_key}  (shown once; also in {data_dir / API_KEY_FILE})"
            elif settings.api_key:
                key = "from METERLINE_API_KEY"
            else:
                key = f"made at the first start (in {data_dir / API_KEY_FILE})"
            # The terminal, not the log: Faust sends print() to its logger.
            out = sys.__stdout__ or sys.stdout
            out.write(
                f"Meterline API   {url}  (ready)\n"
                f"API key         {key}  (organization {settings.default_organization_id!r})\n"
                f"Kafka           {bootstrap}{' (embedded Tansu)' if broker else ''}\n"
                f"Store           {settings.clickhouse_url or data_dir / 'chdb'}\n"
            )
            out.flush()

        (data_dir / URL_FILE).unlink(missing_ok=True)  # written again once ready
        app, _runtime = build_app(
            settings=settings, bootstrap_servers=bootstrap, store=store, catalog=catalog,
            on_ready=announce,
        )
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
