"""Who may serve a SQLite file: one server alone, or the workers of `aegra serve --workers N` together."""

from __future__ import annotations

import pytest

from aegra_server.errors import ConfigError
from aegra_server.storage.sqlite_sharing import folder_for, serving
from aegra_server.storage.urls import parse_database_url


def _file(path):
    return parse_database_url(f"sqlite:///{path}")


def test_one_server_alone(tmp_path):
    path = str(tmp_path / "a.db")
    db = _file(path)
    with serving(db, workers=1):
        for workers in (1, 2):
            with pytest.raises(ConfigError, match=f"another Aegra server is already serving {path}"):
                with serving(db, workers=workers):
                    pass
    with serving(db, workers=1):  # free again once it stopped
        pass


def test_workers_together(tmp_path):
    db = _file(tmp_path / "a.db")
    with serving(db, workers=2), serving(db, workers=2):
        with pytest.raises(ConfigError) as refused:
            with serving(db, workers=1):
                pass
        assert refused.value.hint == "stop it, or serve the file from one `aegra serve --workers N`"
    with serving(_file(tmp_path / "b.db"), workers=1):  # another file is another matter
        pass


def test_one_folder_per_database_file(tmp_path):
    assert folder_for(str(tmp_path / "a.db")) == folder_for(str(tmp_path / "." / "a.db"))
    assert folder_for(str(tmp_path / "a.db")) != folder_for(str(tmp_path / "b.db"))
    # a socket's path must stay short enough for the kernel (108 bytes on Linux, 104 on macOS)
    assert len(str(folder_for(str(tmp_path / ("x" * 200) / "a.db")))) < 70


def test_without_flock_a_single_server_starts_and_workers_are_refused(tmp_path, monkeypatch):
    """Windows has neither flock nor Unix datagram sockets: no guard there, and no SQLite workers."""
    from aegra_server.storage import sqlite_sharing

    db = _file(tmp_path / "a.db")
    monkeypatch.setattr(sqlite_sharing, "HAS_FLOCK", False)
    with serving(db, workers=1) as folder, serving(db, workers=1):
        assert not (folder / "server.lock").exists()
    with pytest.raises(ConfigError, match="workers sharing a SQLite file need Linux or macOS"):
        with serving(db, workers=2):
            pass
