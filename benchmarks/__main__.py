"""`make bench`: run every benchmark, print a table, write bench-results/*.json.

    python -m benchmarks [--only parse|backup|repair|scale|share] [--large] [--clusters 20] [--no-rss]

By default: the parse benchmark, the backup benchmark on the issue's tree (280 files, ~290 MB, one
file of 250 MB: ours in `airflow dags test` vs restic vs the manual method, plus a 1 GB file's
peak RSS) and the repair benchmark. `--large` uses the ~3 GB realistic cluster instead;
`--clusters N` adds a run backing up N demo-size clusters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import backup_bench, parse_bench, repair_bench, scale_bench, share_bench

RESULTS = Path(__file__).resolve().parent.parent / "bench-results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["parse", "backup", "repair", "scale", "share"])
    parser.add_argument("--large", action="store_true", help="the ~3 GB realistic cluster instead of ~290 MB")
    parser.add_argument("--clusters", type=int, default=0, help="also back up this many clusters in one run")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1 GB file's peak-RSS run")
    opts = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    print(f"load: {os.getloadavg()} on {os.cpu_count()} cores")
    benches = [("parse", parse_bench.run), ("backup", lambda: backup_bench.run(opts.large, not opts.no_rss)),
               ("repair", repair_bench.run)]
    benches.append(("share", lambda: share_bench.run(1024)))  # the share bundle of a 1 GB tree vs tar czf
    if opts.clusters or opts.only == "scale":
        benches.append(("scale", lambda: scale_bench.run(opts.clusters or 20)))
    for name, run in benches:
        if opts.only and opts.only != name:
            continue
        print(f"== {name}")
        result = run()
        result["load_average"] = os.getloadavg()
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(f"wrote {RESULTS / f'{name}.json'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
