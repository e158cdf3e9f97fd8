"""What every `arl` command shares: the console for status lines, the default run directory, the cache directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autoresearch_rl.env.data import default_cache_dir

console = Console(stderr=True, highlight=False, soft_wrap=True)
DEFAULT_RUN_DIR = Path("runs/default")


def _cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()
