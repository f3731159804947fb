"""A missing image is pulled with progress: a small image of its own is pushed to a local registry, removed, and
pulled back by `ensure_image`, the code `aegra up` runs when the Postgres image is not there."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from aegra_cli import ui
from aegra_cli.docker_postgres import ensure_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


class Recorder(ui.Activity):
    """The real progress display, keeping what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []
        self.layers: list[tuple[str, str, int | None, int | None]] = []

    def step(self, message: str) -> None:
        self.steps.append(message)
        super().step(message)

    def download(self, layer: str, status: str, current: int | None, total: int | None) -> None:
        self.layers.append((layer, status, current, total))
        super().download(layer, status, current, total)


def test_a_missing_image_is_pulled_with_progress(engine, registry: str, tmp_path: Path) -> None:
    from docker.errors import ImageNotFound

    context = tmp_path / "context"
    context.mkdir()
    # Random bytes: a layer no other image has (so it is downloaded, not "Already exists"), and big enough for
    # the engine to report progress on the way.
    (context / "blob").write_bytes(os.urandom(8 * 1024 * 1024))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
    ref = f"{registry}/aegra-test/pull-{uuid.uuid4().hex[:8]}:1"
    engine.images.build(path=str(context), tag=ref, rm=True)
    try:
        for event in engine.images.push(ref, stream=True, decode=True):
            assert "error" not in event, event
        engine.images.remove(ref, force=True)
        with pytest.raises(ImageNotFound):
            engine.images.get(ref)

        shown = Recorder()
        try:
            ensure_image(engine, ref, shown)
        finally:
            shown.close()

        assert engine.images.get(ref)
        assert shown.steps == [f"pulling {ref}"]
        statuses = [status for _, status, _, _ in shown.layers]
        assert "Pull complete" in statuses
        downloading = [(current, total) for _, status, current, total in shown.layers if status == "Downloading"]
        assert downloading and all(0 < current <= total for current, total in downloading)

        again = Recorder()
        ensure_image(engine, ref, again)  # present now: nothing to pull, nothing shown
        assert again.steps == [] and again.layers == []
    finally:
        try:
            engine.images.remove(ref, force=True)
        except ImageNotFound:
            pass
