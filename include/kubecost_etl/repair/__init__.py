"""Guarded repair of Kubecost's ETL: window and retention checks, the repair calls, following the log."""
