"""Settings: one frozen object, validated before anything connects."""

from __future__ import annotations

import pytest

from meterline.settings import SettingsError, load_settings


def test_defaults_start_the_embedded_stack(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("METERLINE_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.embedded_broker and not settings.clickhouse_url  # chdb on data_dir
    assert settings.dedup_window_days == 35 and settings.max_batch_events == 100


def test_environment_is_read_with_the_prefix(monkeypatch):
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    monkeypatch.setenv("METERLINE_HTTP_PORT", "9999")
    settings = load_settings()
    assert not settings.embedded_broker and settings.http_port == 9999


def test_frozen():
    settings = load_settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        settings.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"METERLINE_HTTP_PORT": "-1"}, "http_port"),
        ({"METERLINE_BATCH_MAX_SECONDS": "0"}, "batch_max_seconds"),
        ({"METERLINE_RAW_TOPIC": " "}, "raw_topic"),
        ({"METERLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL"),
        ({"METERLINE_DEAD_LETTER_TOPIC": "events-raw"}, "must differ"),
        ({"METERLINE_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_invalid_settings_name_the_problem(monkeypatch, env, field):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=field):
        load_settings()


def test_check_config_exits_non_zero_on_bad_settings(monkeypatch):
    from click.testing import CliRunner

    from meterline.cli import main

    monkeypatch.setenv("METERLINE_HTTP_PORT", "70000")
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code != 0 and "http_port" in result.output
    monkeypatch.setenv("METERLINE_HTTP_PORT", "8080")
    monkeypatch.setenv("METERLINE_API_KEY", "secret")
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 0 and "secret" not in result.output
