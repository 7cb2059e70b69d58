"""The measurement tools (run as scripts: ``python tools/bench.py``); tests import them as ``tools.bench``."""
