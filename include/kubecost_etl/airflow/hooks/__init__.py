"""Airflow hooks for kubecost_etl: thin wrappers that turn Airflow connections into domain clients."""
