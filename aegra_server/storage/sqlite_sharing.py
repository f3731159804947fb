"""What the server processes on one SQLite file share besides the file itself.

SQLite has no server to say who else is using a database, so Aegra keeps a small folder per database file in
the temporary directory (`folder_for`): the sockets through which workers signal each other, in `sockets/`
(runs.bus.SocketBus), and three lock files, all flocks (POSIX), which the kernel releases when a process dies:

- `server.lock`: held for as long as a server runs. A single-process server holds it alone; the workers of
  `aegra serve --workers N` share it. A second server on the same file would take the first's runs back
  as abandoned when it starts and run them a second time, so it is refused instead (`serving`, which both
  the CLI, for a one-line error, and the server, for its lifetime, go through).
- `startup.lock`: workers starting together set up the schema one after another (`holding`).
- `writes.lock`: workers take turns writing the file (storage.connections).

The folder itself is flocked while served, which keeps systemd-tmpfiles' age-based cleaning out of it, and the
last server to stop removes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aegra_server.errors import ConfigError

if TYPE_CHECKING:
    from aegra_server.storage.urls import DatabaseUrl


# flock and Unix datagram sockets: POSIX systems only.
HAS_FLOCK = os.name == "posix"
if HAS_FLOCK:
    import fcntl


def user_temp_path(name: str) -> Path:
    """`name` in the temporary directory, for this user: where Aegra keeps what its processes share."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"aegra-{uid}-{name}"


def folder_for(database_path: str) -> Path:
    """One folder per database file, in the temporary directory: a Unix socket's path must stay under ~100
    bytes, which a folder beside a deeply nested database would not."""
    return user_temp_path(hashlib.sha256(os.path.realpath(database_path).encode()).hexdigest()[:16])


class FileLock:
    """An flock on one file (created with its folder). The kernel wakes a waiter the moment the holder lets go."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def is_current(self) -> bool:
        """Whether the path still names the file this lock holds (not one removed since it was opened)."""
        try:
            named, held = os.stat(self.path), os.fstat(self.fd)
        except FileNotFoundError:
            return False
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def acquire(self, *, shared: bool = False, wait: bool = True) -> None:
        """Raises BlockingIOError when `wait` is False and another process holds it the other way."""
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(self.fd, flags if wait else flags | fcntl.LOCK_NB)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def run(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` while holding the lock exclusively."""
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self.release()

    def close(self) -> None:
        os.close(self.fd)  # lets go of the lock, if held


@asynccontextmanager
async def holding(path: Path) -> AsyncIterator[None]:
    """Hold the lock file `path` exclusively for the block, waiting for it off the event loop."""
    lock = FileLock(path)
    try:
        await asyncio.to_thread(lock.acquire)
        yield
    finally:
        lock.close()


@contextmanager
def serving(url: DatabaseUrl, workers: int) -> Iterator[Path | None]:
    """Mark this process as one of `workers` servers of the database for the block; yields the SQLite file's
    folder (None for Postgres and in-memory SQLite, which need no mark). ConfigError, before anything starts,
    for a database the workers cannot share, or a file that a server other than our fellow workers serves."""
    if url.dialect != "sqlite":
        yield None
        return
    if workers > 1 and url.is_memory:
        raise ConfigError(
            "an in-memory SQLite database cannot be shared by several workers",
            "use a SQLite file or Postgres, or --workers 1",
        )
    if workers > 1 and not HAS_FLOCK:
        raise ConfigError("workers sharing a SQLite file need Linux or macOS", "use Postgres, or --workers 1")
    if url.is_memory:
        yield None
        return
    folder = folder_for(url.sqlite_path)
    if not HAS_FLOCK:  # Windows: nothing to mark the file with
        yield folder
        return
    try:
        lock = take_without_waiting(folder / "server.lock", shared=workers > 1)
    except BlockingIOError:
        raise ConfigError(
            f"another Aegra server is already serving {url.sqlite_path}",
            "stop it, or serve the file from one `aegra serve --workers N`",
        ) from None
    pinned = _pin(folder)
    try:
        yield folder
    finally:
        if pinned is not None:
            os.close(pinned)
        lock.close()
        _remove_if_unserved(folder)


def take_without_waiting(path: Path, *, shared: bool = False) -> FileLock:
    """The lock file `path`, taken without waiting (BlockingIOError while another process holds it the other
    way). Taken on the file the path names once it is held: the last server out may have removed the one this
    process opened (`_remove_if_unserved`), and a lock on a removed file keeps nobody out."""
    while True:
        lock = FileLock(path)
        try:
            lock.acquire(shared=shared, wait=False)
        except BlockingIOError:
            lock.close()
            raise
        if lock.is_current():
            return lock
        lock.close()


def _remove_if_unserved(folder: Path) -> None:
    """The last server of the file to stop removes its folder (lock files, sockets), so none is left in the
    temporary directory; while a fellow worker still serves, the folder stays. Removed while holding
    server.lock exclusively, so no server starts on the folder meanwhile (see `take_without_waiting`)."""
    try:
        lock = take_without_waiting(folder / "server.lock")
    except BlockingIOError:
        return
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        lock.close()


def _pin(folder: Path) -> int | None:
    """Keep cleaners of the temporary directory away from the folder while it is served: systemd-tmpfiles
    deletes what has not changed for days (lock files and sockets never change) but skips a directory another
    process holds an flock on. Exclusive, as a shared lock would not stop a cleaner that takes a shared one; so
    one worker holds it (whichever comes first) and the others skip. The open descriptor, or None."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
