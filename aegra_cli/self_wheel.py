"""A wheel of the running aegra, for the projects `aegra init` makes.

A generated project has to depend on aegra, and `aegra` on PyPI is another project (an archived meta-package
whose 0.1.0 and 0.2.0 install a different CLI of the same name). Depending on it by name would make
`pip install -e .` in the project, and the project's Docker image, install that instead. So `aegra init` puts a
wheel of the aegra that made the project in its `vendor/` folder and the project depends on that file
(`aegra @ {root:uri}/vendor/...`, which hatchling resolves to wherever the project is, the image included).

The wheel is packed from the installed files, so it is the aegra the user runs, whether installed from a wheel
(pipx) or editable from a checkout (then the templates come from the checkout's templates/, where the wheel
build puts them). It is byte-for-byte reproducible: the same aegra gives the same file, so `aegra update` only
changes it when aegra changed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import zipfile
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path

from aegra_server.errors import AegraError

DISTRIBUTION = "aegra"
# The import packages of the distribution: pyproject.toml's [tool.hatch.build.targets.wheel] packages (a test
# compares this wheel with the one hatchling builds from the checkout).
PACKAGES = ("aegra_cli", "aegra_server")
VENDOR_DIR = "vendor"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can record: no build time in the file


def wheel_name(version: str) -> str:
    return f"{DISTRIBUTION}-{version}-py3-none-any.whl"


def running_version() -> str:
    return distribution(DISTRIBUTION).version


def _files_under(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix not in (".pyc", ".pyo"):
            yield f"{prefix}/{relative.as_posix()}", path


def _package_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise AegraError(f"{package} is not importable, so aegra cannot be packed for the project",
                             "reinstall aegra, e.g. `pipx install --force .` from its checkout")
        folder = Path(spec.origin).parent
        yield from _files_under(folder, package)
        if package == "aegra_cli" and not (folder / "templates").is_dir():  # an editable install
            from aegra_cli.scaffold import templates_dir  # here: scaffold imports this module

            yield from _files_under(templates_dir(), "aegra_cli/templates")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write_member(archive: zipfile.ZipFile, name: str, data: bytes, record: list[str]) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
    record.append(f"{name},{_record_hash(data)},{len(data)}")


def write_wheel(path: Path) -> None:
    """Pack the running aegra into the wheel file `path`."""
    dist = distribution(DISTRIBUTION)
    dist_info = f"{DISTRIBUTION}-{dist.version}.dist-info"
    metadata = {
        "METADATA": dist.read_text("METADATA"),
        "entry_points.txt": dist.read_text("entry_points.txt"),
        "WHEEL": "Wheel-Version: 1.0\nGenerator: aegra\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record: list[str] = []
    with zipfile.ZipFile(path, "w") as archive:
        for name, source in _package_files():
            _write_member(archive, name, source.read_bytes(), record)
        for name, text in metadata.items():
            if text is not None:
                _write_member(archive, f"{dist_info}/{name}", text.encode(), record)
        record.append(f"{dist_info}/RECORD,,")
        _write_member(archive, f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode(), [])


def vendor_into(project: Path) -> Path:
    """Write this aegra's wheel into `project`/vendor, replacing any other aegra wheel there; returns its path."""
    folder = project / VENDOR_DIR
    folder.mkdir(exist_ok=True)
    target = folder / wheel_name(running_version())
    scratch = folder / f".{target.name}.{os.getpid()}.part"  # so that a failed write leaves no broken wheel
    try:
        write_wheel(scratch)
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    for other in folder.glob(f"{DISTRIBUTION}-*.whl"):
        if other != target:
            other.unlink()
    return target
