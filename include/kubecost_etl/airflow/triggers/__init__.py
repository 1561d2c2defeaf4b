"""Triggers run by Airflow's triggerer (importable from here: the triggerer does not load dags/)."""
