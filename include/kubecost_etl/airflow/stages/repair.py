"""The repair pipeline's stages as task callables (params and JSON values in, JSON values out).

preflight (no call to Kubecost: window, cluster, retention, the metrics Prometheus really holds for
every day of the window; ``allow_partial_days`` lets named short days through) -> backup (the
backup pipeline's own code) -> per step: request_step (one repair call, answer checked) ->
RepairLogSensor -> summary.
"""

from __future__ import annotations

import logging
import re
import time

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from kubecost_etl.airflow.hooks.kubecost_cluster import KubecostClusterHook
from kubecost_etl.airflow.hooks.object_store import check_store_ref, open_repository
from kubecost_etl.airflow.stages import backup as backup_stages
from kubecost_etl.airflow.stages._refusals import refusals_fail_at_once
from kubecost_etl.backup.records import VerifiedSnapshot
from kubecost_etl.config import load_config
from kubecost_etl.errors import Refusal
from kubecost_etl.etl.windows import iso, resolve_window
from kubecost_etl.kube.pods import PodNotFound, find_cost_model_pod
from kubecost_etl.repair.kubecost_api import KubecostApi, RepairRequestFailed
from kubecost_etl.repair.log_matching import LogCursor, expectation
from kubecost_etl.repair.log_watch import pod_state
from kubecost_etl.repair.plan import CoverageCheck, PlannedStep, RepairPlan
from kubecost_etl.repair.profiles import DEFAULT_PROFILE, get_profile, request_task_id
from kubecost_etl.repair.prometheus_coverage import (
    CoverageReport,
    measure,
    newest_snapshot_covering,
    parse_allowed_days,
    refuse_if_short,
)
from kubecost_etl.repair.retention import (
    OutsideRetention,
    Retention,
    RetentionUnknown,
    ask_prometheus,
    check_window,
    configured_retention,
)
from kubecost_etl.repair.settings import RepairSettings
from kubecost_etl.repair.steps import KubeRef, RepairSummary, RepairWatch, StepResult, WatchedPod

log = logging.getLogger(__name__)

_PROVIDER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}$")
_TAIL_LINES = 50  # lines read to place the cursor at the end of the log before a request


@refusals_fail_at_once
def preflight(params: dict, now: float | None = None) -> dict:
    """Everything that can be checked before Kubecost is called; the plan the other stages follow."""
    now = int(time.time() if now is None else now)
    try:
        cluster = load_config().cluster(params.get("cluster") or None)
        settings = cluster.repair
        hook = KubecostClusterHook.for_cluster(
            cluster
        )  # connects only when a request goes through the cluster's API
        profile = get_profile(params.get("profile") or DEFAULT_PROFILE)
        window = resolve_window(params.get("window"), now, settings.max_window_days)
        provider = _provider(params.get("provider"))
        log.info(
            "cluster %s, profile %s (%s), log patterns %s",
            cluster.id,
            profile.name,
            profile.description,
            profile.log_patterns.label,
        )
        log.info("window %s", window.describe())
        if params.get("backup_first", True) and not params.get("dry_run"):
            check_store_ref(cluster)
        allowed_days = parse_allowed_days(params.get("allow_partial_days"), window)
        retention = _retention(hook, cluster.namespace, settings)
        check_window(window, retention, now)
        oldest = retention.oldest_repairable(now)
        log.info(
            "Prometheus keeps %s (%s): %s",
            retention.describe(),
            retention.source,
            f"the oldest repairable time is {iso(oldest)}"
            if oldest is not None
            else "no time bound: the data it holds decides",
        )
        coverage = measure(
            hook.prometheus_http(cluster.namespace, settings),
            settings.required_metrics,
            window,
            now,
            cluster.hourly_hours,
            settings.min_coverage,
        )
        log.info("%s", coverage.table())
        snapshot, where = _covering_snapshot(cluster, coverage, allowed_days)
        partial_days = refuse_if_short(coverage, allowed_days, snapshot, where)
        api = KubecostApi(hook.kubecost_http(cluster.namespace, settings))  # its connection is checked here
    # ValueError covers WindowError and a bad provider or URL; Refusal covers ConfigError,
    # OutsideRetention and the coverage refusals (Prometheus cannot tell, or days lack metrics).
    except (ValueError, Refusal, RetentionUnknown) as exc:
        raise AirflowFailException(f"preflight: {exc}") from None
    for day in partial_days:
        log.warning(
            "allow_partial_days: %s is repaired although Prometheus lacks metrics for it: %s; its ETL files "
            "will hold only what those hours give",
            day.date,
            day.describe(),
        )
    steps = []
    for step in profile.steps:
        request = api.describe(step, window.query, provider)
        steps.append(PlannedStep(step.name, step.title, request))
        log.info("step %d: %s", len(steps), request)
    plan = RepairPlan(
        cluster_id=cluster.id,
        profile=profile.name,
        window=window,
        provider=provider,
        backup_first=bool(params.get("backup_first", True)),
        dry_run=bool(params.get("dry_run", False)),
        retention=retention,
        steps=tuple(steps),
        planned_at=now,
        coverage=CoverageCheck(
            tuple(coverage.metrics), coverage.min_coverage, coverage.queries, coverage.source
        ),
        partial_days=tuple(partial_days),
    )
    if plan.dry_run:
        log.info("dry run: nothing will be backed up or sent to Kubecost")
    return plan.as_dict()


@refusals_fail_at_once
def backup(plan: dict) -> dict:
    """A verified backup first, so a bad repair can be undone by a restore."""
    plan = RepairPlan.from_dict(plan)
    if plan.dry_run:
        raise AirflowSkipException("dry run")
    if not plan.backup_first:
        raise AirflowSkipException("backup_first is false: repairing without a fresh backup")
    result = backup_stages.run_backup(plan.cluster_id)
    log.info(
        "safety backup: snapshot %s of %s (restore it to undo this repair)",
        VerifiedSnapshot.from_dict(result).snapshot_id,
        plan.cluster_id,
    )
    return result


@refusals_fail_at_once
def choose_steps(plan: dict) -> str | None:
    """The first task of the profile's chain, or None (nothing runs) for a dry run."""
    plan = RepairPlan.from_dict(plan)
    if plan.dry_run:
        return None
    return f"{plan.profile}.{request_task_id(get_profile(plan.profile).steps[0].name)}"


@refusals_fail_at_once
def request_step(plan: dict, step_name: str, now: float | None = None) -> dict:
    """Send one repair call and return what its sensor must watch for (a ``RepairWatch``)."""
    plan = RepairPlan.from_dict(plan)
    cluster = load_config().cluster(plan.cluster_id)
    settings = cluster.repair
    profile = get_profile(plan.profile)
    step = profile.step(step_name)
    window = plan.window
    now = int(time.time() if now is None else now)
    try:  # Prometheus' cutoff moves on while earlier steps run
        check_window(window, plan.retention, now)
    except OutsideRetention as exc:
        raise AirflowFailException(f"{step.title}: {exc}") from None

    hook = KubecostClusterHook.for_cluster(cluster)
    core = hook.core_v1
    try:
        pod = find_cost_model_pod(core, cluster.namespace, cluster.selector, cluster.container)
    except PodNotFound as exc:
        raise AirflowFailException(f"{step.title}: {exc}") from None
    restarts = pod_state(core.read_namespaced_pod(pod.name, pod.namespace), pod.container).restarts
    tail = core.read_namespaced_pod_log(
        pod.name,
        pod.namespace,
        container=pod.container,
        timestamps=True,
        tail_lines=_TAIL_LINES,
        _preload_content=False,
    ).data
    cursor = LogCursor.after(tail)

    api = KubecostApi(hook.kubecost_http(cluster.namespace, settings))
    keys = None
    if step.keyed:
        keys = [plan.provider] if plan.provider and step.accepts_provider else api.cloud_integration_keys()
        if keys is None:
            log.warning(
                "%s: cannot list the cloud integrations (/etl/status); the step counts as done once every "
                "integration seen in the log has covered the window",
                step.title,
            )
    if not profile.step_log(step.name).confirmed:
        log.warning(
            "%s: no public example of its log lines exists; patterns %s are a best guess. If the step never "
            "completes although Kubecost finished, compare its log with them",
            step.title,
            profile.log_patterns.label,
        )
    expected = expectation(profile, step.name, window, now, cluster.hourly_hours, keys)
    log.info(
        "%s: following pod %s from the end of its log; expecting %d day(s)%s%s",
        step.title,
        pod.name,
        len(expected.days),
        f" and {len(expected.hours)} hour(s) ({expected.hourly})" if expected.hours else "",
        f" for integrations {keys}" if keys else "",
    )

    requested_at = time.time()
    try:
        answer = api.repair(step, window.query, plan.provider)
    except RepairRequestFailed as exc:
        if exc.retryable:
            raise  # Airflow retries the request task (a 5xx or no answer: the repair probably did not start)
        raise AirflowFailException(str(exc)) from None
    log.info("%s -> HTTP %d, code %d: %s", answer.request, answer.status, answer.code, answer.data)
    return RepairWatch(
        step=step.name,
        title=step.title,
        request=answer.request,
        answer=answer.as_dict(),
        requested_at=requested_at,
        deadline=requested_at + settings.step_timeout_minutes * 60,
        timeout_minutes=settings.step_timeout_minutes,
        poll_seconds=settings.poll_seconds,
        kube=KubeRef(cluster.kubernetes_conn_id, cluster.kubeconfig, cluster.context),
        pod=WatchedPod(pod.namespace, pod.name, pod.uid, pod.container, restarts),
        cursor=cursor,
        expected=expected,
    ).as_dict()


@refusals_fail_at_once
def summary(plan: dict, results: list[dict | None]) -> dict:
    """One line per step: request, answer, days completed, duration; fails the run if a step did
    not finish.
    """
    if plan is None:
        raise AirflowFailException(
            "preflight did not pass: nothing was sent to Kubecost (see the preflight task)"
        )
    plan = RepairPlan.from_dict(plan)
    by_step = {r.step: r for r in map(StepResult.from_dict, filter(None, results))}
    lines, unfinished = [], []
    for planned in plan.steps:
        result = by_step.get(planned.step)
        if plan.dry_run:
            lines.append(f"{planned.title}: dry run, not sent: {planned.request}")
        elif result is None:
            unfinished.append(planned.title)
            lines.append(f"{planned.title}: NOT COMPLETED (see its request_/wait_ tasks): {planned.request}")
        else:
            answer = result.answer
            lines.append(
                f"{result.title}: {result.request} -> HTTP {answer['status']} code {answer['code']} "
                f"{answer['data']!r}; days completed {result.days_done}/{result.days_expected}"
                + "".join(f", {p['pass']} {p['done']}/{p['expected']}" for p in result.passes)
                + f"; {result.seconds:.1f} s"
            )
    for day in plan.partial_days:
        lines.append(
            f"allow_partial_days: {day.date} {'would be ' if plan.dry_run else ''}repaired although "
            f"Prometheus lacked metrics: {day.describe()}"
        )
    for line in lines:
        log.info("%s", line)
    if unfinished:
        raise AirflowFailException(
            f"repair of {plan.cluster_id} window {plan.window.query} incomplete: "
            f"{', '.join(unfinished)} did not finish"
        )
    return RepairSummary(
        plan.cluster_id,
        plan.window.as_dict(),
        plan.profile,
        plan.dry_run,
        tuple(lines),
        tuple(day.date for day in plan.partial_days),
    ).as_dict()


def _provider(value) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _PROVIDER_KEY.match(value):
        raise ValueError(f"provider {value!r} is not a cloud integration key")
    return value


def _retention(hook: KubecostClusterHook, namespace: str, settings: RepairSettings) -> Retention:
    if settings.prometheus_retention:
        return configured_retention(settings.prometheus_retention)
    return ask_prometheus(hook.prometheus_http(namespace, settings))


def _covering_snapshot(cluster, coverage: CoverageReport, allowed_days: set[str]) -> tuple[str | None, str]:
    """The newest verified snapshot covering the days about to be refused, and where it lives ("" if none)."""
    refused = [day.day for day in coverage.below() if day.date not in allowed_days]
    if not refused or cluster.backup is None:
        return None, ""
    try:
        repository = open_repository(cluster)
        return newest_snapshot_covering(repository, refused), f", in {repository.description}"
    except Exception as exc:  # noqa: BLE001 (a hint for the refusal: the refusal itself must not be lost)
        log.warning("cannot look for a snapshot covering the short days: %s: %s", type(exc).__name__, exc)
        return None, ""
