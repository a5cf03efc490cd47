"""How long each code location takes to load: importing its module and building its Definitions, in
fresh processes (as a code server or a run worker does), median of N.

    .venv/bin/python -m benchmarks.load_time [--runs 5]

Prints wall and CPU seconds: on a shared machine the CPU time of the process is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

LOCATIONS = {
    "aptrinsic_dagster": "aptrinsic_dagster.definitions",
    "aptrinsic_marts": "aptrinsic_dagster.marts_definitions",
}

# Runs in the fresh process: the module's import, then its Definitions resolved as Dagster does on load.
_PROBE = """
import importlib, json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
module = importlib.import_module(sys.argv[1])
imported = (time.perf_counter() - wall, time.process_time() - cpu)
defs = module.defs()
defs.resolve_asset_graph(); defs.resolve_all_job_defs()
print(json.dumps({"import_wall": imported[0], "import_cpu": imported[1],
                  "total_wall": time.perf_counter() - wall, "total_cpu": time.process_time() - cpu}))
"""


def measure(module: str, runs: int) -> dict[str, float]:
    samples = [
        json.loads(
            subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(runs)
    ]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'location':<20} {'import wall s':>13} {'import CPU s':>12} {'total wall s':>12} {'total CPU s':>11}")
    for name, module in LOCATIONS.items():
        m = measure(module, args.runs)
        figures = (m["import_wall"], m["import_cpu"], m["total_wall"], m["total_cpu"])
        print(f"{name:<20} {figures[0]:>13.2f} {figures[1]:>12.2f} {figures[2]:>12.2f} {figures[3]:>11.2f}")


if __name__ == "__main__":
    main()
