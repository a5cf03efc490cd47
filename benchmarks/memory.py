"""Peak RSS of this project's scenario-1 run (snapshots, then 30 days of events, through Dagster) at
several scales, side by side: the memory a run needs should not grow with the data.

    .venv/bin/python -m benchmarks.memory [--scales 0.25 0.5 1.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.bench import _expected, _fresh, _run_path, _sandbox

# The dlt phases worth a column (normalize only rewrites files, below both neighbours).
PHASES = ("snapshots extract", "snapshots load", "events extract", "events load")


def measure(scales: list[float]) -> dict[float, dict]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="aptrinsic-memory-") as tmp:
        for scale in scales:
            proc, base_url = _sandbox(int(100_000 * scale), int(1_000_000 * scale), "--rate-cap", "0")
            try:
                expected = _expected(base_url, events_only=False)
                result = _run_path("project", base_url, _fresh(tmp, f"scale-{scale}"))
            finally:
                proc.terminate()
            if result["total_rows"] != expected:
                raise SystemExit(f"scale {scale}: loaded {result['total_rows']} rows, the sandbox holds {expected}")
            results[scale] = result
    return results


def table(results: dict[float, dict]) -> str:
    smallest = results[min(results)]["peak_rss_mb"]
    phases = [p for p in PHASES if p in results[min(results)]["phase_peaks_mb"]]
    lines = [
        f"{'scale':<8}{'rows':>12}{'wall s':>9}{'peak RSS MB':>13}{'vs smallest':>13}"
        + "".join(f"{p:>19}" for p in phases)
    ]
    for scale, res in results.items():
        lines.append(
            f"{scale:<8}{res['total_rows']:>12,}{res['wall']:>9.1f}{res['peak_rss_mb']:>13.0f}"
            f"{res['peak_rss_mb'] / smallest:>12.2f}x" + "".join(f"{res['phase_peaks_mb'][p]:>19.0f}" for p in phases)
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = measure(args.scales)
    print("memory: this project's scenario-1 run at several scales; the peak within each dlt phase of its two runs")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
