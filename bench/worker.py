"""Runs one scenario x client in this (child) process.

``python -m bench.worker '{"scenario": ..., "client": ..., "params": {...}}'``
prints one JSON line: ``{"ok": true, "measure": {...}}`` or
``{"ok": false, "error": "..."}``. A process per run keeps the CPU time and
peak RSS of each client its own, and no client's imports or garbage weigh on
another's numbers.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback

import bench.micro  # noqa: F401  (registers the S4 functions)
from bench.clients import REGISTRY, Params, preload


def main() -> int:
    job = json.loads(sys.argv[1])
    fn = REGISTRY[(job["scenario"], job["client"])]
    try:
        preload(job["client"])  # imports are not part of any measurement
        measure = fn(Params(**job["params"]))
    except BaseException as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(json.dumps({"ok": False, "error": detail, "trace": traceback.format_exc()}))
        return 1
    print(json.dumps({"ok": True, "measure": dataclasses.asdict(measure)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
