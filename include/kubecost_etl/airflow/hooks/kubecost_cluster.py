"""Kubernetes API access to one Kubecost cluster, through the cncf-kubernetes provider."""

from __future__ import annotations

from functools import cached_property

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

from kubecost_etl.config import ClusterConfig


class KubecostClusterHook:
    """API clients for a cluster reached by an Airflow connection or a kubeconfig file.

    Each hook gets its own client Configuration: loading a kubeconfig into the process-wide
    default would make two clusters in one process talk to the same API server.
    """

    def __init__(self, kubernetes_conn_id: str | None = None, kubeconfig: str | None = None,
                 context: str | None = None):
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kubeconfig = kubeconfig
        self.context = context

    @classmethod
    def for_cluster(cls, cluster: ClusterConfig) -> KubecostClusterHook:
        return cls(cluster.kubernetes_conn_id, cluster.kubeconfig, cluster.context)

    @cached_property
    def kubernetes_hook(self) -> KubernetesHook:
        from kubernetes.client import Configuration

        if self.kubernetes_conn_id:
            return KubernetesHook(conn_id=self.kubernetes_conn_id, client_configuration=Configuration())
        if self.kubeconfig:
            return KubernetesHook(conn_id=None, kubernetes_conn_id=None, config_file=self.kubeconfig,
                                  cluster_context=self.context, client_configuration=Configuration())
        # Neither given: the provider's default connection (in-cluster credentials when absent).
        return KubernetesHook(client_configuration=Configuration())

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
