"""Where Kubecost keeps its ETL data: paths and coverage, the bingen set-file format, window syntax."""
