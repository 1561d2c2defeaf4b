"""`make bench`: run every benchmark, print a table, write bench-results/*.json.

    python -m benchmarks [--only parse|backup|repair] [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import backup_bench, parse_bench, repair_bench

RESULTS = Path(__file__).resolve().parent.parent / "bench-results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["parse", "backup", "repair"])
    parser.add_argument("--size-mb", type=int, default=1024, help="ETL tree size for the backup benchmark")
    opts = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    benches = (("parse", parse_bench.run), ("backup", lambda: backup_bench.run(opts.size_mb)),
               ("repair", repair_bench.run))
    for name, run in benches:
        if opts.only and opts.only != name:
            continue
        result = run()
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(f"wrote {RESULTS / f'{name}.json'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
