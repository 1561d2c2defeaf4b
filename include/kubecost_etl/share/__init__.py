"""Share bundles (a window of the ETL cache in Kubecost's own archive layout) and archive imports."""
