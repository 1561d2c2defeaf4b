"""``ClusterLeaseSensor``: the setup task that takes a cluster's lease before a pipeline touches it.

It pokes in ``reschedule`` mode: while another pipeline (this or another Airflow deployment) holds
the lease, the task gives its worker slot back between looks, logging who holds it each time. When the
cluster's ``lease.wait`` has passed since the first look it fails at once, naming the holder
(``LeaseWaitExhausted``, a refusal: no retry). A store error is transient and retried by Airflow.
Once acquired, it aborts uploads killed runs left in the cluster's repository and returns the holder
(``Holder.as_dict()``) for the stages and the release teardown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException


class ClusterLeaseSensor(BaseSensorOperator):
    """
    :param cluster: a cluster id, or a dict with ``cluster_id`` (a preflight's result, as an XComArg).
    """

    template_fields: Sequence[str] = ("cluster",)
    ui_color = "#f4eee8"

    def __init__(self, *, cluster: str | dict | Any, **kwargs) -> None:
        kwargs.setdefault("mode", "reschedule")
        # lease.wait (from the config, read at run time) decides when to give up; this only backs it up.
        kwargs.setdefault("timeout", timedelta(days=7))
        super().__init__(**kwargs)
        self.cluster = cluster

    @property
    def cluster_id(self) -> str:
        return self.cluster["cluster_id"] if isinstance(self.cluster, dict) else str(self.cluster)

    def execute(self, context) -> Any:
        from kubecost_etl.config import load_config

        settings = load_config().cluster(self.cluster_id).lease
        self.poke_interval = settings.poke_interval.total_seconds()
        return super().execute(context)

    def poke(self, context) -> PokeReturnValue | bool:
        from kubecost_etl.airflow.lease import clean_stale_uploads, cluster_lease, holder_for
        from kubecost_etl.config import load_config
        from kubecost_etl.errors import Refusal
        from kubecost_etl.lease import LeaseHeld, LeaseWaitExhausted, utcnow

        cluster = load_config().cluster(self.cluster_id)
        lease = cluster_lease(cluster)
        me = holder_for(context)
        try:
            holder = lease.acquire(me)
        except LeaseHeld as held:
            now = utcnow()
            first_look = context["ti"].get_first_reschedule_date(context) or now
            waited = now - first_look
            if waited >= cluster.lease.wait:
                error = LeaseWaitExhausted(cluster.id, held.record, waited, now)
                raise AirflowFailException(str(error)) from error
            self.log.info(
                "%s; waited %ds of %ds (lease.wait)",
                held,
                waited.total_seconds(),
                cluster.lease.wait.total_seconds(),
            )
            return False
        except Refusal as exc:  # an unreadable lease object: a person must look
            raise AirflowFailException(str(exc)) from exc
        self.log.info("cluster %s: lease held by %s (%s)", cluster.id, holder.describe(), lease.location)
        clean_stale_uploads(lease)
        return PokeReturnValue(is_done=True, xcom_value=holder.as_dict())
