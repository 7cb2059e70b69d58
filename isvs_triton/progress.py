"""Progress of long loops, the same way everywhere: a tqdm bar on a terminal; elsewhere (a log file, CI, a pipe) one
plain line every ``PLAIN_INTERVAL`` seconds with what is done and an estimate of the time left, instead of a bar whose
carriage returns a file keeps one per update."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from tqdm.auto import tqdm

PLAIN_INTERVAL = 30.0  # seconds between two plain lines


def track(iterable: Iterable | None = None, *, total: int, desc: str, enabled: bool = True, initial: int = 0,
          stream=None, interval: float = PLAIN_INTERVAL):  # fmt: skip
    """A progress reporter over ``iterable`` (or driven by ``update``): tqdm on a terminal, plain lines otherwise,
    nothing when not ``enabled``. Both have ``update``, ``set_description``, ``set_postfix``, ``close`` and
    ``disable``."""
    stream = sys.stderr if stream is None else stream
    terminal = hasattr(stream, "isatty") and stream.isatty()
    if not enabled or terminal:
        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=not enabled, leave=False, file=stream)
    return PlainLines(iterable, total=total, desc=desc, initial=initial, stream=stream, interval=interval)


class PlainLines:
    """tqdm's interface as a line every ``interval`` seconds (and one at the end): "desc: n/total (p %), elapsed,
    about T left, postfix"."""

    disable = False

    def __init__(self, iterable, *, total: int, desc: str, initial: int, stream, interval: float):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, initial
        self.stream, self.interval, self.postfix = stream, interval, ""
        self.start = self.last = time.monotonic()
        self.done_at_start, self.printed_at = initial, None

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._line(now)

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self.printed_at != self.n:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.last, self.printed_at = now, self.n
        elapsed, done = now - self.start, self.n - self.done_at_start
        parts = [f"{self.desc}: {self.n}/{self.total}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        parts.append(f"{_clock(elapsed)} elapsed")
        if done > 0 and self.total and self.n < self.total:
            parts.append(f"about {_clock(elapsed / done * (self.total - self.n))} left")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )
