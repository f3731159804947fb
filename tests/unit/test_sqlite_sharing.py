"""Who may serve a SQLite file: one server alone, or the workers of `aegra serve --workers N` together."""

from __future__ import annotations

import os

import pytest

from aegra_server.errors import ConfigError
from aegra_server.storage.sqlite_sharing import FileLock, folder_for, serving
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


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_the_last_server_out_removes_the_folder(tmp_path):
    db = _file(tmp_path / "a.db")
    with serving(db, workers=1) as folder:
        (folder / "sockets").mkdir()  # what workers' sockets would leave
        assert (folder / "server.lock").exists()
    assert not folder.exists()
    with serving(db, workers=2), serving(db, workers=2):
        pass
    with serving(db, workers=2) as folder:
        with serving(db, workers=2):
            pass
        assert folder.exists()  # a fellow worker still serves
    assert not folder.exists()


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_lock_on_a_removed_folder_keeps_no_server_out(tmp_path):
    """A server that opened server.lock just before the last one removed the folder holds a removed file: the
    path then names another, and only a lock on that one counts."""
    db = _file(tmp_path / "a.db")
    with serving(db, workers=1) as folder:
        stale = FileLock(folder / "server.lock")
    try:
        stale.acquire(wait=False)  # succeeds: nobody else holds that (removed) file
        assert not stale.is_current()
        with serving(db, workers=1):  # so the next server starts, on a file of its own
            with pytest.raises(ConfigError):
                with serving(db, workers=1):
                    pass
    finally:
        stale.close()


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


def _cleaner_may_enter(folder) -> bool:
    """What systemd-tmpfiles asks before it ages a directory's contents: can it take an flock on it?"""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_the_folder_is_kept_from_temp_cleaners_while_served(tmp_path):
    """Lock files and sockets never change, so an age-based cleaner of the temporary directory would delete
    them under a long-running server (and a second server could then start): the served folder is flocked."""
    db = _file(tmp_path / "a.db")
    with serving(db, workers=1) as folder:
        assert not _cleaner_may_enter(folder)
    with serving(db, workers=2) as folder:
        with serving(db, workers=2):
            assert not _cleaner_may_enter(folder)
        assert not _cleaner_may_enter(folder)  # the first worker holds it
