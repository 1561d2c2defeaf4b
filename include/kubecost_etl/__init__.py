"""Kubecost ETL operations: pure domain logic (no Airflow imports outside kubecost_etl.airflow)."""
