"""Airflow glue for kubecost_etl: hooks, tasks, notifiers. Only this subpackage imports Airflow."""
