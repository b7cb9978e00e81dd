"""``make demo`` leaves no temporary data dir behind after a clean run, and after a failed one
keeps it and says where it is and how to remove it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skybroker import demo


def _demo_ending_with(code: int, seen: list[Path]) -> Callable[[Path], int]:
    def run_demo(data_dir: Path) -> int:
        seen.append(data_dir)
        (data_dir / "etcd.log").write_text("what a run leaves\n")
        return code

    return run_demo


def test_a_clean_run_removes_its_data_dir(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Path] = []
    monkeypatch.setattr(demo, "run_demo", _demo_ending_with(0, seen))
    assert demo.main() == 0
    assert not seen[0].exists()
    assert f"removed the demo's data dir {seen[0]}" in capsys.readouterr().out


def test_a_failed_run_keeps_its_data_dir_and_says_how_to_remove_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Path] = []
    monkeypatch.setattr(demo, "run_demo", _demo_ending_with(1, seen))
    try:
        assert demo.main() == 1
        assert (seen[0] / "etcd.log").exists()
        assert f"rm -rf {seen[0]}" in capsys.readouterr().err
    finally:
        for leftover in seen[0].iterdir():
            leftover.unlink()
        seen[0].rmdir()
