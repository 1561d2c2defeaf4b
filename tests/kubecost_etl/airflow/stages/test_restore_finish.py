"""The restore's teardown prints how to put the previous data back whatever fails, and the values
crossing task boundaries survive XCom's JSON."""

from __future__ import annotations

import json

import pytest
from kubecost_etl.airflow.stages import restore as stages
from kubecost_etl.kube.pods import PodRef
from kubecost_etl.kube.target import ExecTarget
from kubecost_etl.restore.context import RestoreContext
from kubecost_etl.restore.post_check import PostCheckReport
from kubecost_etl.restore.swap import SwapResult

POD = PodRef("kubecost", "kubecost-cost-analyzer-abc", "uid-1", "cost-model", "2026-01-01T00:00:00+00:00")
CTX = RestoreContext(
    cluster_id="cluster-a",
    snapshot_id="20260101T000000Z-abcdef",
    manifest_sha256="0" * 64,
    mode="replace",
    restart=True,
    dry_run=False,
    token="20260101T000000Z-abcdef-12345678",
    target=ExecTarget(POD, "kubecost-etl-1a2b3c", "/proc/1/root/var/configs/db/etl", True),
    files=3,
    bytes=300,
    leftovers=("/var/configs/db/etl.restore-old",),
)


def test_values_crossing_tasks_round_trip_through_json():
    assert RestoreContext.from_dict(json.loads(json.dumps(CTX.as_dict()))) == CTX
    swap = SwapResult(
        "swapped", POD.as_dict(), swapped_at=1_767_225_600, previous="/x.previous-t", skipped=("a",)
    )
    assert SwapResult.from_dict(json.loads(json.dumps(swap.as_dict()))) == swap
    report = PostCheckReport(True, 3, True, 0, 1, 0, POD.as_dict(), swapped_at=1_767_225_600)
    assert PostCheckReport.from_dict(json.loads(json.dumps(report.as_dict()))) == report
    with pytest.raises(AttributeError):
        CTX.mode = "fill-missing"  # frozen


@pytest.mark.parametrize("checked", [None, {"ok": True}], ids=["after-a-failure", "after-a-pass"])
def test_finish_names_the_manual_rollback_whatever_fails(tmp_path, monkeypatch, checked):
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(tmp_path / "gone.yaml"))  # even the config is unreadable
    with pytest.raises(RuntimeError) as failed:
        stages.finish(CTX.as_dict(), checked, None)
    message = str(failed.value)
    dirs = CTX.dirs
    assert "by hand" in message and f"mv -T {dirs.previous} {dirs.live}" in message
    assert f"kubectl exec -n kubecost {POD.name} -c kubecost-etl-1a2b3c" in message
