"""The project a command works on, resolved once: which config, which `.env`, which database.

Every command starts from `resolve_project`, so discovery and the database rule cannot drift apart between
`dev`, `serve` and `migrate`. The environment is passed in rather than read here, so tests need no patching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aegra_server.config import AegraConfig, find_config, load_config
from aegra_server.errors import ConfigError
from aegra_server.settings import read_env_file, resolve_database_url


@dataclass(frozen=True)
class Project:
    config_path: Path  # absolute
    config: AegraConfig
    # The file the server process loads itself (so a reload picks up edits); it need not exist.
    env_file: Path
    # Values from the project's files only (aegra.json `env`, then .env over it), before the real environment.
    env_values: dict[str, str]
    database_url: str

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def dependency_paths(self) -> list[Path]:
        return local_dependencies(self.config)


def local_dependencies(config: AegraConfig) -> list[Path]:
    """Local folders listed in `dependencies`; entries naming installed packages are not folders."""
    paths = (config.resolve(entry) for entry in config.dependencies)
    return [path for path in paths if path.is_dir()]


def discover_config(flag: Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """--config, then $AEGRA_CONFIG, then aegra.json / langgraph.json in `cwd` or a folder above it."""
    if flag is not None:
        return (cwd / flag).resolve()
    if environ.get("AEGRA_CONFIG"):
        return (cwd / environ["AEGRA_CONFIG"]).resolve()
    found = find_config(cwd)
    if found is None:
        raise ConfigError(
            f"no aegra.json or langgraph.json in {cwd} or any folder above it",
            "run `aegra init` or pass --config",
        )
    return found.resolve()


def _env_file(config: AegraConfig) -> Path:
    # langgraph.json allows `"env": "path/to/file"`; otherwise the project's .env is the one next to the config.
    if isinstance(config.env, str):
        path = config.resolve(config.env)
        if not path.is_file():
            raise ConfigError(
                f"{config.path}: env file {path} does not exist", "create it or fix the `env` entry"
            )
        return path
    return config.root / ".env"


def resolve_project(
    config: Path | None = None,
    database_url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Project:
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    aegra_config = load_config(discover_config(config, environ, cwd))
    env_file = _env_file(aegra_config)
    inline = aegra_config.env if isinstance(aegra_config.env, dict) else {}
    env_values = {**inline, **read_env_file(env_file)}
    return Project(
        config_path=aegra_config.path,
        config=aegra_config,
        env_file=env_file,
        env_values=env_values,
        # The real environment wins over the project's files. A relative SQLite path given on the command line
        # starts where the command runs; one from the environment or .env starts at the project, so the
        # database does not change with the folder `aegra` is run from.
        database_url=anchored_sqlite(
            resolve_database_url(database_url, {**env_values, **environ}, aegra_config.root),
            cwd if database_url else aegra_config.root,
        ),
    )


def anchored_sqlite(url: str, base: Path) -> str:
    """The URL with a relative SQLite path made absolute under `base`; any other URL as it is."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.lower().startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path.startswith("/") or path == ":memory:":
        return url
    target = Path(path).expanduser() if path.startswith("~") else base.resolve() / path
    return f"{scheme}:///{target}{query_sep}{query}"
