"""Run one DAG with ``dag.test()`` in this process and SIGKILL it in the middle of a chosen stage.

    python -m tests.dags.fault_runner <dag_id> '<run conf JSON>' <kill point> <marker file>

The fault matrix's SIGKILL cells start this in a child process with its own AIRFLOW_HOME (a copy of
the test session's migrated metadata DB) and the test's KUBECOST_ETL_CONFIG. ``dag.test()`` runs each
task in this process, so killing it is what a worker's task process dying with SIGKILL (the OOM
killer, a node lost) looks like to the cluster and the bucket: nothing of the task's own clean-up runs.

Kill points (the hook itself detects that the stage is in flight; no timing):

- ``stream-multipart``: a multipart upload of the backup's stream has a part stored, the object is
  not complete (S3 parts are made 5 MB, the smallest S3 allows, so a ~6 MB file is multipart);
- ``swap-first-rename``: the restore swap's first rename (live -> previous) ran, the second not yet;
- ``after:<module>:<function>``: the stage function did all its work and returned, before Airflow
  recorded the result (``module`` is ``backup``, ``restore`` or ``repair`` under
  ``kubecost_etl.airflow.stages``).

Right before the kill the marker file gets the kill point's name, so the test knows it was reached.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path


def _die(marker: Path, what: str) -> None:
    marker.write_text(what)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, marker: Path) -> None:
    if point == "stream-multipart":
        from kubecost_etl.storage import s3
        from kubecost_etl.storage._shared import S3_MIN_PART_SIZE

        real_init = s3.S3Store.__init__

        def small_parts(self, *args, **kwargs):
            kwargs["part_size"] = S3_MIN_PART_SIZE
            real_init(self, *args, **kwargs)

        real_add = s3._S3MultipartUpload.add

        def add_then_die(self, part: bytes) -> None:
            real_add(self, part)
            _die(marker, f"{point}: part {len(self.parts)} of {self.name} stored")

        s3.S3Store.__init__ = small_parts
        s3._S3MultipartUpload.add = add_then_die
    elif point == "swap-first-rename":
        from kubecost_etl.restore import pod_dirs

        real_rename = pod_dirs.rename

        def rename_then_die(core_api, target, source, destination, *args, **kwargs):
            result = real_rename(core_api, target, source, destination, *args, **kwargs)
            if ".previous-" in destination:
                _die(marker, f"{point}: {source} -> {destination} ran")
            return result

        pod_dirs.rename = rename_then_die
    elif point.startswith("after:"):
        _, module_name, function = point.split(":")
        module = importlib.import_module(f"kubecost_etl.airflow.stages.{module_name}")
        real = getattr(module, function)

        def run_then_die(*args, **kwargs):
            real(*args, **kwargs)
            _die(marker, f"{point}: returned")

        setattr(module, function, run_then_die)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(argv: list[str]) -> int:
    dag_id, conf, point, marker = argv
    arm(point, Path(marker))
    from tests.dags.dag_loading import load_dag_retrying

    run = load_dag_retrying(dag_id).test(run_conf=json.loads(conf))
    print(json.dumps({"run_state": str(run.state)}))
    return 3  # the kill point was never reached: the test fails on this exit code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
