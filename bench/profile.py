"""py-spy on a running proxy under load: a flame graph and a text summary of where the time goes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

__all__ = ["profile_under_load", "summarise"]

_PY_SPY = str(Path(sys.executable).parent / "py-spy")
_TOP = 20


def _frame_key(frame: str) -> str:
    # "handle (authproxy/proxy/server.py:120)" -> "handle (authproxy/proxy/server.py)": lines split hot spots
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(collapsed: str) -> list[str]:
    """Top functions by own samples and by inclusive samples, from py-spy's collapsed (raw) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        # --subprocesses puts a "process N:…" root frame on every stack: not a function, left out.
        frames = [_frame_key(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += count
        for key in set(frames):
            inclusive[key] += count
    if total == 0:
        return ["(no samples)"]
    lines = [f"{total} samples", "", "own time (top):"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in own.most_common(_TOP)]
    lines += ["", "inclusive time (top):"]
    lines += [f"  {n / total:6.1%}  {k}" for k, n in inclusive.most_common(_TOP)]
    return lines


def _record(pid: int, seconds: int, fmt: str, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        _PY_SPY,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--subprocesses",
        "--nonblocking",
        "--format",
        fmt,
        "-o",
        str(out),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def profile_under_load(pid: int, seconds: int, load: Callable[[], object], out_dir: Path) -> list[str]:
    """Run `load` twice while py-spy records `pid`: once to a flame graph, once to collapsed stacks."""
    svg, raw = out_dir / "profile.svg", out_dir / "profile.txt"
    for fmt, out in (("flamegraph", svg), ("raw", raw)):
        spy = _record(pid, seconds, fmt, out)
        load()
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            return [f"py-spy failed ({spy.returncode}): {err.decode(errors='replace').strip()[-300:]}"]
    return [f"flame graph: {svg}", *summarise(raw.read_text())]
