"""`aegra dev`'s reloader: every server process is forked from one that has already imported the server.

uvicorn's reloader starts each server process afresh (multiprocessing's "spawn"), and a fresh process imports
LangGraph, LangChain, FastAPI and the server before it gets to the project's graphs: about 2.5 s of the ~3.3 s
a restart took after each save. Here a forkserver (multiprocessing's own) imports those once, and each server
process is a fork of it, so a restart imports only the project's code: a save is served ~0.4 s later
(benchmarks/dev_reload.py).

What makes that safe: the forkserver imports what a spawned server process would import before it reads any
project file (`PRELOAD`: the module behind `server.APP`, uvicorn, this CLI), and nothing else: it never imports a
graph, reads `.env` or opens the database, so every server process still loads the project as it is on disk at
its start, reads `.env` itself (aegra_server.app), and opens its own connections. It is single-threaded, so
forking it is as safe as forking is. Its environment is the one `aegra dev` sets for its server processes
(`start_warming` is called once it is set). A package installed or upgraded meanwhile is seen once `aegra dev`
starts again.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from socket import socket
from typing import Any

from aegra_cli.server import APP

# What a server process imports before the project's code, nothing from the project itself: the server's module;
# uvicorn, with what its "auto" settings pick (uvloop when installed: a module that cannot be imported is
# skipped); this CLI, which multiprocessing imports again in each process started from the `aegra` script
# (as __mp_main__); and, last, a module that freezes all that out of the garbage collector's scans.
PRELOAD = [
    APP.partition(":")[0],
    "uvicorn.main",
    "uvicorn.loops.auto",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
    "aegra_cli.app",
    "aegra_cli.frozen_preload",
]
# Linux only: macOS has a forkserver, but Apple's frameworks do not promise to survive a fork (the reason Python
# spawns there by default), and Windows has none. Elsewhere the CLI runs uvicorn's own reloader.
FORKS = sys.platform.startswith("linux")

logger = logging.getLogger("uvicorn.error")


def _forkserver() -> Any:
    """multiprocessing's forkserver context, with what it imports before it forks."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_warming() -> None:
    """Start the forkserver now, so that it imports the server while the CLI checks the project (both take a
    couple of seconds, and the machine has more than one core); otherwise the first server process starts it."""
    _forkserver()
    multiprocessing.forkserver.ensure_running()


def _serve(config: Any, target: Any, sockets: list[socket], stdin_fileno: int | None) -> None:
    """A server process's life, in the process forked for it. Its stdin is `aegra dev`'s again (multiprocessing
    gives it /dev/null), so that a breakpoint() in a graph reads the developer's terminal."""
    if stdin_fileno is not None:
        sys.stdin = os.fdopen(stdin_fileno)
    config.configure_logging()
    try:
        target(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the reloader stops this process itself
        pass


def run(config: Any, watched_dirs: Callable[[], list[str] | None]) -> None:
    """uvicorn.run(...) with reload, for a uvicorn.Config with reload set: uvicorn's reloader (watchfiles, its
    includes and excludes, its restart on change) with server processes forked from the forkserver.
    `watched_dirs`: the folders to watch as the project says now (None: as before), asked at every restart, so
    that a folder added to aegra.json's `dependencies` is watched from its reload on."""
    from uvicorn import Server
    from uvicorn.supervisors import ChangeReload
    from watchfiles import watch

    context = _forkserver()
    try:
        stdin = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no stdin at all (None), or not a file
        stdin = None

    class WarmReload(ChangeReload):
        watching = False

        def pause(self) -> None:
            # The file watcher exists from the first wait for changes on; uvicorn pauses before that one too, which
            # a spawned server process outlasted, but a forked one answers within ~0.1 s: a file saved as soon as
            # it answered went unnoticed. So the first wait starts at once, while the server process still starts.
            if self.watching:
                super().pause()
            self.watching = True

        def startup(self) -> None:
            logger.info("Started reloader process [%d] using %s", self.pid, self.reloader_name)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.signal_handler)
            self._start_server()

        def restart(self) -> None:
            self.process.terminate()
            self.process.join()
            self._watch_what_the_project_names()
            self._start_server()

        def _watch_what_the_project_names(self) -> None:
            dirs = watched_dirs()
            if dirs is None or {Path(d) for d in dirs} == set(self.reload_dirs):
                return
            logger.info("Will watch for changes in these directories: %s", sorted(dirs))
            self.watcher.close()
            self.reload_dirs = [Path(d) for d in dirs]
            # As uvicorn's WatchFilesReload makes its watcher; a new one starts watching at its first wait.
            self.watcher = watch(
                *self.reload_dirs,
                watch_filter=None,
                stop_event=self.should_exit,
                yield_on_timeout=True,
                ignore_permission_denied=True,
            )
            self.watching = False

        def _start_server(self) -> None:
            kwargs = {"config": self.config, "target": self.target, "sockets": self.sockets, "stdin_fileno": stdin}
            self.process = context.Process(target=_serve, kwargs=kwargs)
            self.process.start()

    sock = config.bind_socket()
    try:
        WarmReload(config, target=Server(config).run, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
