"""Project templates: list them, render one into a folder (`aegra init`), bring a project up to date (`aegra update`).

Copier renders; this module decides where templates come from. `copier update` re-renders the template version a
project was made from and merges the difference into the project, so it needs that version from a git repository,
while the bundled templates are plain folders in the installed package. So each template is first published into
a git repository of its own in the template store (~/.local/share/aegra/templates/<name> by default): one commit
per distinct content, tagged with the aegra version that first shipped it. The project's answers file points
there, which is how a later aegra finds both the old version and the new one.

Each project also gets a wheel of the aegra that made or updated it, in vendor/, which its pyproject.toml depends
on (see self_wheel for why).
"""

from __future__ import annotations

import difflib
import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from aegra_server.errors import AegraError, UsageError

from aegra_cli import self_wheel

ANSWERS_FILE = ".copier-answers.yml"
DEFAULT_TEMPLATE = "chatbot"
Provider = Literal["none", "openai", "anthropic"]  # the choices of `model_provider` in every copier.yml
STORE_ENV = "AEGRA_TEMPLATE_STORE"

# Store commits must not depend on who runs aegra, or need a git identity to be configured at all.
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "aegra",
    "GIT_AUTHOR_EMAIL": "aegra@localhost",
    "GIT_COMMITTER_NAME": "aegra",
    "GIT_COMMITTER_EMAIL": "aegra@localhost",
}
# Bytecode is never part of a template, whoever ran Python near it.
_STORE_EXCLUDES = "__pycache__/\n*.py[cod]\n"
_CONFLICT_MARKER = "<<<<<<< "


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    path: Path


@dataclass(frozen=True)
class Source:
    """A template version in the store, as Copier takes it: the repository and the commit."""

    url: str
    ref: str


@dataclass(frozen=True)
class Created:
    directory: Path
    template: str
    answers: dict[str, Any]
    # False when git was missing: the project was rendered from the plain folder, with no version to update from.
    updatable: bool


@dataclass(frozen=True)
class Updated:
    directory: Path
    old_version: str
    new_version: str
    changed: list[str]
    conflicts: list[str]  # files with <<<<<<< markers where the template's changes and the project's overlap


# ---------------------------------------------------------------------------------------------------------
# The bundled templates


def templates_dir() -> Path:
    """aegra_cli/templates in an installed wheel; the repository's templates/ in an editable install."""
    packaged = resources.files("aegra_cli") / "templates"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise AegraError(
        "this aegra installation has no project templates", "reinstall aegra, e.g. `pipx install --force aegra`"
    )


def list_templates(root: Path | None = None) -> list[Template]:
    """The templates in `root` (default: the bundled ones), by name."""
    found = []
    for folder in sorted((root or templates_dir()).iterdir()):
        config = folder / "copier.yml"
        if config.is_file():
            questions = yaml.safe_load(config.read_text()) or {}
            description = (questions.get("template_description") or {}).get("default", "")
            found.append(Template(folder.name, description, folder))
    return found


def find_template(name: str, root: Path | None = None) -> Template:
    templates = {template.name: template for template in list_templates(root)}
    if name in templates:
        return templates[name]
    close = difflib.get_close_matches(name, templates, n=1)
    choices = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(templates)}"
    raise UsageError(f"there is no template named {name!r}", f"{choices} (`aegra init --list-templates`)")


# ---------------------------------------------------------------------------------------------------------
# The template store


def template_store(environ: Mapping[str, str] | None = None) -> Path:
    """$AEGRA_TEMPLATE_STORE, else $XDG_DATA_HOME/aegra/templates, else ~/.local/share/aegra/templates."""
    environ = os.environ if environ is None else environ
    if environ.get(STORE_ENV):
        return Path(environ[STORE_ENV]).expanduser().resolve()
    data_home = Path(environ["XDG_DATA_HOME"]) if environ.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return data_home / "aegra" / "templates"


def _run_git(args: list[str], *, git_dir: Path | None = None, cwd: Path | None = None,
             index: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(_GIT_IDENTITY)
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if cwd is not None and git_dir is not None:
        env["GIT_WORK_TREE"] = str(cwd)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    # A global excludes file could silently drop template files (a `.env*` rule would lose .env.example).
    command = ["git", "-c", f"core.excludesFile={os.devnull}", "-c", "core.autocrlf=false", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)


def _git(args: list[str], repository: Path, **kwargs: Any) -> str:
    result = _run_git(args, git_dir=repository / ".git", **kwargs)
    if result.returncode != 0:
        raise AegraError(
            f"git {args[0]} failed in the template store {repository}: {result.stderr.strip()}",
            f"check that {repository.parent} is writable",
        )
    return result.stdout.strip()


def _has_ref(repository: Path, ref: str) -> bool:
    return _run_git(["rev-parse", "--verify", "--quiet", ref], git_dir=repository / ".git").returncode == 0


def _tree_of(folder: Path, repository: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="aegra-template-") as scratch:
        index = Path(scratch) / "index"
        _git(["add", "--all", "."], repository, cwd=folder, index=index)
        return _git(["write-tree"], repository, cwd=folder, index=index)


def publish(template: Template, repository: Path) -> Source:
    """Commit the template's current content to `repository` (made if missing) and return that commit.

    Content committed before is reused, so the store only grows when a template changes. A new commit is tagged
    v<aegra version> unless that tag exists, which makes Copier say "updating from 0.1.0 to 0.2.0".
    """
    if not (repository / ".git").is_dir():
        repository.mkdir(parents=True, exist_ok=True)
        result = _run_git(["init", "--quiet", str(repository)])
        if result.returncode != 0:
            raise AegraError(f"cannot create the template store {repository}: {result.stderr.strip()}",
                             f"check that {repository.parent} is writable, or set {STORE_ENV}")
        (repository / ".git" / "info").mkdir(exist_ok=True)
        (repository / ".git" / "info" / "exclude").write_text(_STORE_EXCLUDES)
    tree = _tree_of(template.path, repository)
    has_head = _has_ref(repository, "HEAD")
    history = _git(["log", "--all", "--format=%H %T"], repository) if has_head else ""
    for line in history.splitlines():
        commit, commit_tree = line.split()
        if commit_tree == tree:
            return Source(_portable(repository), commit)
    aegra_version = self_wheel.running_version()
    parent = ["-p", "HEAD"] if has_head else []
    commit = _git(["commit-tree", tree, *parent, "-m", f"{template.name} from aegra {aegra_version}"], repository)
    _git(["update-ref", "HEAD", commit], repository)
    if not _has_ref(repository, f"refs/tags/v{aegra_version}"):
        _git(["tag", f"v{aegra_version}", commit], repository)
    return Source(_portable(repository), commit)


def _portable(repository: Path) -> str:
    """`~/...` for a store under the home folder: the answers file is committed, and homes differ between people."""
    try:
        return f"~/{repository.relative_to(Path.home()).as_posix()}"
    except ValueError:
        return str(repository)


# ---------------------------------------------------------------------------------------------------------
# init and update


def read_answers(directory: Path) -> dict[str, Any]:
    path = directory / ANSWERS_FILE
    if not path.is_file():
        raise AegraError(f"{directory} has no {ANSWERS_FILE}", "run this in a project made by `aegra init`")
    try:
        answers = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AegraError(
            f"{path} is not valid YAML: {exc}", f"restore it from git: git checkout -- {ANSWERS_FILE}"
        ) from None
    if not isinstance(answers, dict):
        raise AegraError(f"{path} does not hold answers", f"restore it from git: git checkout -- {ANSWERS_FILE}")
    return answers


def _check_destination(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise AegraError(f"{directory} is a file", "pass a folder for the new project")
    # A folder with only `git init` done counts as empty: starting under git is what `aegra update` needs later.
    existing = sorted(entry.name for entry in directory.iterdir() if entry.name != ".git") if directory.exists() else []
    if existing and not force:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise AegraError(
            f"{directory} is not empty ({shown})",
            "choose a new folder, or pass --force to write into it (each file it replaces is listed)",
        )


def _package_name(directory: Path, project_name: str | None) -> str:
    """The package a template names after the project: copier.yml's `project_name` default, from the folder's
    name, then its `package_name`. Kept in step with the templates' copier.yml."""
    derived = re.sub(r"[^a-z0-9_-]+", "-", directory.name.lower())
    derived = re.sub(r"[-_]+$", "", re.sub(r"^[^a-z]+", "", derived))
    return (project_name or derived or "my-agent").lower().replace("-", "_")


def _check_package_name(package: str) -> None:
    """A package named like a keyword cannot be imported, and one named like a standard module is shadowed by it
    (`json`, `email`): the project would render, then fail to load."""
    if keyword.iskeyword(package) or package in sys.stdlib_module_names:
        what = "a Python keyword" if keyword.iskeyword(package) else "a module of Python's standard library"
        raise AegraError(
            f"the project's package would be named {package!r}, which is {what}, so its graph could not be imported",
            "pass another name with --name (the folder can stay as it is)",
        )


def init(
    directory: Path,
    template: Template,
    *,
    project_name: str | None = None,
    provider: str | None = None,
    interactive: bool = False,
    force: bool = False,
    store: Path | None = None,
) -> Created:
    """Render `template` into `directory`. Copier asks its questions only when `interactive`.

    With `force` into a folder that has files, Copier lists every file it writes and marks each it replaces
    ("overwrite"); interactively it asks before replacing each one instead.
    """
    import copier
    from copier.errors import CopierAnswersInterrupt, CopierError

    directory = directory.resolve()
    if project_name or not interactive:  # interactively, Copier asks for the name later
        _check_package_name(_package_name(directory, project_name))
    _check_destination(directory, force)
    # Without git there is no history to update from; the project still renders, from the plain folder.
    source = publish(template, (store or template_store()) / template.name) if shutil.which("git") else None
    data = {key: value for key, value in (("project_name", project_name), ("model_provider", provider)) if value}
    data["aegra_version"] = self_wheel.running_version()
    try:
        copier.run_copy(
            source.url if source else str(template.path),
            directory,
            data=data,
            vcs_ref=source.ref if source else None,
            defaults=not interactive,
            overwrite=force and not interactive,
            unsafe=False,
            quiet=not force,
        )
    except CopierAnswersInterrupt:
        raise AegraError("cancelled; no files were written") from None
    except (CopierError, ValueError) as exc:  # a ValueError is an answer the template rejects
        raise AegraError(str(exc), "give another value with --name or --provider") from None
    self_wheel.vendor_into(directory)
    answers = {key: value for key, value in read_answers(directory).items() if not key.startswith("_")}
    return Created(directory, template.name, answers, updatable=source is not None)


def _require_clean_git(directory: Path) -> None:
    if shutil.which("git") is None:
        raise AegraError("git is not installed; `aegra update` merges template changes through git", "install git")
    status = _run_git(["status", "--porcelain"], cwd=directory)
    if status.returncode != 0:
        raise AegraError(
            f"{directory} is not in a git repository; `aegra update` merges template changes with yours through git",
            'git init && git add -A && git commit -m "Project from aegra init", then run aegra update again',
        )
    if status.stdout.strip():
        raise AegraError(
            f"{directory} has uncommitted changes",
            "commit or stash them first, so that `git diff` afterwards shows exactly what the update changed",
        )


def _template_of(answers: dict[str, Any], directory: Path, root: Path | None) -> tuple[Template, Path]:
    source, version = answers.get("_src_path"), answers.get("_commit")
    if not source or not version:
        raise AegraError(
            f"{directory / ANSWERS_FILE} does not record which template version made this project "
            "(it was rendered without git, so there is no history to update from)",
            "install git; new projects from `aegra init` can then be updated",
        )
    repository = Path(source).expanduser()
    names = [template.name for template in list_templates(root)]
    if repository.name not in names:
        raise AegraError(f"this project comes from {source}, not from an aegra template", "update it with copier update")
    if not (repository / ".git").is_dir():
        raise AegraError(
            f"the template history this project was made from ({source}) is not on this machine",
            "run aegra update where the project was created, or copy that folder here",
        )
    # Tags (v0.1.0) exist in every store that saw that aegra version; untagged commits only where they were made.
    if not _has_ref(repository, f"{version}^{{commit}}"):
        raise AegraError(
            f"the template version this project was made from ({version}) is not in {source}",
            "run aegra update where the project was created",
        )
    return find_template(repository.name, root), repository


def update(
    directory: Path, *, provider: str | None = None, interactive: bool = False, templates_root: Path | None = None
) -> Updated:
    """Bring a git-tracked project made by `aegra init` up to the templates of this aegra (`copier update`).

    Copier re-renders the old template version and the new one with the project's answers and applies the
    difference to the project; where it overlaps the project's own edits it leaves <<<<<<< markers.
    `templates_root` stands in for the bundled templates (tests use it to play a newer aegra).
    """
    import copier
    from copier.errors import CopierAnswersInterrupt, CopierError
    from plumbum import ProcessExecutionError

    directory = directory.resolve()
    answers = read_answers(directory)
    template, repository = _template_of(answers, directory, templates_root)
    _require_clean_git(directory)
    source = publish(template, repository)
    try:
        copier.run_update(
            directory,
            data={"aegra_version": self_wheel.running_version(), **({"model_provider": provider} if provider else {})},
            vcs_ref=source.ref,
            defaults=not interactive,
            overwrite=True,  # the project is clean under git, so every change can be reviewed and undone
            unsafe=False,
            quiet=True,
        )
    except CopierAnswersInterrupt:
        raise AegraError("cancelled; the project was not changed") from None
    except ProcessExecutionError as exc:  # git, run by Copier
        raise AegraError(f"copier update failed: {(exc.stderr or '').strip() or exc}") from None
    except (CopierError, ValueError) as exc:  # e.g. "Downgrades are not supported"
        raise AegraError(str(exc)) from None
    self_wheel.vendor_into(directory)  # the wheel that pyproject.toml now names
    changed = _changed_files(directory)
    return Updated(
        directory,
        old_version=str(answers["_commit"]),
        new_version=str(read_answers(directory)["_commit"]),
        changed=changed,
        conflicts=[name for name in changed if _has_conflict_markers(directory / name)],
    )


def _changed_files(directory: Path) -> list[str]:
    # Paths relative to `directory`, untracked files included.
    output = _run_git(["status", "--porcelain", "--untracked-files=all", "--", "."], cwd=directory).stdout
    repository_root = Path(_run_git(["rev-parse", "--show-toplevel"], cwd=directory).stdout.strip())
    paths = [repository_root / line[3:].split(" -> ")[-1].strip('"') for line in output.splitlines()]
    return sorted(str(path.relative_to(directory)) for path in paths if path.is_relative_to(directory))


def _has_conflict_markers(path: Path) -> bool:
    try:
        return any(line.startswith(_CONFLICT_MARKER) for line in path.read_text(errors="replace").splitlines())
    except OSError:
        return False
