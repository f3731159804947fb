"""Server settings whose defaults depend on how the server runs."""

from __future__ import annotations

from pathlib import Path

from aegra_server.settings import Settings


def test_shutdown_grace_is_short_under_dev_unless_set(monkeypatch) -> None:
    monkeypatch.delenv("AEGRA_SHUTDOWN_GRACE_SECONDS", raising=False)
    config = Path("aegra.json")
    # Every dev reload is a shutdown: a running run must not hold it for half a minute (it resumes after).
    assert Settings(AEGRA_CONFIG=config, AEGRA_DEV=True).shutdown_grace_seconds == 3.0
    assert Settings(AEGRA_CONFIG=config).shutdown_grace_seconds == 30.0
    monkeypatch.setenv("AEGRA_SHUTDOWN_GRACE_SECONDS", "12")
    assert Settings(AEGRA_CONFIG=config, AEGRA_DEV=True).shutdown_grace_seconds == 12.0
    assert Settings(AEGRA_CONFIG=config).shutdown_grace_seconds == 12.0
