"""Merge a ``bench ranking`` run of some methods into an earlier run of the same cell.

    python scripts/merge_ranking_runs.py NEW.json BASE.json OUT.json

The methods of NEW replace or join those of BASE (same table, weak labels, labels and seeds are
checked); the config is NEW's, with BASE's command kept under ``baselines_command``. Used when
only the ``nasrank`` default changed: the other methods do not depend on it and are seeded, so
their per-seed values are the ones a full rerun would give.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def merge(new: dict, base: dict) -> dict:
    """``base`` with ``new``'s methods and config; raises ValueError when the two runs differ in their cell."""
    for key in ("target", "weak", "labels", "seeds", "first_seed", "rows"):
        if new["config"].get(key) != base["config"].get(key):
            raise ValueError(f"the runs differ in {key!r}: {new['config'].get(key)!r} vs {base['config'].get(key)!r}")
    if Path(new["config"]["table"]).name != Path(base["config"]["table"]).name:
        raise ValueError("the runs read different tables")
    methods = {**base["methods"], **new["methods"]}
    # a base that is itself a merge keeps the command its baselines came from
    baselines = base["config"].get("baselines_command", base["config"]["command"])
    config = {**new["config"], "methods": list(methods), "baselines_command": baselines}
    return {"config": config, "methods": methods}


def main(argv: list[str]) -> int:
    new, base, out = (Path(a) for a in argv)
    merged = merge(json.loads(new.read_text()), json.loads(base.read_text()))
    out.write_text(json.dumps(merged, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
