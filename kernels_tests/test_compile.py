"""Every kernel compiles ahead of time for sm_80 and sm_90 without register spills (no GPU needed)."""

import os
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "compile_report.py"


def test_compile_report_has_no_failures_or_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, str(TOOL), "--archs", "80,90"], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| _lbi_")]
    assert len(rows) == 32, result.stdout  # 2 kernels x 2 targets x (joint, momentum, noise stop) on/off
    events = [line for line in result.stdout.splitlines() if line.startswith("| _events_kernel")]
    assert len(events) == 8, result.stdout  # 2 targets x (joint, noise stop) on/off
    onchip = [line for line in result.stdout.splitlines() if line.startswith("| _events_onchip_kernel")]
    assert len(onchip) == 40, result.stdout  # 2 targets x 5 shapes x (joint, noise stop) on/off
    tiled = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("| _times_", "| _move_", "| _chebyshev_", "| _correct_", "| _histogram_", "| _pick_"))
    ]
    assert len(tiled) == 24, result.stdout  # 2 targets x (4 passes x joint on/off + histogram, pick x 2 widths)
    write_back = [line for line in result.stdout.splitlines() if line.startswith("| _write_back_kernel")]
    assert len(write_back) == 4, result.stdout  # 2 targets x joint on/off
    projection = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("| _") and line not in rows + events + onchip + tiled + write_back
    ]
    assert len(projection) == 10, result.stdout  # 5 projection kernels x 2 targets
    assert all(
        line.split("|")[5].strip() == "0" for line in rows + events + onchip + tiled + write_back + projection
    ), result.stdout
    assert "all kernels compiled without spills" in result.stdout
