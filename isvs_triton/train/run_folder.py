"""A run folder belongs to its run: training writes only into a new or empty folder or into one that holds a run
(``MARKER``, written first), and holds ``LOCK`` while it writes, so that a second training on the same folder is
refused instead of mixing its files with the first's.

The lock names its holder (process id, host, start time). A lock whose process no longer runs on this host is stale
(a run killed by SIGKILL or a power cut leaves one) and is taken over; a lock held on another host cannot be
checked from here, so it is refused with the way to remove it by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

MARKER = ".isvs-run"  # written into a run folder before anything else: the folder's files are the run's
LOCK = "run.lock"  # present while a training writes into the folder


def check_writable(folder: Path, what: str) -> None:
    """``--output`` ``folder`` can be made and written (for ``what``), checked before any data is loaded."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output {str(folder)!r} is a file; {what} needs a folder there")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--output {str(folder)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"--output {str(folder)!r}: {str(existing)!r} is not writable")


def claim(run: Path) -> None:
    """Make ``run`` a run folder: refused when it holds files that no run wrote (the user's own)."""
    if (run / MARKER).exists() or _holds_an_earlier_run(run):
        return
    if run.exists():
        entries = sorted(p.name for p in run.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            raise ValueError(
                f"--output {str(run)!r} holds files that no training run wrote ({shown}): a run writes only into "
                "a new or empty folder, or continues its own; choose another --output"
            )
    run.mkdir(parents=True, exist_ok=True)
    (run / MARKER).write_text(json.dumps({"written_by": "isvs_triton training", "created": time.time()}) + "\n")


def _holds_an_earlier_run(run: Path) -> bool:
    """A run written before the marker existed: a readable run.json beside its model, or Accelerate checkpoints."""
    from ..smoothing import RunInfo

    if (run / "model.safetensors").is_file() and (run / "run.json").is_file():
        try:
            RunInfo.read(run / "run.json")
            return True
        except ValueError:
            return False
    checkpoints = sorted((run / "checkpoints").glob("step_*")) if (run / "checkpoints").is_dir() else []
    return (run / "args.yaml").is_file() and any(any(c.glob("random_states_*.pkl")) for c in checkpoints)


class Lock:
    """``run / LOCK`` held by this process until ``release``; ``Lock(run)`` refuses when another live process
    holds it."""

    def __init__(self, run: Path):
        self.path = run / LOCK
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):  # a stale lock is removed once, then taken like a free one
            if self._create():
                return
            other = _read(self.path)
            if not _is_stale(other):
                raise ValueError(_held_message(run, other))
            self.path.unlink(missing_ok=True)
        raise ValueError(f"{self.path} could not be taken: another training may be starting in {run}")

    def _create(self) -> bool:
        # the holder is written to a temporary file and linked into place: the lock appears complete or not at all
        temporary = self.path.with_name(f"{LOCK}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.holder) + "\n")
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def release(self) -> None:
        if _read(self.path) == self.holder:
            self.path.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # removed meanwhile, or not a lock this module wrote
    return holder if isinstance(holder, dict) else None


def _is_stale(holder: dict | None) -> bool:
    """Whether the lock's process is gone: only decidable for a process of this host."""
    if holder is None or holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, run by another user
        return False
    return False


def _held_message(run: Path, holder: dict | None) -> str:
    if holder is None:
        who = "a holder it does not name"
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
        who = f"process {holder.get('pid')} on host {holder.get('host')!r} (since {started})"
    return (
        f"--output {str(run)!r} is being written by another training: {who} holds {run / LOCK}. Wait for it, or "
        f"choose another --output; if that training is no longer running, delete {run / LOCK}"
    )
