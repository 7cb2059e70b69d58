"""The tools run end to end and write what they promise."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import path_figure  # noqa: E402


def test_path_figure_writes_png(tmp_path, capsys):
    output = path_figure.main(["--photo", "chelsea", "--size", "24", "--sparsities", "0.2,0.5", "--output",
                               str(tmp_path / "path.png")])  # fmt: skip
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| independent | 0.5 |" in printed and "| joint | 0.2 |" in printed
