"""A generated project installs the aegra that made it, from the wheel in its vendor/ folder, never `aegra` from the
package index (another project there): the README's `pip install -e '.[dev]'` and the Dockerfile's `pip install .`,
each into a fresh environment, then the installed aegra serving the project.

Offline: the fresh environments see this one's packages (langgraph, fastapi, hatchling...) through a `.pth` file,
all but aegra's own, and pip runs with no index, so aegra can only come from vendor/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from aegra_cli import self_wheel
from tests.templates.helpers import converse, offline_env

CHECKOUT = Path(__file__).resolve().parents[2]
PIP_OFFLINE = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _is_aegras_own(name: str) -> bool:
    # The distribution, its packages, and what an editable install of it adds (.pth files, hook modules).
    return "aegra" in name.lower()


@pytest.fixture(scope="module")
def dependencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with this environment's installed packages except aegra (symlinks)."""
    folder = tmp_path_factory.mktemp("dependencies")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not _is_aegras_own(entry.name):
            (folder / entry.name).symlink_to(entry)
    return folder


def fresh_environment(path: Path, dependencies: Path) -> Path:
    """A new virtual environment (no pip of its own: this one's pip installs into it); returns its Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(f"{dependencies}\n")
    return python


def pip_install(python: Path, *args: str) -> None:
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-build-isolation", "-q", *args]
    result = subprocess.run(command, env={**os.environ, **PIP_OFFLINE}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def installed_aegra(python: Path) -> dict:
    """Where the environment's aegra is imported from and where pip installed it from (PEP 610)."""
    script = (
        "import json, aegra_server; from importlib.metadata import distribution; d = distribution('aegra');"
        "print(json.dumps({'module': aegra_server.__file__, 'version': d.version,"
        " 'url': json.loads(d.read_text('direct_url.json'))['url']}))"
    )
    # Run from the environment's folder: from the checkout, `-c` would import the checkout's aegra_server.
    result = subprocess.run([python, "-c", script], cwd=python.parent, env=offline_env(), capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel hatchling builds from the checkout: what `pipx install .` installs."""
    folder = tmp_path_factory.mktemp("built")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder),
         str(CHECKOUT)],
        env={**os.environ, **PIP_OFFLINE}, check=True, capture_output=True,
    )
    [wheel] = folder.glob("*.whl")
    assert wheel.name == self_wheel.wheel_name(version("aegra"))
    return wheel


def assert_same_wheel(packed_path: Path, built_path: Path) -> None:
    dist_info = f"aegra-{version('aegra')}.dist-info/"
    with zipfile.ZipFile(packed_path) as packed, zipfile.ZipFile(built_path) as built:
        assert sorted(packed.namelist()) == sorted(built.namelist())
        for name in built.namelist():
            if not name.startswith(dist_info):
                assert packed.read(name) == built.read(name), name
        # The headers (name, version, dependencies...); the body is the README as of the install, which in an
        # editable install can be older than the checkout's.
        headers = [wheel.read(dist_info + "METADATA").decode().split("\n\n")[0] for wheel in (packed, built)]
        assert headers[0] == headers[1]
        assert packed.read(dist_info + "entry_points.txt") == built.read(dist_info + "entry_points.txt")


def test_the_wheel_of_an_editable_install_has_what_hatchling_builds(built: Path, tmp_path: Path) -> None:
    # This environment's aegra is the checkout, installed editable: the templates come from templates/.
    ours = tmp_path / "ours.whl"
    self_wheel.write_wheel(ours)
    assert_same_wheel(ours, built)

    again = tmp_path / "again.whl"
    self_wheel.write_wheel(again)
    assert again.read_bytes() == ours.read_bytes()  # reproducible: `aegra update` leaves an unchanged one alone


def test_an_aegra_installed_from_its_wheel_vendors_the_same_wheel(
    built: Path, dependencies: Path, tmp_path: Path
) -> None:
    """The `pipx install .` case: aegra installed from its wheel makes a project; the wheel in vendor/ is that one."""
    python = fresh_environment(tmp_path / "venv", dependencies)
    pip_install(python, str(built))
    env = {**offline_env(), "AEGRA_TEMPLATE_STORE": str(tmp_path / "store")}
    result = subprocess.run([python.parent / "aegra", "init", str(tmp_path / "made"), "--defaults"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_wheel(tmp_path / "made" / "vendor" / built.name, built)


async def test_pip_install_of_a_generated_project_installs_this_aegra(
    render, start_dev, dependencies: Path, tmp_path: Path
) -> None:
    project = render("chatbot")
    wheel = project / "vendor" / self_wheel.wheel_name(version("aegra"))

    # The README's way: an editable install, with the dev extra.
    readme_python = fresh_environment(tmp_path / "readme-venv", dependencies)
    pip_install(readme_python, "-e", f"{project}[dev]")
    installed = installed_aegra(readme_python)
    assert installed["version"] == version("aegra")
    assert Path(installed["module"]).is_relative_to(tmp_path / "readme-venv")
    assert installed["url"] == wheel.as_uri()
    aegra = subprocess.run([tmp_path / "readme-venv" / "bin" / "aegra", "version"], capture_output=True, text=True,
                           env=offline_env(), check=True)
    assert aegra.stdout.strip() == f"aegra {version('aegra')}"

    # The Dockerfile's way: only the files it copies in before `pip install .`, then the rest, then serve.
    image = tmp_path / "app"
    image.mkdir()
    steps = [line.split() for line in (project / "Dockerfile").read_text().splitlines()]
    install_step = next(i for i, step in enumerate(steps) if step[:5] == ["RUN", "pip", "install", "--no-cache-dir", "."])
    image_python = fresh_environment(tmp_path / "image-venv", dependencies)
    for index, step in enumerate(steps):
        if index == install_step:
            pip_install(image_python, str(image))
        if step[:1] == ["COPY"]:
            for source in step[1:-1]:
                copy = shutil.copytree if (project / source).is_dir() else shutil.copy
                copy(project / source, image / source)
    assert installed_aegra(image_python)["url"] == (image / "vendor" / wheel.name).as_uri()

    server = start_dev(image, str(image_python))
    server.wait_ready()
    await converse("chatbot", server.url)
