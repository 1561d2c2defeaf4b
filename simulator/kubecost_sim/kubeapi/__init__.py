"""The Kubernetes API of the simulated cluster, on the real wire protocol.

HTTP JSON with bearer-token auth, Status errors, discovery, Table output for ``kubectl get``,
list/get/watch of namespaces, pods, deployments, replicasets and services, pod logs (follow,
sinceTime, sinceSeconds, timestamps, tailLines, limitBytes), exec over WebSocket (see
:mod:`kubecost_sim.execstream`), ephemeral containers, deployment PATCH (rollout restart) and
scale, pod deletion, and the service/pod proxy to the cost-model and Prometheus ports.
No OpenAPI documents: kubectl works without them for the commands used here.

Admin endpoints for tests live under ``/_sim/`` and need no token.

The handlers are grouped by what they serve: ``objects``, ``pods``, ``proxy``, ``admin``;
``app``'s ``KubeApi`` puts them together with authentication, errors and the routes.
"""
