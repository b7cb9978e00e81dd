"""bench.scaleout end to end on a few instances: real controller processes, the exact last line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

LAST_LINE = re.compile(
    r"scaleout N=30 processes=2 rounds=1 p1_seconds=(?P<p1>\d+\.\d\d) "
    r"pN_seconds=(?P<pn>\d+\.\d\d) speedup=\d+\.\d\d rounds_faster=[01]/1"
)


@pytest.mark.slow
def test_one_round_converges_both_sides_and_reports_them() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scaleout", "--count", "30", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"round 1: P=1 .* s \(.*\), P=2 .* s \(.*\), P2/P1 \d+\.\d\d", lines[-2])
    match = LAST_LINE.fullmatch(lines[-1])
    assert match is not None, lines[-1]
    assert float(match["p1"]) > 0 and float(match["pn"]) > 0
