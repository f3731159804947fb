"""Starting the HTTP server: checks that fail fast, then one uvicorn call.

Building the uvicorn arguments and the child environment are pure functions (tested with golden values);
`run` is the only place that executes anything. Settings reach the server through environment variables
because that is the one channel that survives uvicorn's reload subprocess.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aegra_server.config import AegraConfig, load_config
from aegra_server.errors import AegraError

from aegra_cli.project import Project, local_dependencies

APP = "aegra_server.app:app_from_env"
RELOAD_INCLUDES = ["*.py", "aegra.json", "langgraph.json", ".env"]
RELOAD_EXCLUDED_DIRS = (".venv", "venv", "node_modules")
# Open SSE streams would otherwise hold a dev reload (or Ctrl-C) until every client disconnects.
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl="


@dataclass(frozen=True)
class Launch:
    project: Project
    host: str
    port: int
    reload: bool
    dev: bool
    # Server processes sharing the port and the database (uvicorn's workers); 1 serves in this process.
    workers: int = 1

    @property
    def shutdown_grace(self) -> float:
        """The server's grace period on shutdown, as it will read it: AEGRA_SHUTDOWN_GRACE_SECONDS from the
        environment or .env, else its default (shorter under dev). A bad value falls to the default here; the
        server refuses it with its own one-line error."""
        from pydantic import ValidationError

        from aegra_server.settings import DEV_SHUTDOWN_GRACE_SECONDS, SHUTDOWN_GRACE_SECONDS, Settings

        name = "AEGRA_SHUTDOWN_GRACE_SECONDS"
        value = os.environ.get(name, self.project.env_values.get(name))
        try:
            return Settings(AEGRA_CONFIG=self.project.config_path, AEGRA_DEV=self.dev, **{name: value}).shutdown_grace_seconds
        except ValidationError:
            return DEV_SHUTDOWN_GRACE_SECONDS if self.dev else SHUTDOWN_GRACE_SECONDS


def base_url(host: str, port: int) -> str:
    # A wildcard address is where the server listens, not somewhere a browser can go.
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def urls(host: str, port: int) -> dict[str, str]:
    api = base_url(host, port)
    return {"API": api, "Docs": f"{api}/docs", "Studio": f"{STUDIO_URL}{api}"}


def server_env(launch: Launch) -> dict[str, str | None]:
    """Variables the server process reads at start-up; None means "remove"."""
    project = launch.project
    return {
        "AEGRA_CONFIG": str(project.config_path),
        "DATABASE_URL": project.database_url,
        "AEGRA_ENV_FILE": str(project.env_file),
        "AEGRA_DEV": "1" if launch.dev else None,
        "AEGRA_WORKERS": str(launch.workers) if launch.workers > 1 else None,
    }


def _watched_dirs(config: AegraConfig) -> list[str]:
    """The project, its local dependencies, and the folder of any graph file outside them."""
    dirs = [config.root, *local_dependencies(config)]
    for spec in config.graphs.values():
        target = spec.path.rpartition(":")[0]
        if target.endswith(".py"):
            folder = config.resolve(target).parent
            if not any(folder.is_relative_to(d) for d in dirs):
                dirs.append(folder)
    return [str(path) for path in dict.fromkeys(dirs)]


def _watched_dirs_now(config_path: Path) -> list[str] | None:
    """The folders to watch as the config says after an edit; None while it cannot be read (the server process
    says why), which leaves the watch as it was."""
    try:
        return _watched_dirs(load_config(config_path))
    except AegraError:
        return None


def uvicorn_kwargs(launch: Launch) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "app": APP,
        "factory": True,
        "host": launch.host,
        "port": launch.port,
        "reload": launch.reload,
        # "auto" would log a failed start-up and serve anyway; "on" makes it fatal.
        "lifespan": "on",
        # Aegra logs one line per request itself (with its request id, in the LOG_FORMAT), so uvicorn's would
        # only repeat it.
        "access_log": False,
    }
    if launch.reload:
        project = launch.project
        kwargs["reload_dirs"] = _watched_dirs(project.config)
        # A config or env file under another name (--config my.json, "env": "./dev.env") is watched too.
        kwargs["reload_includes"] = list(dict.fromkeys([*RELOAD_INCLUDES, project.config_path.name, project.env_file.name]))
        # What pip or npm write into the project must not restart the server.
        excluded = [project.root / name for name in RELOAD_EXCLUDED_DIRS if (project.root / name).is_dir()]
        if excluded:
            kwargs["reload_excludes"] = [str(path) for path in excluded]
    if launch.workers > 1:
        kwargs["workers"] = launch.workers
    # Open requests (a stream or join following a long run) get the grace period to end, then are cut: without a
    # limit uvicorn waited for every one, so a SIGTERM took as long as the longest run. The runs' own grace is
    # counted from the same signal (RunManager.shutdown_requested), so the whole shutdown stays within it.
    kwargs["timeout_graceful_shutdown"] = launch.shutdown_grace
    return kwargs


def _port_in_use(port: int) -> AegraError:
    return AegraError(f"port {port} is in use", f"--port {port + 1} or stop the other process")


def ensure_port_free(host: str, port: int) -> None:
    """Bind the way uvicorn will, so a busy port is one clear line here rather than a log line later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # uvicorn sets this too; without it a port in TIME_WAIT after a restart would look busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_in_use(port) from None
            raise AegraError(
                f"cannot listen on {host}:{port}: {exc.strerror}", "pass a --host of this machine and a free --port"
            ) from None


@contextmanager
def port_claimed(host: str, port: int) -> Iterator[None]:
    """The port, free now (ensure_port_free) and this server's from here until it stops, on whichever host.

    The check alone leaves seconds (the graphs are imported) before the server listens. Two servers starting in
    that window would both listen: `--workers` listens with SO_REUSEPORT, which lets any process of the same
    user join, and the kernel then spreads connections over servers of different databases. So every Aegra
    server also holds a lock file named after the port, in the process that runs it (the kernel lets go of it if
    that process dies), and a second one on the port is refused, however close their starts."""
    from aegra_server.storage import sqlite_sharing

    ensure_port_free(host, port)
    if not sqlite_sharing.HAS_FLOCK:  # Windows, where workers share one socket (no SO_REUSEPORT): the bind refuses
        yield
        return
    path = sqlite_sharing.user_temp_path(f"port-{port}.lock")
    try:
        lock = sqlite_sharing.take_without_waiting(path)
    except BlockingIOError:
        raise _port_in_use(port) from None
    except OSError:  # no usable temporary directory: the check above is all there is
        yield
        return
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while held: one who opened it meanwhile finds it gone and makes another
        lock.close()


@contextmanager
def project_environment(project: Project) -> Iterator[None]:
    """The project's env values, as the server will see them, for a check in this process; the check's loader puts
    the dependency folders on sys.path by the server's own rule (aegra_server.graphs).

    Undone afterwards: the server loads .env itself, and values left in os.environ would count as the real
    environment there, so a reload would no longer pick up .env edits.
    """
    added = [key for key in project.env_values if key not in os.environ]
    saved_path = list(sys.path)
    try:
        for key in added:
            os.environ[key] = project.env_values[key]
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
        sys.path[:] = saved_path


def check_database(launch: Launch) -> None:
    """A database the workers can share, and a SQLite file no other server is serving: one line now rather
    than a failed start-up in the server's log."""
    from aegra_server.storage import sqlite_sharing
    from aegra_server.storage.urls import parse_database_url

    with sqlite_sharing.serving(parse_database_url(launch.project.database_url), launch.workers):
        pass  # free now; the server marks it as its own when it starts


@contextmanager
def ui_bundled(launch: Launch) -> Iterator[None]:
    """aegra.json's `ui` components bundled for the server (aegra_server.ui_bundles): once before `serve`, and
    for `dev` again on every change, by a bundler that runs beside the server and stops with it."""
    config = launch.project.config
    if not config.ui:
        yield
        return
    from aegra_server import ui_bundles

    if not launch.dev:
        ui_bundles.build(config)
        yield
        return
    bundler = ui_bundles.watch(config)
    try:
        yield
    finally:
        bundler.terminate()
        bundler.wait(timeout=10)


def check_graphs(project: Project) -> None:
    """Import every graph now, so a broken one is a one-line error instead of a server traceback (and fill in the
    webhook headers' variables, for the same reason)."""
    from aegra_server.graphs import check_graphs as import_all

    with project_environment(project):
        import_all(project.config)
        project.config.webhooks.rendered_headers()


def check_store_embeddings(project: Project) -> None:
    """Resolve `store.index.embed` now, as the server would at start: a missing provider package or a broken
    embeddings file is a one-line error, not a traceback after the panel."""
    from aegra_server.embeddings import resolve_embeddings

    if project.config.store is not None and project.config.store.index is not None:
        with project_environment(project):
            resolve_embeddings(project.config)


# Linux spreads the connections to one port over the sockets listening on it with SO_REUSEPORT; elsewhere (macOS
# gives them all to one socket) the workers share the one listening socket, as uvicorn's workers do.
SPREADS_CONNECTIONS = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def _bind(cls: type[socket.socket], family: int, address: tuple) -> socket.socket:
    sock = cls(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class _ListenerPerWorker(socket.socket):
    """The port, bound (never listening) in the supervisor, so nothing else takes it; each worker process it is
    handed to gets a socket of its own on the same address instead (see __reduce__).

    With one shared listening socket, whichever worker wakes first accepts every connection waiting: a client's
    pool of keep-alive connections, opened together, lands on one worker while the others idle. With a socket
    per worker, the kernel spreads new connections over them (by a hash of the client's address and port)."""

    def __reduce__(self):
        # uvicorn passes its listening sockets to the workers it spawns by pickling them.
        return _bind, (socket.socket, self.family, self.getsockname())


def _run_workers(config) -> None:
    """uvicorn.run for workers, with a listening socket per worker; its supervisor restarts a worker that dies."""
    from uvicorn.supervisors import Multiprocess

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    port = _bind(_ListenerPerWorker, family, (config.host, config.port))
    try:
        Multiprocess(config, sockets=[port]).run()
    except KeyboardInterrupt:
        pass
    finally:
        port.close()


@contextmanager
def _server_environment(launch: Launch) -> Iterator[None]:
    """os.environ as the server processes read it (server_env), for as long as they may start."""
    saved = {key: os.environ.get(key) for key in server_env(launch)}
    _set_environment(server_env(launch))
    try:
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def warm_up(launch: Launch) -> None:
    """With reload, start the process the server processes are forked from (aegra_cli.reloader) now, in their
    environment, so that it imports the server while the project is checked."""
    from aegra_cli import reloader

    if launch.reload and reloader.FORKS:
        with _server_environment(launch):
            reloader.start_warming()


def run(launch: Launch) -> None:
    import uvicorn

    from aegra_cli import reloader

    kwargs = uvicorn_kwargs(launch)
    with _server_environment(launch), metrics_of_all_workers(launch.workers):
        if launch.reload and reloader.FORKS:
            reloader.run(uvicorn.Config(**kwargs), lambda: _watched_dirs_now(launch.project.config_path))
        elif launch.workers > 1 and SPREADS_CONNECTIONS:
            _run_workers(uvicorn.Config(**kwargs))
        else:
            uvicorn.run(**kwargs)


METRICS_FOLDER_PREFIX = "aegra-metrics-"


@contextmanager
def metrics_of_all_workers(workers: int) -> Iterator[None]:
    """A folder for the workers' Prometheus values, so that /metrics answers for all of them whichever takes the
    scrape (aegra_server.observability.metrics), removed when the server stops. One the operator set is kept.
    The folder is named after this process: a server that was killed could not remove its own, and the next one
    to start removes it."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    remove_metrics_folders_of_dead_servers()
    with tempfile.TemporaryDirectory(prefix=f"{METRICS_FOLDER_PREFIX}{os.getpid()}-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def remove_metrics_folders_of_dead_servers() -> None:
    """Remove the metrics folders (see metrics_of_all_workers) of servers no longer running."""
    for folder in Path(tempfile.gettempdir()).glob(f"{METRICS_FOLDER_PREFIX}*-*"):
        pid = folder.name[len(METRICS_FOLDER_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
