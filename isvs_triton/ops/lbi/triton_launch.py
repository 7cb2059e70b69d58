"""Launch configurations of the Triton kernels: the fallback, and the tuned ones ``tools/autotune.py`` writes per GPU
model into ``ops/configs/<gpu>.json`` (data, not code; ``ISVS_CONFIG_DIR`` points elsewhere, docs/envs.md)."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import torch

# Launch configuration when no tuned one is known: 16 x 32 = 512 pixels per program, 4 warps.
DEFAULT_LAUNCH = {"BLOCK_H": 16, "BLOCK_W": 32, "num_warps": 4}
BLOCK = (DEFAULT_LAUNCH["BLOCK_H"], DEFAULT_LAUNCH["BLOCK_W"])
# tools/autotune.py writes <gpu name>.json here; ISVS_CONFIG_DIR points elsewhere (docs/envs in README)
CONFIG_DIR = Path(os.environ.get("ISVS_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


def config_key(height: int, width: int, joint: bool, momentum: bool) -> str:
    """Key of a tuned launch configuration: image size and the kernel's compile-time flags, never the batch."""
    return f"{height}x{width}:{'joint' if joint else 'independent'}:{'momentum' if momentum else 'plain'}"


def config_file(device_name: str) -> Path:
    return CONFIG_DIR / (re.sub(r"[^A-Za-z0-9]+", "_", device_name).strip("_") + ".json")


@functools.cache
def tuned_configs(device_name: str) -> dict:
    """The tuned launch configurations of one GPU model ({} when it has not been tuned)."""
    path = config_file(device_name)
    return json.loads(path.read_text()).get("lbi_step", {}) if path.exists() else {}


def launch_config(height: int, width: int, joint: bool, momentum: bool, device: torch.device) -> dict:
    if device.type != "cuda":
        return DEFAULT_LAUNCH
    tuned = tuned_configs(torch.cuda.get_device_name(device))
    return tuned.get(config_key(height, width, joint, momentum), DEFAULT_LAUNCH)
