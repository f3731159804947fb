"""`aegra init` and `aegra update` through CliRunner, in tmp_path, with a template store of the test's own.

CliRunner's stdin is not a terminal, so these are the non-interactive paths: no command here may ever prompt.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import copier
import pytest
import yaml
from typer.testing import CliRunner

from aegra_cli import scaffold, self_wheel
from aegra_cli.app import app

TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store"
    monkeypatch.setenv(scaffold.STORE_ENV, str(path))
    return path


def init(runner: CliRunner, *args: str):
    return runner.invoke(app, ["init", *args])


def git(project: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True)
    return result.stdout


def commit_all(project: Path, message: str = "project") -> None:
    if not (project / ".git").exists():
        git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", message)


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_list_templates(runner: CliRunner) -> None:
    result = init(runner, "--list-templates")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in ("chatbot", "react-agent", "hitl-agent"):
        assert any(line.startswith(name) and len(line.split()) > 2 for line in lines), result.stdout


def test_init_without_a_terminal_asks_nothing_and_uses_the_defaults(runner: CliRunner, tmp_path: Path) -> None:
    project = tmp_path / "Support Bot"
    result = init(runner, str(project))
    assert result.exit_code == 0, result.output
    assert f"Created support-bot (chatbot) in {project}" in result.stdout
    assert f"cd {project} && aegra dev" in result.stdout
    assert answers(project)["project_name"] == "support-bot"  # the folder's name, made a valid project name
    assert answers(project)["model_provider"] == "none"
    assert (project / "src/support_bot/graph.py").is_file()


def test_init_options(runner: CliRunner, tmp_path: Path, store: Path) -> None:
    project = tmp_path / "here"
    result = init(runner, str(project), "--template", "hitl-agent", "--name", "reviewer", "--provider", "openai",
                  "--defaults")
    assert result.exit_code == 0, result.output
    assert answers(project) == {
        "_commit": f"v{version('aegra')}",
        "_src_path": str(store / "hitl-agent"),
        "aegra_version": version("aegra"),
        "model_provider": "openai",
        "project_name": "reviewer",
    }
    assert "langchain-openai" in (project / "pyproject.toml").read_text()
    assert (project / "src/reviewer/graph.py").is_file()


def test_init_into_the_current_folder(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "cwd-agent"
    project.mkdir()
    monkeypatch.chdir(project)
    result = init(runner, "--template", "react-agent")
    assert result.exit_code == 0, result.output
    assert (project / "src/cwd_agent/tools.py").is_file()


def test_a_folder_with_only_git_counts_as_empty(runner: CliRunner, tmp_path: Path) -> None:
    project = tmp_path / "gitted"
    project.mkdir()
    git(project, "init", "-q")
    assert init(runner, str(project)).exit_code == 0
    assert (project / "aegra.json").is_file()


def test_refuses_a_folder_with_files(runner: CliRunner, tmp_path: Path) -> None:
    project = tmp_path / "busy"
    project.mkdir()
    (project / "README.md").write_text("mine\n")
    result = init(runner, str(project))
    assert result.exit_code == 1
    assert f"error: {project} is not empty (README.md)" in result.stderr
    assert "--force" in result.stderr
    assert sorted(path.name for path in project.iterdir()) == ["README.md"]
    assert (project / "README.md").read_text() == "mine\n"


def test_force_lists_every_file_it_replaces(runner: CliRunner, tmp_path: Path) -> None:
    project = tmp_path / "busy"
    project.mkdir()
    (project / "README.md").write_text("mine\n")
    (project / "notes.txt").write_text("keep me\n")
    result = init(runner, str(project), "--force")
    assert result.exit_code == 0, result.output
    assert any("overwrite" in line and "README.md" in line for line in result.stderr.splitlines()), result.stderr
    assert "fake model" in (project / "README.md").read_text()
    assert (project / "notes.txt").read_text() == "keep me\n"


def test_refuses_a_file(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    result = init(runner, str(target))
    assert result.exit_code == 1
    assert "is a file" in result.stderr


def test_unknown_template(runner: CliRunner, tmp_path: Path) -> None:
    result = init(runner, str(tmp_path / "x"), "--template", "react")
    assert result.exit_code == 2
    assert "error: there is no template named 'react'" in result.stderr
    assert "did you mean react-agent?" in result.stderr
    assert not (tmp_path / "x").exists()


def test_invalid_project_name_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    result = init(runner, str(tmp_path / "x"), "--name", "9 lives")
    assert result.exit_code == 1
    assert "project_name" in result.stderr and "Start with a letter" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("folder", "name", "package"), [("class", None, "class"), ("x", "json", "json"), ("my-agent", "Email", "email")])
def test_a_package_named_like_a_keyword_or_a_standard_module_is_refused(
    runner: CliRunner, tmp_path: Path, folder: str, name: str | None, package: str
) -> None:
    result = init(runner, str(tmp_path / folder), *(("--name", name) if name else ()))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"package would be named {package!r}" in result.stderr and "--name" in result.stderr
    assert not (tmp_path / folder).exists()
    assert init(runner, str(tmp_path / folder), "--name", "fine-agent").exit_code == 0  # the folder may stay


def test_unknown_provider_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    assert init(runner, str(tmp_path / "x"), "--provider", "gemini").exit_code == 2


def test_the_store_keeps_one_commit_per_template_content(runner: CliRunner, tmp_path: Path, store: Path) -> None:
    for name in ("a", "b"):
        assert init(runner, str(tmp_path / name)).exit_code == 0
    history = git(store / "chatbot", "log", "--all", "--format=%H %s %D").splitlines()
    assert len(history) == 1 and "tag: v" in history[0]
    assert answers(tmp_path / "a")["_commit"] == answers(tmp_path / "b")["_commit"]


# ---------------------------------------------------------------------------------------------------------
# update


@pytest.fixture
def project(runner: CliRunner, tmp_path: Path) -> Path:
    """A hitl-agent project, committed to git."""
    path = tmp_path / "reviewer"
    assert init(runner, str(path), "--template", "hitl-agent").exit_code == 0
    commit_all(path)
    return path


def newer_templates(tmp_path: Path) -> Path:
    """The bundled templates with one change, standing in for those of a later aegra."""
    root = tmp_path / "newer-templates"
    shutil.copytree(TEMPLATE_ROOT, root)
    graph = root / "hitl-agent" / "src" / "{{ package_name }}" / "graph.py"
    graph.write_text(graph.read_text().replace('"Send this reply?"', '"Send this reply now?"'))
    (root / "hitl-agent" / "CHANGELOG.md").write_text("- review asks 'now?'\n")
    return root


def test_update_brings_in_template_changes(project: Path, tmp_path: Path) -> None:
    updated = scaffold.update(project, templates_root=newer_templates(tmp_path))
    assert updated.changed == [".copier-answers.yml", "CHANGELOG.md", "src/reviewer/graph.py"]
    assert updated.conflicts == []
    assert updated.old_version.startswith("v") and updated.new_version.startswith(updated.old_version + "-1-g")
    assert '"Send this reply now?"' in (project / "src/reviewer/graph.py").read_text()


def test_update_keeps_the_projects_edits_and_marks_overlaps(project: Path, tmp_path: Path) -> None:
    graph = project / "src/reviewer/graph.py"
    graph.write_text(graph.read_text().replace('"Send this reply?"', '"Ship it?"'))
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nOur notes.\n")
    commit_all(project, "our edits")
    updated = scaffold.update(project, templates_root=newer_templates(tmp_path))
    assert updated.conflicts == ["src/reviewer/graph.py"]
    text = graph.read_text()
    assert "<<<<<<<" in text and '"Ship it?"' in text and '"Send this reply now?"' in text
    assert readme.read_text().endswith("\nOur notes.\n")


def test_update_replaces_the_wheel_of_an_older_aegra(project: Path) -> None:
    """A project made by an older aegra depends on that aegra's wheel in vendor/; update swaps both for this one's."""
    current, older = self_wheel.wheel_name(version("aegra")), self_wheel.wheel_name("0.0.9")
    (project / "vendor" / current).rename(project / "vendor" / older)
    for name in ("pyproject.toml", ".copier-answers.yml"):
        path = project / name
        text = path.read_text().replace(current, older)
        path.write_text(text.replace(f"aegra_version: {version('aegra')}", "aegra_version: 0.0.9"))
    commit_all(project, "made by aegra 0.0.9")

    updated = scaffold.update(project)
    assert updated.changed == [".copier-answers.yml", "pyproject.toml", f"vendor/{older}", f"vendor/{current}"]
    assert updated.conflicts == []
    assert [path.name for path in (project / "vendor").iterdir()] == [current]
    pyproject = (project / "pyproject.toml").read_text()
    assert f'"aegra @ {{root:uri}}/vendor/{current}"' in pyproject and older not in pyproject
    assert answers(project)["aegra_version"] == version("aegra")


def test_update_of_a_project_from_before_vendoring_vendors_this_aegra(tmp_path: Path, store: Path) -> None:
    """Projects made before aegra vendored itself depend on `aegra` by name (PyPI's, another project's)."""
    older = tmp_path / "older-templates"
    shutil.copytree(TEMPLATE_ROOT, older)
    pyproject, questions = older / "chatbot" / "pyproject.toml.jinja", older / "chatbot" / "copier.yml"
    text = re.sub(r'    # The aegra that made.*?\n    "aegra @ [^\n]*\n', '    "aegra",\n', pyproject.read_text(), flags=re.S)
    pyproject.write_text(re.sub(r"\[tool\.hatch\.metadata\]\n[^\n]*\n\n", "", text))
    questions.write_text(questions.read_text().split("\n# Set by `aegra init`")[0] + "\n")
    dockerfile = older / "chatbot" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY vendor ./vendor\n", ""))
    source = scaffold.publish(scaffold.find_template("chatbot", older), store / "chatbot")
    made = tmp_path / "made"
    copier.run_copy(source.url, made, data={"project_name": "made"}, vcs_ref=source.ref, defaults=True, quiet=True)
    assert '"aegra",' in (made / "pyproject.toml").read_text() and not (made / "vendor").exists()
    commit_all(made)

    updated = scaffold.update(made)
    wheel = self_wheel.wheel_name(version("aegra"))
    assert {"pyproject.toml", "Dockerfile", f"vendor/{wheel}"} <= set(updated.changed) and updated.conflicts == []
    assert f'"aegra @ {{root:uri}}/vendor/{wheel}"' in (made / "pyproject.toml").read_text()
    assert "COPY vendor ./vendor" in (made / "Dockerfile").read_text()


def test_update_with_nothing_new(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    assert "Already up to date" in result.stdout
    assert git(project, "status", "--porcelain") == ""


def test_update_can_switch_the_provider(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["update", str(project), "--provider", "anthropic"])
    assert result.exit_code == 0, result.output
    assert "files changed" in result.stdout and "git diff" in result.stdout
    assert answers(project)["model_provider"] == "anthropic"
    assert "langchain-anthropic" in (project / "pyproject.toml").read_text()
    assert "ChatAnthropic" in (project / "src/reviewer/model.py").read_text()


def test_update_needs_git(runner: CliRunner, project: Path) -> None:
    shutil.rmtree(project / ".git")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert f"error: {project} is not in a git repository" in result.stderr
    assert "hint: git init && git add -A && git commit" in result.stderr


def test_update_needs_a_clean_checkout(runner: CliRunner, project: Path) -> None:
    (project / "scratch.py").write_text("")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert "has uncommitted changes" in result.stderr


def test_update_outside_a_project(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["update", str(tmp_path)])
    assert result.exit_code == 1
    assert f"error: {tmp_path} has no .copier-answers.yml" in result.stderr


def test_update_without_the_template_history(runner: CliRunner, project: Path, store: Path) -> None:
    shutil.rmtree(store / "hitl-agent")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert f"the template history this project was made from ({store / 'hitl-agent'}) is not on this machine" \
        in result.stderr


def test_update_without_the_version_it_was_made_from(runner: CliRunner, project: Path) -> None:
    path = project / ".copier-answers.yml"
    path.write_text(re.sub(r"_commit: .*", "_commit: v0.0.1-3-gdeadbee", path.read_text()))
    commit_all(project, "made elsewhere")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert "the template version this project was made from (v0.0.1-3-gdeadbee) is not in" in result.stderr


def test_update_refuses_to_go_back_to_an_older_template(
    runner: CliRunner, tmp_path: Path, store: Path
) -> None:
    # The store has seen this aegra's template, then a newer one that made the project.
    scaffold.publish(scaffold.find_template("hitl-agent"), store / "hitl-agent")
    project = tmp_path / "from-the-future"
    scaffold.init(project, scaffold.find_template("hitl-agent", newer_templates(tmp_path)), store=store)
    commit_all(project)
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert "Downgrades are not supported" in result.stderr
    assert git(project, "status", "--porcelain") == ""


def test_a_store_under_home_is_written_as_a_home_path(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    """The answers file is committed and shared; `~/...` resolves on every machine that has the store."""
    monkeypatch.delenv(scaffold.STORE_ENV)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    project = tmp_path / "homely"
    assert init(runner, str(project), "--template", "react-agent").exit_code == 0
    assert answers(project)["_src_path"] == "~/.local/share/aegra/templates/react-agent"
    commit_all(project)
    result = runner.invoke(app, ["update", str(project), "--provider", "openai"])
    assert result.exit_code == 0, result.output
    assert "ChatOpenAI" in (project / "src/homely/model.py").read_text()


def test_without_git_init_still_works_but_update_says_why_it_cannot(
    runner: CliRunner, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    project = tmp_path / "plain"
    result = init(runner, str(project))
    assert result.exit_code == 0, result.output
    assert "warning: git is not installed" in result.stderr
    assert "_commit" not in answers(project)
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1
    assert "does not record which template version made this project" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# On a terminal


class Terminal:
    """A command on a pseudo-terminal, so it sees a TTY and asks its questions, as it would for a person."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        controller, terminal = pty.openpty()
        self.controller = controller
        self.screen = b""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aegra_cli", *args], stdin=terminal, stdout=terminal, stderr=terminal,
            env={**env, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}, close_fds=True,
        )
        os.close(terminal)

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            assert time.monotonic() < deadline, f"no {text!r} on the terminal:\n{self.text()}"
            if select.select([self.controller], [], [], 0.1)[0]:
                try:
                    self.screen += os.read(self.controller, 4096)
                except OSError:  # the command ended
                    assert text in self.text(), f"no {text!r} on the terminal:\n{self.text()}"

    def type(self, keys: str) -> None:
        time.sleep(0.2)  # prompt_toolkit reads keys once its prompt is drawn
        os.write(self.controller, keys.encode())

    def text(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen.decode(errors="replace"))

    def close(self) -> int:
        code = self.process.wait(timeout=30)
        os.close(self.controller)
        return code


def test_on_a_terminal_it_asks_the_template_name_and_provider(tmp_path: Path, store: Path) -> None:
    project = tmp_path / "asked"
    terminal = Terminal("init", str(project), env={**os.environ, scaffold.STORE_ENV: str(store)})
    terminal.expect("Template [chatbot/hitl-agent/react-agent] (chatbot)")
    terminal.type("react-agent\r")
    terminal.expect("Project name")
    terminal.type("\x15demo-bot\r")  # Ctrl-U clears the suggested name ("asked")
    terminal.expect("Model provider")
    terminal.type("\x1b[B\r")  # one down from "None for now": OpenAI
    terminal.expect("Created demo-bot (react-agent)")
    assert terminal.close() == 0, terminal.text()
    assert answers(project)["model_provider"] == "openai"
    assert (project / "src/demo_bot/tools.py").is_file()
