"""The "Kubecost ETL" page in the Airflow UI: a FastAPI app at /kubecost-etl and a navigation link.

The routes and what they show are in ``kubecost_etl_status.py`` (every route requires a logged-in
user with read access to the project's DAGs).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from kubecost_etl_status import app


class KubecostEtlPlugin(AirflowPlugin):
    name = "kubecost_etl"
    fastapi_apps = [{"app": app, "url_prefix": "/kubecost-etl", "name": "Kubecost ETL"}]
    external_views = [
        {
            "name": "Kubecost ETL",
            "href": "/kubecost-etl/",
            "destination": "nav",
            "url_route": "kubecost-etl",
            "category": "browse",
        }
    ]
