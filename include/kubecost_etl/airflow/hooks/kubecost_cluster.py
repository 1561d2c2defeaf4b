"""Kubernetes API access to one configured Kubecost cluster, through the cncf-kubernetes provider."""

from __future__ import annotations

from functools import cached_property

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

from kubecost_etl.config import ClusterConfig


class KubecostClusterHook:
    """Builds a CoreV1Api for a cluster from its Airflow connection or its kubeconfig file.

    Each hook gets its own client Configuration: loading a kubeconfig into the process-wide
    default would make two clusters in one process talk to the same API server.
    """

    def __init__(self, cluster: ClusterConfig):
        self.cluster = cluster

    @cached_property
    def kubernetes_hook(self) -> KubernetesHook:
        from kubernetes.client import Configuration

        if self.cluster.kubernetes_conn_id:
            return KubernetesHook(
                conn_id=self.cluster.kubernetes_conn_id, client_configuration=Configuration()
            )
        if self.cluster.kubeconfig:
            return KubernetesHook(
                conn_id=None,
                kubernetes_conn_id=None,
                config_file=self.cluster.kubeconfig,
                cluster_context=self.cluster.context,
                client_configuration=Configuration(),
            )
        # Neither given: the provider's default connection (in-cluster credentials when absent).
        return KubernetesHook(client_configuration=Configuration())

    @cached_property
    def core_v1(self):
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.kubernetes_hook.get_conn())

    @cached_property
    def apps_v1(self):
        from kubernetes.client import AppsV1Api

        return AppsV1Api(self.kubernetes_hook.get_conn())
