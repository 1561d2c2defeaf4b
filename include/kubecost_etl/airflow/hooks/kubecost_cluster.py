"""One Kubecost cluster, reached through the cncf-kubernetes provider: the hooks that own its clients.

``KubecostClusterHook`` (sync, for tasks and the poking sensor) hands out the Kubernetes API clients,
the HTTP clients of Kubecost's repair API and of Prometheus (through the API server's service proxy,
or at a configured URL with credentials from an Airflow connection), and one poll of a repair's
progress (pod state, then the new log lines). ``AsyncKubecostClusterHook`` is its twin for the
triggerer, as the provider's ``S3Hook.check_key``/``check_key_async`` serve a sensor and a trigger.

Provider imports happen when a client is first needed, never at import time: the sensor module that
DAG files import stays light.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from kubecost_etl.repair.log_matching import Outcome
from kubecost_etl.repair.log_watch import LOG_READ_TIMEOUT, RepairLogWatch, pod_state
from kubecost_etl.repair.steps import KubeRef

if TYPE_CHECKING:
    from kubecost_etl.config import ClusterConfig
    from kubecost_etl.repair.settings import RepairSettings
    from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp


def connection_credentials(conn_id: str | None) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Headers (``extra.headers``) and basic auth (login/password) of an Airflow connection."""
    if not conn_id:
        return {}, None
    from kubecost_etl.errors import ConfigError

    conn = BaseHook.get_connection(conn_id)
    headers = conn.extra_dejson.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(
            f"connection {conn_id!r}: extra.headers must be a mapping of header names to values"
        )
    return {str(k): str(v) for k, v in headers.items()}, (
        (conn.login, conn.password or "") if conn.login else None
    )


class KubecostClusterHook(BaseHook):
    """API clients for a cluster reached by an Airflow connection or a kubeconfig file.

    Each hook gets its own client Configuration: loading a kubeconfig into the process-wide
    default would make two clusters in one process talk to the same API server.
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = "kubernetes"
    hook_name = "Kubecost cluster"

    def __init__(
        self, kubernetes_conn_id: str | None = None, kubeconfig: str | None = None, context: str | None = None
    ):
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kubeconfig = kubeconfig
        self.context = context

    @classmethod
    def for_cluster(cls, cluster: ClusterConfig) -> KubecostClusterHook:
        return cls(cluster.kubernetes_conn_id, cluster.kubeconfig, cluster.context)

    @classmethod
    def for_watch(cls, kube: KubeRef | dict) -> KubecostClusterHook:
        """From the ``kube`` part of a repair watch (connection id, or kubeconfig and context)."""
        ref = KubeRef.from_dict(kube)
        return cls(ref.conn_id, ref.kubeconfig, ref.context)

    @cached_property
    def kubernetes_hook(self):
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes.client import Configuration

        if self.kubernetes_conn_id:
            return KubernetesHook(conn_id=self.kubernetes_conn_id, client_configuration=Configuration())
        if self.kubeconfig:
            return KubernetesHook(
                conn_id=None,
                kubernetes_conn_id=None,
                config_file=self.kubeconfig,
                cluster_context=self.context,
                client_configuration=Configuration(),
            )
        # Neither given: the provider's default connection (in-cluster credentials when absent).
        return KubernetesHook(client_configuration=Configuration())

    def get_conn(self):
        return self.api_client

    @cached_property
    def api_client(self):
        return self.kubernetes_hook.get_conn()

    @cached_property
    def core_v1(self):
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.api_client)

    @cached_property
    def apps_v1(self):
        from kubernetes.client import AppsV1Api

        return AppsV1Api(self.api_client)

    # HTTP services of the cluster: Kubecost's API and Prometheus.

    def kubecost_http(self, namespace: str, settings: RepairSettings) -> DirectHttp | ServiceProxyHttp:
        """Kubecost at ``repair.kubecost_url`` (credentials from ``repair.kubecost_conn_id``), else its
        service through the cluster's API server."""
        from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp

        if settings.kubecost_url:
            headers, auth = connection_credentials(settings.kubecost_conn_id)
            return DirectHttp(
                settings.kubecost_url + settings.kubecost_api_path,
                headers,
                auth,
                settings.tls_verify,
                settings.request_timeout_seconds,
                allow_insecure_http=settings.allow_insecure_http,
            )
        return ServiceProxyHttp(
            self.api_client,
            namespace,
            settings.kubecost_service,
            settings.kubecost_api_path,
            settings.request_timeout_seconds,
        )

    def prometheus_http(self, namespace: str, settings: RepairSettings) -> DirectHttp | ServiceProxyHttp:
        """Prometheus (or a Thanos Query) at ``repair.prometheus_url``, else its service through the
        cluster's API.
        """
        from kubecost_etl.repair.transport import DirectHttp, ServiceProxyHttp

        if settings.prometheus_url:
            return DirectHttp(
                settings.prometheus_url, verify=settings.tls_verify, timeout=settings.request_timeout_seconds
            )
        return ServiceProxyHttp(
            self.api_client, namespace, settings.prometheus_service, timeout=settings.request_timeout_seconds
        )

    # The repair log watch, one poll at a time (the poking sensor).

    def poll_repair_log(self, watch: RepairLogWatch) -> Outcome | None:
        """One poll: the pod first (a restart ends the wait), then the log lines written since the last."""
        from kubernetes.client.exceptions import ApiException

        from kubecost_etl.repair.transport import raw_get

        pod = watch.pod
        while True:
            try:
                state = pod_state(self.core_v1.read_namespaced_pod(pod.name, pod.namespace), pod.container)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                state = None
            if restarted := watch.check_pod(state):
                return restarted
            answer = raw_get(
                self.api_client,
                watch.log_path(),
                watch.log_query(),
                "text/plain",
                LOG_READ_TIMEOUT,
                "pods/log",
            )
            outcome = watch.read(answer.status, answer.body)
            if outcome is not None or not watch.more_waiting:
                return outcome


class AsyncKubecostClusterHook(BaseHook):
    """The triggerer's twin of ``KubecostClusterHook``: the same cluster, asyncio clients.

    It opens an ApiClient per poll: exec-based credentials (EKS, GKE) expire and must be reloaded.
    """

    hook_name = "Kubecost cluster (async)"

    def __init__(
        self, kubernetes_conn_id: str | None = None, kubeconfig: str | None = None, context: str | None = None
    ):
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kubeconfig = kubeconfig
        self.context = context

    @classmethod
    def for_watch(cls, kube: KubeRef | dict) -> AsyncKubecostClusterHook:
        ref = KubeRef.from_dict(kube)
        return cls(ref.conn_id, ref.kubeconfig, ref.context)

    @cached_property
    def _provider_hook(self):
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        # One hook for the whole wait: it reads the connection once and reloads exec credentials itself.
        return (
            AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)
            if self.kubernetes_conn_id
            else AsyncKubernetesHook()
        )

    @asynccontextmanager
    async def api_client(self) -> AsyncIterator[Any]:
        if self.kubeconfig:
            from kubernetes_asyncio import client, config

            configuration = client.Configuration()
            await config.load_kube_config(
                config_file=self.kubeconfig, context=self.context, client_configuration=configuration
            )
            async with client.ApiClient(configuration) as api:
                yield api
        else:
            async with self._provider_hook.get_conn() as api:
                yield api

    async def poll_repair_log(self, watch: RepairLogWatch) -> Outcome | None:
        """The async ``KubecostClusterHook.poll_repair_log``: pod state, then one read of the new log
        lines.
        """
        from kubernetes_asyncio.client import CoreV1Api
        from kubernetes_asyncio.client.exceptions import ApiException

        pod = watch.pod
        async with self.api_client() as api:
            try:
                state = pod_state(
                    await CoreV1Api(api).read_namespaced_pod(pod.name, pod.namespace), pod.container
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                state = None
            if restarted := watch.check_pod(state):
                return restarted
            response = await api.call_api(
                watch.log_path(),
                "GET",
                query_params=list(watch.log_query().items()),
                header_params={"Accept": "text/plain"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=LOG_READ_TIMEOUT,
            )
            async with response:
                raw = await response.read()
        self.log.debug(
            "%s repair: pods/log answered HTTP %d, %d bytes", watch.title, response.status, len(raw)
        )
        return watch.read(response.status, raw)
