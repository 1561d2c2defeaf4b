"""The official ``kubernetes`` Python client against the sim (kubeconfig it writes)."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest
from kubecost_sim.testing import SimulatorProcess
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import ABNF, WebSocketConnectionClosedException

from tests.etl_trees import tree_digests

ETL = "/var/configs/db/etl"


def open_exec(
    api: client.CoreV1Api, pod: str, command: list[str], container: str = "cost-model", stdin: bool = False
):
    return stream(
        api.connect_get_namespaced_pod_exec,
        pod,
        "kubecost",
        container=container,
        command=command,
        stdin=stdin,
        stdout=True,
        stderr=True,
        tty=False,
        binary=True,
        _preload_content=False,
    )


class _Sink:
    """Counts, hashes and un-tars a stream as it arrives (nothing is kept in memory)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.size = 0
        self.archive_path = folder.with_suffix(".tar")
        self.archive = open(self.archive_path, "wb")  # noqa: SIM115 - closed in finish()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.archive.write(data)

    def finish(self) -> dict[str, str]:
        self.archive.close()
        with tarfile.open(self.archive_path, "r|") as tar:
            tar.extractall(self.folder, filter="data")
        return tree_digests(self.folder)


def drain(response, sink) -> tuple[bytes, bytes]:
    """Read an exec to its end the documented way (update/read_stdout); return (stderr, status)."""
    stderr = b""
    while response.is_open():
        response.update(timeout=10)
        if response.peek_stdout():
            sink.write(response.read_stdout())
        if response.peek_stderr():
            stderr += response.read_stderr()
    if response.peek_stdout():
        sink.write(response.read_stdout())
    return stderr, response.read_channel(3)


def test_list_pods_with_label_selector_and_read_deployment(sim: SimulatorProcess):
    api = sim.core_v1()
    pods = api.list_namespaced_pod("kubecost", label_selector="app=cost-analyzer").items
    assert [p.metadata.name for p in pods][1] == sim.cost_model_pod()
    assert [c.name for c in pods[0].spec.containers] == ["cost-analyzer-frontend"]  # the HA decoy comes first
    [cost_model] = api.list_namespaced_pod(
        "kubecost", label_selector="app.kubernetes.io/name=cost-analyzer"
    ).items
    assert cost_model.status.phase == "Running" and cost_model.status.start_time is not None
    assert [s.name for s in cost_model.status.container_statuses] == ["cost-model", "cost-analyzer-frontend"]
    deployment = client.AppsV1Api(api.api_client).read_namespaced_deployment(
        "kubecost-cost-analyzer", "kubecost"
    )
    assert deployment.spec.selector.match_labels["app.kubernetes.io/name"] == "cost-analyzer"
    assert deployment.status.ready_replicas == 1


def test_read_log_since_seconds(sim: SimulatorProcess):
    api = sim.core_v1()
    sim.append_log("2024-01-01T00:00:00Z INF ETL: Asset[1d]: repairing")

    def read(**options) -> str:
        # Raw bytes: client 36.x turns a preloaded log into the repr "b'...'" (kubernetes-client/python#2596).
        response = api.read_namespaced_pod_log(
            sim.cost_model_pod(),
            "kubecost",
            container="cost-model",
            since_seconds=60,
            _preload_content=False,
            **options,
        )
        return response.data.decode()

    assert read() == "2024-01-01T00:00:00Z INF ETL: Asset[1d]: repairing\n"
    assert read(timestamps=True).endswith("Z 2024-01-01T00:00:00Z INF ETL: Asset[1d]: repairing\n")


def test_api_errors_are_api_exceptions(sim: SimulatorProcess):
    api = sim.core_v1()
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_pod("nope", "kubecost")
    assert missing.value.status == 404 and json.loads(missing.value.body)["reason"] == "NotFound"
    wrong = client.Configuration(host=sim.api_url, api_key={"BearerToken": "Bearer wrong"})
    wrong.ssl_ca_cert = sim.ca_cert
    with pytest.raises(ApiException) as unauthorized:
        client.CoreV1Api(client.ApiClient(wrong)).list_namespaced_pod("kubecost")
    assert unauthorized.value.status == 401


@pytest.mark.slow
def test_exec_tar_of_200_mb_arrives_intact(simulator, big_etl_dir: Path, tmp_path: Path):
    sim = simulator(big_etl_dir)
    api = sim.core_v1()
    sink = _Sink(tmp_path / "copy")
    started = time.monotonic()
    response = open_exec(api, sim.cost_model_pod(), ["tar", "cf", "-", "-C", ETL, "."])
    stderr, status = drain(response, sink)
    seconds = time.monotonic() - started
    print(
        f"\nkubernetes client exec tar cf -: {sink.size / 1e6:.0f} MB in {seconds:.2f} s "
        f"= {sink.size / 1e6 / seconds:.0f} MB/s"
    )
    assert json.loads(status) == {"metadata": {}, "status": "Success"} and stderr == b""
    assert sink.size > 200_000_000
    assert sink.finish() == tree_digests(big_etl_dir)
    peak_kib = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{sim.process.pid}/status").read_text().splitlines()
            if line.startswith("VmHWM:")
        )
    )
    assert peak_kib < 150 * 1024, (
        f"the server's memory peaked at {peak_kib // 1024} MiB: output is being buffered"
    )


def test_exec_in_ephemeral_container_when_the_image_has_no_tar(simulator, etl_dir: Path, tmp_path: Path):
    sim = simulator(etl_dir, no_tar=True)
    api = sim.core_v1()
    pod = sim.cost_model_pod()
    _, status = drain(open_exec(api, pod, ["tar", "cf", "-", ETL]), _Sink(tmp_path / "unused"))
    assert 'exec: "tar": executable file not found in $PATH' in json.loads(status)["message"]

    body = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "etl-debug",
                    "image": "busybox:1.36",
                    "targetContainerName": "cost-model",
                    "command": ["sleep", "3600"],
                }
            ]
        }
    }
    api.patch_namespaced_pod_ephemeralcontainers(pod, "kubecost", body)
    [debug] = api.read_namespaced_pod(pod, "kubecost").status.ephemeral_container_statuses
    assert debug.name == "etl-debug" and debug.state.running is not None
    sink = _Sink(tmp_path / "copy")
    _, status = drain(
        open_exec(api, pod, ["tar", "cf", "-", "-C", "/proc/1/root" + ETL, "."], container="etl-debug"), sink
    )
    assert json.loads(status)["status"] == "Success"
    assert sink.finish() == tree_digests(etl_dir)


def test_cut_exec_stream_ends_without_a_status(sim: SimulatorProcess):
    sim.set_faults(exec_cut_after_bytes=50_000)
    response = open_exec(sim.core_v1(), sim.cost_model_pod(), ["tar", "cf", "-", "-C", ETL, "."])
    # After an abrupt close every update() of the client raises, so read the frames directly.
    stdout_bytes, status = 0, None
    while True:
        try:
            opcode, frame = response.sock.recv_data_frame(True)
        except WebSocketConnectionClosedException:
            break
        if opcode == ABNF.OPCODE_CLOSE:
            break
        if frame.data[:1] == b"\x01":
            stdout_bytes += len(frame.data) - 1
        elif frame.data[:1] == b"\x03":
            status = frame.data[1:]
    assert (
        status is None and stdout_bytes == 50_000
    )  # no Success: the caller must treat the copy as incomplete


def test_cut_while_sending_stdin_ends_without_a_status(sim: SimulatorProcess):
    sim.set_faults(exec_cut_stdin_after_bytes=10_000)
    response = open_exec(
        sim.core_v1(), sim.cost_model_pod(), ["sh", "-c", "cat > /var/configs/db/received"], stdin=True
    )
    response.sock.settimeout(30)  # without the fault, cat would wait for more stdin: fail, don't hang
    status = None
    try:
        for _ in range(10):  # 40 KB: the connection drops after the first 10 KB arrived
            response.sock.send(b"\x00" + b"x" * 4000, opcode=ABNF.OPCODE_BINARY)
        while True:
            opcode, frame = response.sock.recv_data_frame(True)
            if opcode == ABNF.OPCODE_CLOSE:
                break
            if frame.data[:1] == b"\x03":
                status = frame.data[1:]
    except (WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
        pass
    assert status is None
    assert sim.faults()["exec_cut_stdin_after_bytes"] is None  # one-shot: disarmed
