"""PodExec against the simulator: results, exit codes, and the ways a session can fail."""

from __future__ import annotations

import pytest
from kubecost_etl.kube.exec import CommandNotFound, ExecError, ExecStreamCut, PodExec


def open_exec(sim, command, **kw) -> PodExec:
    return PodExec(sim.core_v1(), "kubecost", sim.cost_model_pod(), "cost-model", command, **kw)


def test_output_exit_codes_and_missing_commands(simulator):
    sim = simulator(no_tar=True)
    assert open_exec(sim, ["sh", "-c", "echo hello"]).output() == b"hello\n"
    with pytest.raises(ExecError) as failed:
        open_exec(sim, ["sh", "-c", "echo oops >&2; exit 3"]).run()
    assert failed.value.exit_code == 3 and "oops" in str(failed.value)
    with pytest.raises(CommandNotFound):
        open_exec(sim, ["tar", "--help"]).run()  # current Kubecost images have no tar


def test_a_refused_handshake_is_a_clear_exec_error(simulator):
    sim = simulator()
    with pytest.raises(ExecError, match="cannot start the exec session"):
        open_exec(sim, ["echo", "x" * 20_000])  # a request line no proxy or API server would take


def test_a_stream_cut_midway_is_reported_as_such(simulator):
    sim = simulator()
    sim.set_faults(exec_cut_after_bytes=1000)
    with pytest.raises(ExecStreamCut, match="without a final status"):
        open_exec(sim, ["tar", "cf", "-", "-C", "/var/configs/db/etl", "."]).output()
