"""A local stand-in for one Kubernetes cluster running Kubecost (tests and demo only)."""
