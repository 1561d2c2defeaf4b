"""`make bench`: run every benchmark, print a table, write bench-results/*.json.

    python -m benchmarks [--only parse|backup|repair|scale|share] [--large] [--clusters 20] [--no-rss]
                         [--executor local|dags-test] [--parallelism 2,4,8] [--scale-db postgres|sqlite]

By default: the parse benchmark, the backup benchmark on the issue's tree (280 files, ~290 MB, one
file of 250 MB: ours in `airflow dags test` vs restic vs the manual method, plus a 1 GB file's
peak RSS) and the repair benchmark. `--large` uses the ~3 GB realistic cluster instead;
`--clusters N` adds the scale benchmark: backup runs over 1, N/4, N/2 and N demo-size clusters under
LocalExecutor (a real API server, scheduler and DAG processor), once per `--parallelism` value;
`--executor dags-test` runs 1 and N clusters through `airflow dags test` instead (one process, tasks one
after another). `--only scale` without `--clusters` uses 4 clusters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import backup_bench, parse_bench, repair_bench, scale_bench, scale_local, share_bench

RESULTS = Path(__file__).resolve().parent.parent / "bench-results"
DEFAULT_SCALE_CLUSTERS = (
    4  # 1, 2, 4 clusters x 3 parallelisms: about 10 minutes (2 loaded cores: 8 min for 2)
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["parse", "backup", "repair", "scale", "share"])
    parser.add_argument("--large", action="store_true", help="the ~3 GB realistic cluster instead of ~290 MB")
    parser.add_argument("--clusters", type=int, default=0, help="also back up this many clusters in one run")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1 GB file's peak-RSS run")
    parser.add_argument(
        "--executor",
        choices=["local", "dags-test"],
        default="local",
        help="scale: LocalExecutor deployment (default) or `airflow dags test`",
    )
    parser.add_argument(
        "--parallelism",
        default="2,4,8",
        help="scale, LocalExecutor: AIRFLOW__CORE__PARALLELISM values, comma-separated",
    )
    parser.add_argument(
        "--scale-db",
        choices=["postgres", "sqlite"],
        help="scale, LocalExecutor: metadata DB (default PostgreSQL when installed)",
    )
    opts = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    print(f"load: {os.getloadavg()} on {os.cpu_count()} cores")
    benches = [
        ("parse", parse_bench.run),
        ("backup", lambda: backup_bench.run(opts.large, not opts.no_rss)),
        ("repair", repair_bench.run),
    ]
    benches.append(("share", lambda: share_bench.run(1024)))  # the share bundle of a 1 GB tree vs tar czf
    if opts.clusters or opts.only == "scale":
        clusters = opts.clusters or DEFAULT_SCALE_CLUSTERS
        if opts.executor == "local":
            parallelisms = tuple(int(p) for p in opts.parallelism.split(","))
            benches.append(("scale", lambda: scale_local.run(clusters, parallelisms, opts.scale_db)))
        else:
            benches.append(("scale", lambda: scale_bench.run(clusters)))
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
