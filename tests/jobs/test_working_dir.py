"""The driver's way back into a working folder that Ray re-unpacked (or removed) under it."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalcluster.jobs import driver


@pytest.fixture
def restore_cwd() -> Iterator[None]:
    before = os.getcwd()
    yield
    os.chdir(before)


def _stand_in_deleted_folder(folder: Path) -> None:
    folder.mkdir()
    os.chdir(folder)
    folder.rmdir()
    with pytest.raises(FileNotFoundError):
        os.getcwd()


def test_steps_into_the_folder_once_it_is_unpacked_again(tmp_path: Path, restore_cwd: None) -> None:
    folder = tmp_path / "working_dir"
    _stand_in_deleted_folder(folder)
    recreate = threading.Timer(0.3, folder.mkdir)
    recreate.start()
    try:
        driver._return_to(str(folder))
    finally:
        recreate.cancel()
    assert Path(os.getcwd()) == folder


def test_falls_back_to_the_temp_folder_when_it_never_returns(
    tmp_path: Path, restore_cwd: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver, "WORKING_DIR_WAIT_S", 0.3)
    folder = tmp_path / "working_dir"
    _stand_in_deleted_folder(folder)
    started = time.monotonic()
    driver._return_to(str(folder))
    assert time.monotonic() - started >= 0.3
    assert os.path.samefile(os.getcwd(), tempfile.gettempdir())


def test_a_live_folder_is_left_alone(tmp_path: Path, restore_cwd: None) -> None:
    os.chdir(tmp_path)
    driver._return_to("/nonexistent-never-used")
    assert Path(os.getcwd()) == tmp_path
