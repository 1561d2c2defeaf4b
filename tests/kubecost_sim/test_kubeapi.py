"""The simulated Kubernetes API on the wire: HTTP JSON, Status errors, logs, WebSocket exec."""

from __future__ import annotations

import json
import queue
import re
import ssl
import threading
import time
from urllib.parse import quote, urlencode

import pytest
import urllib3
import websocket
from kubecost_sim.testing import SimulatorProcess

NS = "/api/v1/namespaces/kubecost"
DEPLOYMENTS = "/apis/apps/v1/namespaces/kubecost/deployments"
SMP = "application/strategic-merge-patch+json"


class Api:
    def __init__(self, sim: SimulatorProcess, token: str | None = "default"):
        self.sim = sim
        self.token = sim.token if token == "default" else token
        self.http = urllib3.PoolManager(ca_certs=sim.ca_cert, cert_reqs="CERT_REQUIRED")

    def request(
        self,
        method: str,
        path: str,
        body=None,
        content_type: str = "application/json",
        headers: dict | None = None,
        **kwargs,
    ):
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        return self.http.request(method, self.sim.api_url + path, body=data, headers=all_headers, **kwargs)

    def get(self, path: str, **kwargs) -> tuple[int, dict | str]:
        response = self.request("GET", path, **kwargs)
        text = response.data.decode()
        return response.status, json.loads(text) if text.startswith("{") else text

    def open_exec(
        self,
        pod: str,
        command: list[str],
        container: str = "cost-model",
        stdin: bool = False,
        protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io"),
    ) -> websocket.WebSocket:
        query = [("command", part) for part in command] + [
            ("container", container),
            ("stdout", "true"),
            ("stderr", "true"),
            ("stdin", str(stdin).lower()),
        ]
        url = self.sim.api_url.replace("https://", "wss://") + f"{NS}/pods/{pod}/exec?{urlencode(query)}"
        return websocket.create_connection(
            url,
            header=[f"Authorization: Bearer {self.token}"],
            subprotocols=list(protocols),
            sslopt={"ca_certs": self.sim.ca_cert},
            timeout=30,
        )

    def exec(
        self,
        pod: str,
        command: list[str],
        container: str = "cost-model",
        stdin: bytes | None = None,
        protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io"),
    ) -> ExecResult:
        ws = self.open_exec(pod, command, container, stdin is not None, protocols)
        if stdin is not None:
            ws.send_binary(b"\x00" + stdin)
            ws.send_binary(bytes([255, 0]))
        return collect(ws)


def collect(ws: websocket.WebSocket) -> ExecResult:
    """Read an exec's frames until the connection closes."""
    result = ExecResult(ws.subprotocol)
    try:
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=False)
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                result.closed_cleanly = True
                break
            channel, payload = data[0], data[1:]
            if channel == 1:
                result.stdout += payload
            elif channel == 2:
                result.stderr += payload
            elif channel == 3:
                result.status = json.loads(payload)
    finally:
        ws.close()
    return result


class ExecResult:
    def __init__(self, protocol: str):
        self.protocol = protocol
        self.stdout = b""
        self.stderr = b""
        self.status: dict | None = None
        self.closed_cleanly = False


@pytest.fixture
def kube(sim: SimulatorProcess) -> Api:
    return Api(sim)


def pods(kube: Api, selector: str = "", fields: str = "") -> list[str]:
    query = urlencode({k: v for k, v in (("labelSelector", selector), ("fieldSelector", fields)) if v})
    status, body = kube.get(f"{NS}/pods?{query}")
    assert status == 200, body
    return [item["metadata"]["name"] for item in body["items"]]


# --------------------------------------------------------------------- auth, errors


def test_token_is_required(sim: SimulatorProcess):
    for token in (None, "wrong"):
        status, body = Api(sim, token=token).get(f"{NS}/pods")
        assert status == 401
        assert body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    assert sim.state()["namespace"] == "kubecost"  # the admin endpoints need no token


def test_plain_http_mode_and_faults_set_at_startup(simulator, etl_dir):
    faults = {"repair_http_500": ["asset", "allocation"], "exec_cut_times": 2, "repair_seconds_per_day": 0.5}
    sim = simulator(etl_dir, plain_http=True, faults=faults)
    assert sim.api_url.startswith("http://") and sim.ca_cert is None
    status, body = Api(sim).get(f"{NS}/pods")
    assert status == 200 and len(body["items"]) == 2
    assert Api(sim, token="wrong").get(f"{NS}/pods")[0] == 401  # the token is still checked
    assert faults.items() <= sim.faults().items()  # each CLI flag parsed to the switch's type


def test_not_found_is_a_status(kube: Api):
    status, body = kube.get(f"{NS}/pods/nope")
    assert status == 404
    assert (body["message"], body["reason"], body["details"]) == (
        'pods "nope" not found',
        "NotFound",
        {"name": "nope", "kind": "pods"},
    )
    status, body = kube.get(f"{DEPLOYMENTS}/nope")
    assert status == 404 and body["message"] == 'deployments.apps "nope" not found'
    assert kube.get("/api/v1/namespaces/elsewhere")[1]["message"] == 'namespaces "elsewhere" not found'
    status, body = kube.get("/apis/batch/v1/jobs")
    assert status == 404 and body["message"] == "the server could not find the requested resource"


def test_discovery(kube: Api):
    assert kube.get("/version")[1]["gitVersion"].startswith("v1.")
    assert kube.get("/api")[1]["versions"] == ["v1"]
    core = {r["name"] for r in kube.get("/api/v1")[1]["resources"]}
    assert {
        "pods",
        "pods/log",
        "pods/exec",
        "pods/ephemeralcontainers",
        "services",
        "services/proxy",
        "namespaces",
    } <= core
    assert kube.get("/apis")[1]["groups"][0]["preferredVersion"]["groupVersion"] == "apps/v1"
    assert "deployments" in {r["name"] for r in kube.get("/apis/apps/v1")[1]["resources"]}


# ----------------------------------------------------------------------------- pods


def test_pods_frontend_decoy_first_and_selectors(kube: Api, sim: SimulatorProcess):
    cost_model = sim.cost_model_pod()
    everything = pods(kube)
    assert len(everything) == 2 and everything[1] == cost_model
    assert everything[0].startswith("kubecost-cost-analyzer-frontend-")
    assert pods(kube, "app=cost-analyzer") == everything  # the naive selector: decoy first
    assert pods(kube, "app.kubernetes.io/name==cost-analyzer") == [cost_model]
    assert pods(kube, "app in (cost-analyzer,x),app.kubernetes.io/name notin (cost-analyzer-frontend)") == [
        cost_model
    ]
    assert pods(kube, "app!=cost-analyzer") == []
    assert pods(kube, "pod-template-hash") == everything and pods(kube, "!pod-template-hash") == []
    assert pods(kube, fields=f"metadata.name={cost_model},status.phase=Running") == [cost_model]
    status, body = kube.get(f"{NS}/pods?fieldSelector=spec.hostname%3Dx")
    assert status == 400 and body["message"] == "field label not supported: spec.hostname"

    pod = kube.get(f"{NS}/pods/{cost_model}")[1]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "kubecost"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["cost-model", "cost-analyzer-frontend"]
    assert [p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]] == [9003, 9090]
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/var/configs"
    assert {"type": "Ready", "status": "True"}.items() <= pod["status"]["conditions"][2].items()
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_table_for_kubectl_get(kube: Api):
    status, table = kube.get(f"{NS}/pods", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert [row["cells"][1:4] for row in table["rows"]] == [["1/1", "Running", 0], ["2/2", "Running", 0]]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


# ----------------------------------------------------------------------------- logs


def test_pod_logs_options(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    sim.append_log("2024-01-01T00:00:00Z INF first", "2024-01-01T00:00:01Z INF second")
    path = f"{NS}/pods/{pod}/log?container=cost-model"
    assert kube.get(path)[1] == "2024-01-01T00:00:00Z INF first\n2024-01-01T00:00:01Z INF second\n"
    stamped = kube.get(path + "&timestamps=true")[1].splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z 2024-01-01T00:00:00Z INF first", stamped[0])
    received = stamped[1].split(" ")[0]
    assert kube.get(path + "&sinceTime=" + quote(received[:19] + "Z"))[1].count("\n") in (1, 2)
    assert kube.get(path + "&sinceTime=2999-01-01T00:00:00Z")[1] == ""
    assert kube.get(path + "&sinceSeconds=60")[1].count("\n") == 2
    assert kube.get(path + "&tailLines=1")[1] == "2024-01-01T00:00:01Z INF second\n"
    assert kube.get(path + "&limitBytes=5")[1] == "2024-"
    assert kube.get(f"{NS}/pods/{pod}/log?container=cost-analyzer-frontend")[1] == ""
    status, body = kube.get(f"{NS}/pods/{pod}/log?container=nope")
    assert (status, body["message"]) == (400, f"container nope is not valid for pod {pod}")
    status, body = kube.get(f"{NS}/pods/{pod}/log")
    assert status == 400 and body["message"] == (
        f"a container name must be specified for pod {pod}, "
        "choose one of: [cost-model cost-analyzer-frontend]"
    )
    assert kube.get(path + "&sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z")[0] == 422


def test_log_follow_streams_until_the_pod_is_replaced(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    sim.append_log("before")
    response = kube.request(
        "GET", f"{NS}/pods/{pod}/log?container=cost-model&follow=true", preload_content=False
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def read():
        for line in response:  # urllib3 yields chunks; lines are written one per chunk
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=read, daemon=True).start()
    assert lines.get(timeout=10) == b"before\n"
    sim.append_log("during")
    assert lines.get(timeout=10) == b"during\n"
    sim.restart_pod()
    assert lines.get(timeout=10) == b""  # the stream ended with the container


# ----------------------------------------------------------------------------- exec


def test_exec_v5_stdin_close_stderr_and_exit_code(kube: Api, sim: SimulatorProcess):
    result = kube.exec(sim.cost_model_pod(), ["sh", "-c", "cat; echo done >&2; exit 4"], stdin=b"hello")
    assert result.protocol == "v5.channel.k8s.io"
    assert (result.stdout, result.stderr) == (b"hello", b"done\n")
    assert result.status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c cat; echo done >&2; exit 4], exit code 4",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "4"}]},
    }
    assert result.closed_cleanly


def test_exec_stdin_read_to_the_end_spans_frames(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    files = kube.exec(pod, ["find", "/var/configs/db/etl", "-type", "f"]).stdout.split()[:2]
    sums = kube.exec(pod, ["sha256sum", *(name.decode() for name in files)]).stdout.splitlines(keepends=True)
    ws = kube.open_exec(pod, ["sha256sum", "-c", "-"], stdin=True)
    for line in sums:  # one frame per line: reading the list to its end must not stop at the first
        ws.send_binary(b"\x00" + line)
    ws.send_binary(bytes([255, 0]))
    result = collect(ws)
    assert result.stdout == b"".join(name + b": OK\n" for name in files)
    assert result.status == {"metadata": {}, "status": "Success"}


def test_exec_v4_success_and_missing_binary(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    result = kube.exec(pod, ["ls", "/var/configs/db/etl"], protocols=("v4.channel.k8s.io",))
    assert result.protocol == "v4.channel.k8s.io"
    assert (result.stdout, result.status) == (b"bingen\n", {"metadata": {}, "status": "Success"})
    missing = kube.exec(pod, ["rsync", "-a"])
    assert missing.status["reason"] == "InternalError" and missing.status["code"] == 500
    assert 'exec: "rsync": executable file not found in $PATH: unknown' in missing.status["message"]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        kube.exec(pod, ["ls"], protocols=("base64.channel.k8s.io",))
    assert refused.value.status_code == 400
    with pytest.raises(websocket.WebSocketBadStatusException) as wrong_container:
        kube.exec(pod, ["ls"], container="nope")
    assert wrong_container.value.status_code == 400


def test_exec_cut_fault_drops_the_stream_without_status(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    complete = kube.exec(pod, ["tar", "cf", "-", "-C", "/var/configs/db/etl", "."])
    assert complete.status == {"metadata": {}, "status": "Success"} and len(complete.stdout) > 100_000
    sim.set_faults(exec_cut_after_bytes=100_000, exec_cut_times=2)
    for _ in range(2):
        cut = kube.exec(pod, ["tar", "cf", "-", "-C", "/var/configs/db/etl", "."])
        assert cut.stdout == complete.stdout[:100_000]
        assert cut.status is None and not cut.closed_cleanly
    assert sim.faults()["exec_cut_after_bytes"] is None  # disarmed after two cuts
    assert kube.exec(pod, ["tar", "cf", "-", "-C", "/var/configs/db/etl", "."]).stdout == complete.stdout


def test_lost_status_fault_runs_the_command_then_drops_its_status(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    sim.set_faults(exec_lose_status_pattern=r"^mkdir -p /tmp/lost", exec_lose_status_times=1)
    assert kube.exec(pod, ["mkdir", "-p", "/tmp/other"]).status["status"] == "Success"  # not matching
    lost = kube.exec(pod, ["mkdir", "-p", "/tmp/lost"])
    assert lost.status is None and not lost.closed_cleanly
    assert sim.faults()["exec_lose_status_pattern"] is None  # disarmed after one
    assert kube.exec(pod, ["test", "-d", "/tmp/lost"]).status["status"] == "Success"  # it did run
    sim.set_faults(exec_lose_status_pattern=r"^mkdir -p /tmp/again", exec_lose_status_following=2)
    assert kube.exec(pod, ["mkdir", "-p", "/tmp/again"]).status is None
    assert [kube.exec(pod, ["true"]).status for _ in range(3)] == [
        None,
        None,
        {"metadata": {}, "status": "Success"},
    ]


def test_debug_containers_end_with_their_sleep_or_a_cost_model_restart(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    path = f"{NS}/pods/{pod}/ephemeralcontainers"

    def add(name: str, seconds: str) -> None:
        debug = {
            "name": name,
            "image": "busybox:1.36",
            "targetContainerName": "cost-model",
            "command": ["sleep", seconds],
        }
        patch = [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": debug}]
        first = kube.get(f"{NS}/pods/{pod}")[1]["spec"].get("ephemeralContainers") is None
        body = {"spec": {"ephemeralContainers": [debug]}} if first else patch
        response = kube.request(
            "PATCH", path, body, content_type=SMP if first else "application/json-patch+json"
        )
        assert response.status == 200, response.data

    def states() -> dict:
        return {
            s["name"]: next(iter(s["state"]))
            for s in kube.get(f"{NS}/pods/{pod}")[1]["status"]["ephemeralContainerStatuses"]
        }

    add("short", "0")  # its sleep is already over
    add("long", "3600")
    assert states() == {"short": "terminated", "long": "running"}
    with pytest.raises(websocket.WebSocketBadStatusException) as stopped:
        kube.exec(pod, ["true"], container="short")
    assert stopped.value.status_code == 400
    assert kube.exec(pod, ["true"], container="long").status["status"] == "Success"
    ws = kube.open_exec(pod, ["sleep", "60"], container="long")
    assert sim.end_ephemeral_containers(restart_cost_model=True) == ["long"]
    assert collect(ws).status["details"]["causes"][0]["message"] == "137"
    assert states() == {"short": "terminated", "long": "terminated"}
    cost_model = kube.get(f"{NS}/pods/{pod}")[1]["status"]["containerStatuses"][0]
    assert cost_model["restartCount"] == 1 and "running" in cost_model["state"]


def test_exec_is_killed_when_the_pod_is_replaced(kube: Api, sim: SimulatorProcess):
    ws = kube.open_exec(sim.cost_model_pod(), ["sleep", "60"])
    started = time.monotonic()
    sim.restart_pod()
    result = collect(ws)
    assert result.status["details"]["causes"][0]["message"] == "137"  # SIGKILL, as the kubelet reports
    assert time.monotonic() - started < 30


# --------------------------------------------------------------- ephemeral containers


def test_ephemeral_container_added_running_and_validated(kube: Api, sim: SimulatorProcess):
    pod = sim.cost_model_pod()
    path = f"{NS}/pods/{pod}/ephemeralcontainers"
    debug = {
        "name": "debugger",
        "image": "busybox:1.36",
        "targetContainerName": "cost-model",
        "command": ["sleep", "3600"],
    }
    response = kube.request("PATCH", path, {"spec": {"ephemeralContainers": [debug]}}, content_type=SMP)
    assert response.status == 200
    status = json.loads(response.data)["status"]["ephemeralContainerStatuses"]
    assert status[0]["name"] == "debugger" and "running" in status[0]["state"]
    listing = kube.exec(pod, ["ls", "/proc/1/root/var/configs/db/etl"], container="debugger")
    assert listing.stdout == b"bingen\n"

    duplicate = kube.request(
        "PATCH",
        path,
        [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": debug}],
        content_type="application/json-patch+json",
    )
    body = json.loads(duplicate.data)
    assert duplicate.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == (
        f'Pod "{pod}" is invalid: spec.ephemeralContainers[1].name: Duplicate value: "debugger"'
    )
    changed = kube.request(
        "PATCH", path, {"spec": {"ephemeralContainers": [{**debug, "command": ["sh"]}]}}, content_type=SMP
    )
    assert changed.status == 422 and "may not be changed" in json.loads(changed.data)["message"]
    bad_target = {**debug, "name": "other", "targetContainerName": "nope"}
    wrong = kube.request("PATCH", path, {"spec": {"ephemeralContainers": [bad_target]}}, content_type=SMP)
    assert (
        wrong.status == 422 and 'targetContainerName: Not found: "nope"' in json.loads(wrong.data)["message"]
    )


# ------------------------------------------------------------------ restart, scale


def test_rollout_restart_patch_replaces_the_cost_model_pod(kube: Api, sim: SimulatorProcess):
    old = kube.get(f"{NS}/pods/{sim.cost_model_pod()}")[1]
    sim.append_log("old log line")
    assert (
        kube.exec(old["metadata"]["name"], ["sh", "-c", "echo x > /tmp/scratch"]).status["status"]
        == "Success"
    )
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T00:00:00Z"}}
            }
        }
    }
    response = kube.request("PATCH", f"{DEPLOYMENTS}/kubecost-cost-analyzer", patch, content_type=SMP)
    assert response.status == 200
    deployment = json.loads(response.data)
    assert deployment["metadata"]["generation"] == 2
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    new_name = sim.cost_model_pod()
    assert new_name != old["metadata"]["name"]
    assert kube.get(f"{NS}/pods/{old['metadata']['name']}")[0] == 404
    new = kube.get(f"{NS}/pods/{new_name}")[1]
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["metadata"]["labels"]["pod-template-hash"] != old["metadata"]["labels"]["pod-template-hash"]
    assert new["status"]["startTime"] >= old["status"]["startTime"]
    assert all(c["restartCount"] == 0 for c in new["status"]["containerStatuses"])
    assert kube.get(f"{NS}/pods/{new_name}/log?container=cost-model")[1] == ""
    after = kube.exec(new_name, ["sh", "-c", "ls /tmp; ls /var/configs/db/etl"])
    assert after.stdout == b"bingen\n"  # scratch wiped, ETL data kept
    replicasets = kube.get("/apis/apps/v1/namespaces/kubecost/replicasets")[1]["items"]
    assert sorted(r["spec"]["replicas"] for r in replicasets) == [0, 1, 1]
    assert sim.state()["restarts"] == 1


def test_scale_to_zero_and_back_and_delete_pod(kube: Api, sim: SimulatorProcess):
    scale = f"{DEPLOYMENTS}/kubecost-cost-analyzer/scale"
    first = sim.cost_model_pod()
    response = kube.request(
        "PATCH", scale, {"spec": {"replicas": 0}}, content_type="application/merge-patch+json"
    )
    assert response.status == 200 and json.loads(response.data)["spec"]["replicas"] == 0
    assert pods(kube, "app.kubernetes.io/name=cost-analyzer") == []
    status, body = kube.get(f"{NS}/services/kubecost-cost-analyzer:9090/proxy/model/etl/status")
    assert status == 503 and body["message"] == 'no endpoints available for service "kubecost-cost-analyzer"'
    kube.request("PATCH", scale, {"spec": {"replicas": 1}}, content_type="application/merge-patch+json")
    second = sim.cost_model_pod()
    assert second not in (None, first)
    deleted = kube.request("DELETE", f"{NS}/pods/{second}")
    assert deleted.status == 200 and json.loads(deleted.data)["metadata"]["deletionTimestamp"]
    third = sim.cost_model_pod()
    assert third not in (None, second) and third.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]
    assert (
        kube.request(
            "PATCH", scale, {"spec": {"replicas": 3}}, content_type="application/merge-patch+json"
        ).status
        == 422
    )


def test_watch_sees_the_restart(kube: Api, sim: SimulatorProcess):
    old = sim.cost_model_pod()
    response = kube.request(
        "GET",
        f"{NS}/pods?watch=true&timeoutSeconds=20&labelSelector="
        + quote("app.kubernetes.io/name=cost-analyzer"),
        preload_content=False,
    )
    events: queue.Queue[dict | None] = queue.Queue()

    def read():
        buffer = b""
        try:
            for chunk in response.stream(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    events.put(json.loads(line))
        except (urllib3.exceptions.HTTPError, OSError):
            pass  # we close the connection at the end of the test
        events.put(None)

    threading.Thread(target=read, daemon=True).start()
    first = events.get(timeout=10)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", old)
    new = sim.restart_pod()
    seen = []
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        event = events.get(timeout=10)
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    assert sorted(seen) == sorted([("ADDED", new), ("DELETED", old)])
    response.shutdown()


# ---------------------------------------------------------------------------- proxy


def test_service_and_pod_proxy_reach_the_cost_model_and_prometheus(kube: Api, sim: SimulatorProcess):
    for path in (
        f"{NS}/services/kubecost-cost-analyzer:9090/proxy/model/etl/status",
        f"{NS}/services/http:kubecost-cost-analyzer:tcp-model/proxy/etl/status",
        f"{NS}/services/kubecost-cost-analyzer/proxy/etl/status",
        f"{NS}/pods/{sim.cost_model_pod()}:9003/proxy/etl/status",
    ):
        status, body = kube.get(path)
        assert status == 200 and body["code"] == 200, path
    status, body = kube.get(f"{NS}/services/kubecost-prometheus-server:80/proxy/api/v1/status/flags")
    assert status == 200 and body["data"]["storage.tsdb.retention.time"] == "15d"
    assert kube.get(f"{NS}/services/nope:80/proxy/x")[0] == 404
    logged = [(entry["method"], entry["path"]) for entry in sim.request_log_lines()]
    assert ("GET", "/model/etl/status") in logged  # what the frontend app received
    assert ("GET", f"{NS}/services/kubecost-cost-analyzer:9090/proxy/model/etl/status") in logged


def test_repair_through_the_proxy_logs_to_the_pod_and_can_restart_it(kube: Api, sim: SimulatorProcess):
    first = sim.cost_model_pod()
    repair = f"{NS}/services/kubecost-cost-analyzer:9090/proxy/model/etl/asset/repair?window=2d"
    assert kube.get(repair) == (200, {"code": 200, "data": "Repairing Asset ETL"})
    deadline = time.monotonic() + 10
    while "build: completed" not in kube.get(f"{NS}/pods/{first}/log?container=cost-model")[1]:
        assert time.monotonic() < deadline, "the cost-model never logged the end of the repair"
        time.sleep(0.05)
    sim.set_faults(restart_during_step="asset")
    assert kube.get(repair)[0] == 200
    while sim.state()["restarts"] == 0:
        assert time.monotonic() < deadline + 10, "restart_during_step did not restart the pod"
        time.sleep(0.05)
    assert sim.cost_model_pod() != first
    assert kube.get(f"{NS}/pods/{first}/log?container=cost-model")[0] == 404


def test_ssl_context_matches_the_kubeconfig(sim: SimulatorProcess):
    context = ssl.create_default_context(cafile=sim.ca_cert)
    assert context.cert_store_stats()["x509_ca"] == 1
