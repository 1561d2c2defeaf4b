"""deploy/rbac.yaml against the pipelines: every pipeline runs with the shipped Role enforced by the
simulator, nothing it does is refused, and every verb the Role grants is used by some pipeline."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubecost_sim.rbac import RbacFileError, RoleAuthorizer, request_attributes
from kubecost_sim.testing import SimulatorError

from tests.dags.dag_loading import load_dag
from tests.kubecost_etl.repair import harness
from tests.kubecost_etl.repair.harness import CLUSTER_ID

repair_cluster_factory = harness.repair_cluster_factory  # fixture

REPO = Path(__file__).resolve().parents[2]
ROLE_FILE = REPO / "deploy" / "rbac.yaml"
SERVICE_ACCOUNT_USER = "system:serviceaccount:kubecost:kubecost-etl"


def shipped_documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d]


def role_without(documents: list[dict], resource: str, verb: str) -> list[dict]:
    changed = copy.deepcopy(documents)
    role = next(d for d in changed if d["kind"] == "Role")
    for rule in role["rules"]:
        if resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    role["rules"] = [r for r in role["rules"] if r["verbs"]]
    return changed


def triples(entries: list[dict]) -> set[tuple[str, str, str]]:
    return {(e["apiGroup"], e["resource"], e["verb"]) for e in entries}


# ---------------------------------------------------------------------- the file itself


def test_the_role_is_namespaced_bound_to_its_service_account_and_grants_no_wildcards():
    documents = shipped_documents()
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding"]
    assert {d["metadata"]["namespace"] for d in documents} == {"kubecost"}
    role = documents[1]
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "nonResourceURLs" not in rule
        assert not {"delete", "deletecollection", "create", "update", "watch"} & set(rule["verbs"]) or rule[
            "resources"
        ] == ["pods/exec"], rule  # the only write besides patches is exec
    authorizer = RoleAuthorizer.from_documents(documents)
    assert authorizer.user == SERVICE_ACCOUNT_USER and authorizer.namespace == "kubecost"


def test_request_attributes_follow_the_api_servers_rules():
    assert request_attributes(
        "GET", "/api/v1/namespaces/kubecost/pods", {"labelSelector": "app=x"}
    ) == request_attributes("GET", "/api/v1/namespaces/kubecost/pods", {})
    listing = request_attributes("GET", "/api/v1/namespaces/kubecost/pods", {})
    assert (listing.verb, listing.resource, listing.namespace, listing.name) == (
        "list",
        "pods",
        "kubecost",
        "",
    )
    watch = request_attributes("GET", "/api/v1/namespaces/kubecost/pods", {"watch": "true"})
    assert watch.verb == "watch"
    exec_ = request_attributes("POST", "/api/v1/namespaces/kubecost/pods/p1/exec", {})
    assert (exec_.verb, exec_.qualified_resource, exec_.name) == ("create", "pods/exec", "p1")
    proxy = request_attributes(
        "GET",
        "/api/v1/namespaces/kubecost/services/kubecost-cost-analyzer:9090/proxy/model/etl/asset/repair",
        {},
    )
    assert (proxy.verb, proxy.qualified_resource, proxy.name) == (
        "get",
        "services/proxy",
        "kubecost-cost-analyzer:9090",
    )
    patch = request_attributes(
        "PATCH", "/apis/apps/v1/namespaces/kubecost/deployments/kubecost-cost-analyzer", {}
    )
    assert (patch.verb, patch.api_group, patch.resource) == ("patch", "apps", "deployments")
    everywhere = request_attributes("GET", "/api/v1/pods", {})
    assert (everywhere.verb, everywhere.namespace) == ("list", "")
    assert request_attributes("GET", "/apis/apps/v1", {}).resource is None  # discovery


def test_what_the_role_refuses_gets_the_api_servers_403_and_is_recorded():
    from kubecost_sim.apimachinery import ApiError

    authorizer = RoleAuthorizer.from_documents(shipped_documents())
    user = f'User "{SERVICE_ACCOUNT_USER}"'
    cases = [
        ("DELETE", "/api/v1/namespaces/kubecost/pods/p1",
         f'pods "p1" is forbidden: {user} cannot delete resource "pods" in API group "" '
         'in the namespace "kubecost"'),
        ("GET", "/api/v1/pods",
         f'pods is forbidden: {user} cannot list resource "pods" in API group "" at the cluster scope'),
        ("GET", "/api/v1/namespaces/default/pods",
         f'pods is forbidden: {user} cannot list resource "pods" in API group "" in the namespace "default"'),
        ("GET", "/api/v1/namespaces/kubecost/services/kubecost-grafana:80/proxy/",
         f'services "kubecost-grafana:80" is forbidden: {user} cannot get resource "services/proxy" '
         'in API group "" in the namespace "kubecost"'),
        ("PATCH", "/apis/apps/v1/namespaces/kubecost/statefulsets/x",
         f'statefulsets.apps "x" is forbidden: {user} cannot patch resource "statefulsets" '
         'in API group "apps" in the namespace "kubecost"'),
        ("GET", "/metrics", f'forbidden: {user} cannot get path "/metrics"'),
    ]  # fmt: skip
    for method, path, message in cases:
        with pytest.raises(ApiError) as refused:
            authorizer.check(method, path, {})
        assert refused.value.code == 403
        body = refused.value.body
        assert (body["kind"], body["status"], body["reason"]) == ("Status", "Failure", "Forbidden")
        assert body["message"] == message
    authorizer.check("GET", "/apis/apps/v1", {})  # discovery is everyone's
    authorizer.check("GET", "/api/v1/namespaces/kubecost/pods/p1/exec", {}, websocket=True)
    used = triples(authorizer.report()["used"])
    assert used == {("", "pods/exec", "get"), ("", "pods/exec", "create")}  # a WebSocket exec needs both
    assert len(authorizer.report()["denied"]) == len(cases)

    without_create = RoleAuthorizer.from_documents(role_without(shipped_documents(), "pods/exec", "create"))
    with pytest.raises(ApiError, match='cannot create resource "pods/exec"'):
        without_create.check("GET", "/api/v1/namespaces/kubecost/pods/p1/exec", {}, websocket=True)


def test_a_role_file_the_simulator_cannot_enforce_is_refused_clearly(tmp_path):
    cluster_role = [{"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": []}]
    with pytest.raises(RbacFileError, match="ClusterRole"):
        RoleAuthorizer.from_documents(cluster_role)
    other = shipped_documents()
    other[2]["roleRef"]["name"] = "someone-else"
    with pytest.raises(RbacFileError, match="does not refer to Role 'kubecost-etl'"):
        RoleAuthorizer.from_documents(other)
    broken = tmp_path / "role.yaml"
    broken.write_text("kind: Role\nmetadata: {name: r, namespace: kubecost}\nrules: [{verbs: [get]}]\n")
    with pytest.raises(RbacFileError, match=r"rules\[0\] needs apiGroups, resources and verbs"):
        RoleAuthorizer.from_file(broken)


def test_the_simulator_does_not_start_with_a_role_it_cannot_enforce(tmp_path, simulator):
    broken = tmp_path / "role.yaml"
    broken.write_text(yaml.safe_dump({"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": []}))
    with pytest.raises(SimulatorError, match="ClusterRole"):
        simulator(rbac_role=broken, startup_timeout=60)


# ------------------------------------------------------------------- the pipelines under it


def _damage(etl: Path) -> None:
    files = sorted(p for p in etl.rglob("*") if p.is_file())
    files[0].unlink()
    files[1].write_bytes(b"BGST damaged")


def _states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


@pytest.mark.slow
def test_every_pipeline_runs_under_the_shipped_role_and_uses_every_verb_it_grants(
    airflow_db, repair_cluster_factory
):
    # no tar in cost-model: the pipelines add a debug container (pods/ephemeralcontainers patch)
    cluster = repair_cluster_factory(no_tar=True, rbac_role=ROLE_FILE)
    sim = cluster.sim
    used_by: dict[str, set] = {}

    def run(name: str, dag_id: str, **options):
        before = counts()
        dag_run = load_dag(dag_id, **options).test(run_conf=run_conf.get(name))
        assert dag_run.state == "success", _states(dag_run)
        used_by[name] = {key for key, count in counts().items() if count > before.get(key, 0)}
        return dag_run

    def counts() -> dict:
        return {(e["apiGroup"], e["resource"], e["verb"]): e["count"] for e in sim.rbac_report()["used"]}

    run_conf = {
        "repair": {"cluster": CLUSTER_ID, "window": "2d", "profile": "v2"},
        "restore": {"cluster": CLUSTER_ID},
    }
    run("backup", "kubecost_etl_backup", retries=0)
    sim.set_faults(repair_seconds_per_day=1.0)  # the repair steps take seconds: the sensors defer
    run("repair", "kubecost_etl_repair", retry_delay=timedelta(0))
    sim.reset_faults()
    _damage(sim.etl_dir)
    restore = run("restore", "kubecost_etl_restore", retries=0)
    assert _states(restore)[("restart", -1)] == "success"

    report = sim.rbac_report()
    assert report["role"] == "kubecost-etl" and report["user"] == SERVICE_ACCOUNT_USER
    assert report["denied"] == []  # no pipeline needs what the Role lacks
    granted, used = triples(report["granted"]), triples(report["used"])
    unused = granted - used
    assert not unused, f"the Role grants what no pipeline uses: {sorted(unused)}; used: {used_by}"
    assert used <= granted
    assert ("", "services/proxy", "get") in used_by["repair"]  # the repair calls and Prometheus' retention
    assert ("", "pods/log", "get") in used_by["repair"]  # the log watch
    assert ("", "pods/ephemeralcontainers", "patch") in used_by["backup"]
    assert ("apps", "deployments", "patch") in used_by["restore"]  # the rollout restart


@pytest.mark.slow
def test_a_role_missing_a_verb_fails_the_pipeline_with_the_api_servers_403(tmp_path, repair_cluster_factory):
    from kubecost_etl.airflow.stages.backup import run_backup

    role = tmp_path / "role-without-exec-create.yaml"
    role.write_text(yaml.safe_dump_all(role_without(shipped_documents(), "pods/exec", "create")))
    cluster = repair_cluster_factory(rbac_role=role)

    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:  # no retry can fix a Role: refused, not retried
        run_backup(CLUSTER_ID)
    assert "refused (not retried)" in str(failed.value)
    assert "the API server answered 403 Forbidden" in str(failed.value)
    assert (
        'is forbidden: User "system:serviceaccount:kubecost:kubecost-etl" cannot create resource "pods/exec" '
        'in API group "" in the namespace "kubecost"'
    ) in str(failed.value)
    denied = cluster.sim.rbac_report()["denied"]
    assert [(d["resource"], d["verb"]) for d in denied] == [("pods/exec", "create")]
    assert not (cluster.backup_dir / "kubecost-etl-backup" / CLUSTER_ID / "snapshots").exists()
