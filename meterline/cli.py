"""The ``meterline`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from meterline.settings import Settings, SettingsError, load_settings


def _settings(**overrides: object) -> Settings:
    try:
        base = load_settings()
        changes = {k: v for k, v in overrides.items() if v is not None}
        return base.with_overrides(**changes) if changes else base
    except SettingsError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from exc


@click.group()
def main() -> None:
    """Meterline: exact, fast usage metering (Kafka -> ClickHouse -> priced usage)."""


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="chdb data directory")
@click.option("--port", type=int, help="HTTP API port")
def up(data_dir: Path | None, port: int | None) -> None:
    """Run the embedded stack in the foreground (broker, worker, chdb store, HTTP API)."""
    from meterline.stack import run_stack

    settings = _settings(data_dir=data_dir, http_port=port)
    sys.exit(run_stack(settings))


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="keep the demo data here")
@click.option("--events", "event_count", default=3000, show_default=True, help="events to send")
def demo(data_dir: Path | None, event_count: int) -> None:
    """Start the stack, load a sample catalog, send events and print priced usage."""
    from meterline.demo import run_demo

    sys.exit(run_demo(data_dir=data_dir, event_count=event_count))


@main.command("check-config")
def check_config() -> None:
    """Validate the METERLINE_* settings and print them (secrets hidden)."""
    settings = _settings()
    shown = settings.model_dump(mode="json")
    for secret in ("api_key", "kafka_sasl_password"):
        if shown.get(secret):
            shown[secret] = "***"
    click.echo(json.dumps(shown, indent=2, sort_keys=True))
    click.echo("configuration OK", err=True)


@main.group()
def catalog() -> None:
    """Manage the catalog of a running stack."""


def _client(url: str | None, api_key: str | None, data_dir: Path | None):
    from meterline.client import MeterlineClient
    from meterline.stack import read_local_api

    if not (url and api_key):
        settings = _settings(data_dir=data_dir)
        try:
            local_url, local_key = read_local_api(Path(settings.data_dir))
        except OSError as exc:
            raise click.ClickException(
                "no running stack found: pass --url and --api-key, or run `meterline up` first"
            ) from exc
        url, api_key = url or local_url, api_key or settings.api_key or local_key
        if not api_key:
            raise click.ClickException(
                "no API key: pass --api-key or set METERLINE_API_KEY (the key made at the "
                "first start is in the data directory's api_key file)")
    return MeterlineClient(url, api_key)


@catalog.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", help="API URL (default: the local stack's)")
@click.option("--api-key", help="API key (default: the local stack's)")
@click.option("--data-dir", type=click.Path(path_type=Path))
def catalog_apply(file: Path, url: str | None, api_key: str | None, data_dir: Path | None) -> None:
    """Apply a YAML/JSON catalog file (billable_metrics, plans, customers, subscriptions)."""
    from meterline.client import ApiError

    document = yaml.safe_load(file.read_text())
    try:
        result = _client(url, api_key, data_dir).post(
            "/api/v1/meterline/catalog", {"catalog": document}
        )
    except ApiError as exc:
        raise click.ClickException(json.dumps(exc.body, indent=2)) from exc
    click.echo(json.dumps(result, indent=2))


@main.command()
@click.option("--subscription", "subscription", required=True, help="external subscription id")
@click.option("--period", "period_index", default=0, show_default=True,
              help="0 = current period, -1 = previous, …")
@click.option("--json", "as_json", is_flag=True, help="print Lago's customer_usage JSON")
@click.option("--url")
@click.option("--api-key")
@click.option("--data-dir", type=click.Path(path_type=Path))
def usage(subscription: str, period_index: int, as_json: bool, url: str | None,
          api_key: str | None, data_dir: Path | None) -> None:
    """Print the priced usage of one subscription (from a running stack)."""
    from meterline.client import ApiError
    from meterline.report import usage_table

    client = _client(url, api_key, data_dir)
    try:
        status = client.get("/api/v1/subscriptions/" + subscription)["subscription"]
        result = client.get(
            f"/api/v1/customers/{status['external_customer_id']}/current_usage"
            f"?external_subscription_id={subscription}&period_index={period_index}"
        )
    except ApiError as exc:
        raise click.ClickException(json.dumps(exc.body)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(usage_table([result["customer_usage"]]))


@main.command()
@click.option("--url")
@click.option("--api-key")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True,
              help="read the store directly (the stack must not be running)")
@click.option("--json", "as_json", is_flag=True)
def reconcile(url, api_key, data_dir, offline, as_json) -> None:
    """Check consumed = stored + duplicates + dead letters per partition; exit 1 if not."""
    from meterline.client import ApiError

    if offline:
        from aggregation.reconciliation import reconcile_report
        from sinks import open_store

        settings = _settings(data_dir=data_dir)
        store = open_store(clickhouse_url=settings.clickhouse_url, data_dir=settings.data_dir,
                           database=settings.clickhouse_database)
        try:
            report = reconcile_report(store.reconcile())
        finally:
            store.close()
    else:
        try:
            report = _client(url, api_key, data_dir).get("/api/v1/meterline/reconcile")
        except ApiError as exc:
            raise click.ClickException(json.dumps(exc.body)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for p in report["partitions"]:
            state = "ok" if not p["problems"] else "; ".join(p["problems"])
            click.echo(
                f"{p['topic']}[{p['partition']}] epoch {p['log_epoch']}: consumed "
                f"{p['consumed']} = stored {p['stored']} + duplicates {p['duplicates']} + "
                f"dead letters {p['dead_letters']}  {state}"
            )
        click.echo(f"totals: {report['totals']}  {'OK' if report['ok'] else 'MISMATCH'}")
    if not report["ok"]:
        sys.exit(1)


@main.group("dead-letters")
def dead_letters() -> None:
    """Inspect and re-drive dead letters of a running stack."""


def _dead_letter_filters(reason, since, until, limit) -> dict:
    filters = {"error_code": reason, "since": since, "until": until, "limit": limit}
    return {k: v for k, v in filters.items() if v is not None}


_FILTER_OPTIONS = [
    click.option("--reason", help="error code, e.g. no_subscription"),
    click.option("--since", help="failed at or after (RFC 3339)"),
    click.option("--until", help="failed before (RFC 3339)"),
    click.option("--limit", type=click.IntRange(min=1),
                 help="at most N letters (list: default all; redrive: default 1000)"),
    click.option("--url"),
    click.option("--api-key"),
    click.option("--data-dir", type=click.Path(path_type=Path)),
]


def _with_filters(fn):
    for option in reversed(_FILTER_OPTIONS):
        fn = option(fn)
    return fn


@dead_letters.command("list")
@_with_filters
@click.option("--all", "include_all", is_flag=True, help="include re-driven letters")
@click.option("--json", "as_json", is_flag=True)
def dead_letters_list(reason, since, until, limit, url, api_key, data_dir, include_all,
                      as_json) -> None:
    """List dead letters (not yet re-driven, newest first), walking every page.

    Payloads are previews (``payload_truncated``); `dead-letters show` prints a whole one."""
    from urllib.parse import urlencode

    from meterline.client import ApiError

    query = _dead_letter_filters(reason, since, until, None)
    if include_all:
        query["all"] = "true"
    client = _client(url, api_key, data_dir)
    letters: list[dict] = []
    page: int | None = 1
    try:
        while page is not None and (limit is None or len(letters) < limit):
            result = client.get("/api/v1/meterline/dead_letters?" + urlencode(
                {**query, "page": page, "per_page": 100}
            ))
            seen = {(d["source_topic"], d["source_partition"], d["source_offset"])
                    for d in letters}  # letters arriving meanwhile shift the pages
            letters.extend(d for d in result["dead_letters"] if (
                d["source_topic"], d["source_partition"], d["source_offset"]) not in seen)
            page = result["meta"]["next_page"]
    except ApiError as exc:
        raise click.ClickException(json.dumps(exc.body)) from exc
    letters = letters[:limit]
    if as_json:
        click.echo(json.dumps(letters, indent=2))
        return
    for d in letters:
        click.echo(
            f"{d['error_code']:<16} {d['source_topic']}/{d['source_partition']}@"
            f"{d['source_offset']:<8} {d['external_subscription_id'] or '-':<16} "
            f"{d['transaction_id'] or '-':<20} {d['error_message'][:60]}"
        )
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dead_letters.command("show")
@click.argument("source_topic")
@click.argument("source_partition", type=int)
@click.argument("source_offset", type=int)
@click.option("--url")
@click.option("--api-key")
@click.option("--data-dir", type=click.Path(path_type=Path))
def dead_letters_show(source_topic, source_partition, source_offset, url, api_key,
                      data_dir) -> None:
    """Print one dead letter, with its whole payload, as JSON."""
    from urllib.parse import quote

    from meterline.client import ApiError

    try:
        result = _client(url, api_key, data_dir).get(
            f"/api/v1/meterline/dead_letters/{quote(source_topic, safe='')}/"
            f"{source_partition}/{source_offset}"
        )
    except ApiError as exc:
        raise click.ClickException(json.dumps(exc.body)) from exc
    click.echo(json.dumps(result["dead_letter"], indent=2))


@dead_letters.command("redrive")
@_with_filters
def dead_letters_redrive(reason, since, until, limit, url, api_key, data_dir) -> None:
    """Re-publish matching dead letters to the raw topic (each at most once)."""
    from meterline.client import ApiError

    body = _dead_letter_filters(reason, since, until, limit)
    try:
        result = _client(url, api_key, data_dir).post(
            "/api/v1/meterline/dead_letters/redrive", body
        )
    except ApiError as exc:
        raise click.ClickException(json.dumps(exc.body)) from exc
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
