"""Sensors of the Kubecost ETL pipelines."""
