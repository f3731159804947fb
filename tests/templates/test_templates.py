"""Every bundled template, rendered into tmp_path: the files a project needs, its own tests passing, and
`aegra dev` serving it to langgraph-sdk at once — offline, with no API key, on the fake model."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from aegra_cli import self_wheel
from aegra_server.config import load_config
from tests.templates.helpers import TEMPLATES, DevServer, converse, offline_env, run_in

TEMPLATE_ROOT = Path(__file__).resolve().parents[2] / "templates"
EXPECTED_FILES = [
    ".copier-answers.yml", ".dockerignore", ".env.example", ".gitignore", "Dockerfile", "README.md", "aegra.json",
    "compose.yaml", "pyproject.toml", "src/my_agent/__init__.py", "src/my_agent/graph.py", "src/my_agent/model.py",
    "tests/test_graph.py",
]
# Boilerplate each template carries a copy of (Copier has no includes across templates); they must not drift.
SHARED_FILES = [
    "{{ _copier_conf.answers_file }}.jinja", ".dockerignore", ".env.example.jinja", ".gitignore.jinja", "Dockerfile",
    "aegra.json.jinja", "compose.yaml", "pyproject.toml.jinja", "src/{{ package_name }}/__init__.py.jinja",
    "src/{{ package_name }}/model.py.jinja",
]


def test_there_are_the_three_templates() -> None:
    assert set(TEMPLATES) >= {"chatbot", "react-agent", "hitl-agent"}


@pytest.mark.parametrize("name", SHARED_FILES)
def test_shared_boilerplate_is_the_same_in_every_template(name: str) -> None:
    contents = {template: (TEMPLATE_ROOT / template / name).read_text() for template in TEMPLATES}
    assert len(set(contents.values())) == 1, f"{name} differs between templates: {sorted(contents)}"


def test_every_template_asks_the_same_questions() -> None:
    def questions(template: str) -> dict:
        config = yaml.safe_load((TEMPLATE_ROOT / template / "copier.yml").read_text())
        config.pop("template_description")  # the one thing that differs
        return config

    first, *others = TEMPLATES
    for template in others:
        assert questions(template) == questions(first), template


@pytest.mark.parametrize("template", TEMPLATES)
def test_generated_project_files(render, store: Path, template: str) -> None:
    project = render(template)
    for name in EXPECTED_FILES:
        assert (project / name).is_file(), name
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path.suffix != ".whl":
            assert not re.search(r"\{\{|\{%", path.read_text()), f"{path} has unrendered Jinja"

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "my-agent"
    # This aegra, from its wheel in vendor/ (the only file there), never `aegra` from the package index.
    wheel = self_wheel.wheel_name(version("aegra"))
    assert f"aegra @ {{root:uri}}/vendor/{wheel}" in pyproject["project"]["dependencies"]
    assert [path.name for path in (project / "vendor").iterdir()] == [wheel]
    assert pyproject["tool"]["hatch"]["metadata"]["allow-direct-references"] is True

    config = load_config(project / "aegra.json")
    assert list(config.graphs) == ["agent"] and config.graphs["agent"].path == "my_agent.graph:graph"

    compose = yaml.safe_load((project / "compose.yaml").read_text())
    assert "pgvector" in compose["services"]["postgres"]["image"]
    assert "@postgres:5432/" in compose["services"]["app"]["environment"]["DATABASE_URL"]
    dockerfile = (project / "Dockerfile").read_text()
    assert 'CMD ["aegra", "serve"' in dockerfile and "COPY vendor ./vendor" in dockerfile

    readme = (project / "README.md").read_text()
    assert "fake model" in readme and "aegra dev" in readme
    # What `aegra update` needs: the template's history in the store, and the version this project came from.
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(store / template) and answers["_commit"].startswith("v")
    assert answers["project_name"] == "my-agent" and answers["model_provider"] == "none"
    assert ".env" in (project / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("provider, package, key", [
    ("openai", "langchain-openai", "OPENAI_API_KEY"), ("anthropic", "langchain-anthropic", "ANTHROPIC_API_KEY")
])
def test_a_provider_is_a_dependency_and_used_only_with_its_key(render, provider, package, key) -> None:
    project = render("react-agent", provider=provider)
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dependency.startswith(package) for dependency in dependencies)
    assert key in (project / ".env.example").read_text()
    model = (project / "src/my_agent/model.py").read_text()
    module = package.replace("-", "_")
    # Imported inside make_model, behind the key: without one the project needs no provider package at all.
    assert f"    from {module} import" in model and f"\nfrom {module}" not in model
    script = "import sys; sys.path.insert(0, 'src'); from my_agent.model import make_model, FakeChatModel; " \
             "assert isinstance(make_model(), FakeChatModel)"
    result = run_in(project, "-c", script)
    assert result.returncode == 0, result.stderr
    assert f"FAKE MODEL: {key} is not set" in result.stderr


def _run_project_tests(project: Path) -> subprocess.Popen[str]:
    # `-p no:cacheprovider` keeps .pytest_cache out; the project's own pyproject puts src/ on the path.
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                            env=offline_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("template", TEMPLATES)
async def test_generated_project_passes_its_tests_and_serves(render, start_dev, template: str) -> None:
    project = render(template)
    tests = _run_project_tests(project)
    server: DevServer = start_dev(project)  # starts while the project's tests run; both take a few seconds

    output, _ = tests.communicate(timeout=60)
    assert tests.returncode == 0, output
    assert " passed" in output

    server.wait_ready()
    # The server has migrated its database by now; doctor checks the project while the conversation runs.
    doctor = subprocess.Popen([sys.executable, "-m", "aegra_cli", "doctor"], cwd=project, env=offline_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    await converse(template, server.url)
    assert "FAKE MODEL" in server.output()

    report, errors = doctor.communicate(timeout=60)
    assert doctor.returncode == 0, report + errors
    assert "✓ graph agent: my_agent.graph:graph loads" in report
    assert "schema at revision" in report

