"""Peak memory of a whole process tree (a Ray job is many processes: driver, raylet, GCS, workers).

``/usr/bin/time -v`` reports the largest single process only. This samples the sum of the tree's
proportional set sizes (PSS, from ``/proc``: shared pages such as Ray's object store counted once,
split among the processes mapping them) every ``--every`` seconds and prints the peak.

Usage::

    python scripts/peak_memory.py -- ray-nasrank search --out runs/demo   # run and measure
    python scripts/peak_memory.py --pid 1234                               # follow a running job
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return "?"
    words = [p.decode(errors="replace") for p in parts if p]
    # Ray names its workers in argv[0] ("ray::_finalist_trainable"); else the program and first argument
    return " ".join(words[:1] if words and words[0].startswith("ray::") else words[:2])[:80]


def tree_processes(root: int) -> list[tuple[int, str, int]]:
    """``(pid, name, PSS bytes)`` of ``root`` and all its descendants (Linux ``/proc``)."""
    kids, todo, out = _children(), [root], []
    while todo:
        pid = todo.pop()
        out.append((pid, _name(pid), _pss(pid)))
        todo.extend(kids.get(pid, []))
    return out


def tree_pss(root: int) -> int:
    """Sum of PSS (bytes) over ``root`` and all its descendants (Linux ``/proc``)."""
    return sum(p for _, _, p in tree_processes(root))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, default=None, help="follow this running process instead of starting one")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between samples (default 1)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... to run and measure")
    args = ap.parse_args(argv)
    cmd = [c for c in args.command if c != "--"]
    t0 = time.perf_counter()
    if args.pid is not None:
        root, child = args.pid, None
    elif cmd:
        child = subprocess.Popen(cmd)
        root = child.pid
    else:
        ap.error("give --pid or a command after --")
    peak, at_peak = 0, []
    while _alive(root) and (child is None or child.poll() is None):
        procs = tree_processes(root)
        total = sum(p for _, _, p in procs)
        if total > peak:
            peak, at_peak = total, procs
        time.sleep(args.every)
    rc = child.wait() if child is not None else None
    # what held the memory at the peak, largest first (processes under 20 MB summed as "others")
    big = sorted((p for p in at_peak if p[2] >= 20e6), key=lambda p: -p[2])
    breakdown = [{"pid": pid, "process": name, "pss_mb": round(pss / 1e6)} for pid, name, pss in big]
    small = [p for p in at_peak if p[2] < 20e6]
    breakdown.append({"process": f"{len(small)} others", "pss_mb": round(sum(p[2] for p in small) / 1e6)})
    print(json.dumps({"peak_tree_pss_gb": round(peak / 1e9, 3), "wall_s": round(time.perf_counter() - t0, 1),
                      "returncode": rc, "command": cmd or f"pid {args.pid}", "at_peak": breakdown}, indent=1))
    return 0 if rc in (None, 0) else int(rc)


if __name__ == "__main__":
    sys.exit(main())
