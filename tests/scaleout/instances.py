"""`aegra serve` processes for the scale-out tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.postgres import fresh_database
from tests.projects import free_port

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs" / "aegra.json"
LEASE_SECONDS = 2.0
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Instances not stopped yet: a failed test's report shows the end of their logs (tests/scaleout/conftest.py).
RUNNING: list[Instance] = []


@contextlib.contextmanager
def database(request, kind: str, folder: Path) -> Iterator[str]:
    """A database for instances to share: a SQLite file in `folder`, or a fresh Postgres database."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'shared.db'}"
        return
    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_scaleout") as url:
        yield url


class Instance:
    """One `aegra serve` process; on SQLite with two workers (processes that share the file and the port),
    since only workers know the file is shared. Signals go to the whole process group where an instance dies
    at once, as to the supervisor where uvicorn passes them on."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        name: str,
        grace: float = 30.0,
        workers: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.database_url = database_url
        self.log_path = log_dir / f"{name}.log"
        env = {
            **os.environ,
            "AEGRA_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
            "AEGRA_SHUTDOWN_GRACE_SECONDS": str(grace),
            "AEGRA_HEARTBEAT_SECONDS": "0.5",
            **(env or {}),
        }
        if workers is None:
            workers = 2 if database_url.startswith("sqlite") else 1
        RUNNING.append(self)
        for _ in range(3):
            # A free port may be taken by another test's server before this one listens; that one is refused.
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            cmd = [sys.executable, "-m", "aegra_cli", "serve", "--config", str(GRAPHS), "--host", "127.0.0.1",
                   "--port", str(self.port), "--database-url", database_url, "--workers", str(workers)]
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
            )
            if self._started(name):
                return
        raise RuntimeError(f"instance {name} was refused three free ports:\n{self.log_path.read_text()[-3000:]}")

    def _started(self, name: str) -> bool:
        """Whether it serves; False if it was refused its port; RuntimeError for any other failure."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_path.read_text()
                if f"port {self.port} is in use" in log:
                    return False
                raise RuntimeError(f"instance {name} exited:\n{log[-3000:]}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"instance {name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """Every process of the instance stopped for the block (SIGSTOP: as in a long pause or heavy swapping)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_tail(self, size: int = 4000) -> str:
        with self.log_path.open("rb") as log:
            log.seek(max(0, self.log_path.stat().st_size - size))
            return log.read().decode(errors="replace")

    def open_files(self) -> str:
        """The database files each of its processes has open (Linux), one line per process: a process still on a
        removed file (shown "(deleted)") would read and write a database of its own."""
        lines = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != self.proc.pid:
                    continue  # not in the instance's process group
                links = {os.readlink(fd) for fd in (stat.parent / "fd").iterdir()}
                lines.append(f"{stat.parent.name}: {sorted(link for link in links if '.db' in link)}")
        return "\n".join(lines)

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of it
