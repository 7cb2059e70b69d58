"""``isvs_triton.progress.track``: a bar on a terminal, plain lines with the time left elsewhere, nothing when off."""

import io

from tqdm.auto import tqdm

from isvs_triton.progress import PlainLines, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_plain_lines_with_the_time_left_and_no_carriage_returns():
    stream = io.StringIO()
    items = list(track(range(4), total=4, desc="epoch 1/2", stream=stream, interval=0.0))
    assert items == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and lines[0].startswith("epoch 1/2: 1/4 (25 %), 0:00 elapsed, about")
    assert lines[-1].startswith("epoch 1/2: 4/4 (100 %)") and "left" not in lines[-1]


def test_plain_lines_come_once_per_interval_and_once_at_the_end():
    stream = io.StringIO()
    bar = track(total=1000, desc="evaluating", stream=stream, interval=3600)
    assert isinstance(bar, PlainLines)
    for _ in range(1000):
        bar.update()
    bar.set_postfix(loss="0.123")
    bar.close()
    assert stream.getvalue().splitlines() == ["evaluating: 1000/1000 (100 %), 0:00 elapsed, loss 0.123"]


def test_a_terminal_gets_a_bar_and_off_is_silent():
    assert isinstance(track(range(3), total=3, desc="x", stream=Terminal()), tqdm)
    stream = io.StringIO()
    list(track(range(3), total=3, desc="x", enabled=False, stream=stream))
    assert stream.getvalue() == ""
