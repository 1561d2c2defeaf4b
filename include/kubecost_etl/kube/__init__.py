"""Talking to the cost-analyzer pod through the Kubernetes API (official client, no Airflow)."""
