"""The per-cluster lease on every store kind (real servers): acquire, renew, expiry takeover, release.

Time is a hand-moved clock, never a sleep. The races (many takers at once) run on the stores that
enforce preconditions (S3 on moto, Azurite, filesystem); the GCS emulator ignores them (see
tests/kubecost_etl/storage/test_conditional.py), so there the race tests are skipped by name, and the
sequential cases still run.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from kubecost_etl.errors import ConfigError, Refusal, TransientError
from kubecost_etl.lease import (
    ClusterLease,
    Holder,
    LeaseCorrupt,
    LeaseHeld,
    LeaseLost,
    LeaseSettings,
    LeaseWaitExhausted,
    lease_key,
    parse_lease_settings,
)

TTL = timedelta(minutes=10)
ENFORCING = {"s3", "azure", "filesystem"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock():
    return Clock()


def make_lease(store, clock, cluster="prod-east"):
    return ClusterLease(store.store, cluster, LeaseSettings(ttl=TTL), clock)


def holder(dag="kubecost_etl_backup", run="scheduled__1", map_index=-1, try_number=1) -> Holder:
    return Holder(dag, run, map_index, try_number, host="worker-1", pid=42)


def raw_record(store, cluster="prod-east") -> dict:
    return json.loads(store.read_raw(lease_key(cluster)))


def test_acquire_records_the_holder_next_to_the_data(store, clock):
    lease = make_lease(store, clock)
    me = holder()

    assert lease.acquire(me) == me

    raw = raw_record(store)
    assert raw["holder"] == me.as_dict()
    assert raw["cluster_id"] == "prod-east"
    assert raw["expires_at"] == "2026-03-01T12:10:00.000000Z"
    assert Holder.from_dict(me.as_dict()) == me


def test_a_live_lease_is_held_and_names_its_holder(store, clock):
    lease = make_lease(store, clock)
    lease.acquire(holder("kubecost_etl_restore", "manual__r1"))

    with pytest.raises(LeaseHeld) as held:
        lease.acquire(holder("kubecost_etl_backup", "scheduled__b1"))

    assert isinstance(held.value, TransientError)
    assert "kubecost_etl_restore run manual__r1" in str(held.value)
    assert raw_record(store)["holder"]["run_id"] == "manual__r1"


def test_the_wait_refusal_names_the_holder():
    record_holder = holder("kubecost_etl_repair", "manual__x")
    from kubecost_etl.lease import LeaseRecord

    now = datetime(2026, 3, 1, tzinfo=UTC)
    record = LeaseRecord("a", record_holder, now, now, now + TTL)
    error = LeaseWaitExhausted("a", record, timedelta(hours=2), now)
    assert isinstance(error, Refusal)
    assert "7200s" in str(error) and "kubecost_etl_repair run manual__x" in str(error)


def test_renew_pushes_the_expiry_and_only_for_the_holder(store, clock):
    lease = make_lease(store, clock)
    me, other = holder(), holder(run="scheduled__2")
    lease.acquire(me)
    clock.advance(timedelta(minutes=8))

    lease.renew(me)
    assert raw_record(store)["expires_at"] == "2026-03-01T12:18:00.000000Z"

    with pytest.raises(LeaseLost, match="held by kubecost_etl_backup run scheduled__1"):
        lease.renew(other)


def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it(store, clock):
    lease = make_lease(store, clock)
    old, new = holder(run="scheduled__old"), holder("kubecost_etl_restore", "manual__new")
    lease.acquire(old)

    clock.advance(TTL - timedelta(seconds=1))
    with pytest.raises(LeaseHeld):
        lease.acquire(new)  # one second before expiry: still held
    clock.advance(timedelta(seconds=1))
    assert lease.acquire(new) == new

    assert raw_record(store)["holder"]["run_id"] == "manual__new"
    with pytest.raises(LeaseLost, match="manual__new"):
        lease.renew(old)
    with pytest.raises(LeaseLost):
        lease.check(old)
    assert lease.release(old).startswith("held by kubecost_etl_restore")  # never deletes another's lease
    assert raw_record(store)["holder"]["run_id"] == "manual__new"


def test_release_is_idempotent(store, clock):
    lease = make_lease(store, clock)
    me = holder()
    lease.acquire(me)

    assert lease.release(me) == "released"
    assert lease.read() is None
    assert lease.release(me) == "not held"  # a retried release after a lost answer
    assert lease.acquire(holder(run="next")).run_id == "next"


def test_a_retried_acquire_of_the_same_task_adopts_the_lease(store, clock):
    lease = make_lease(store, clock)
    first_try = holder(try_number=1)
    lease.acquire(first_try)  # its answer "lost": the task is retried with a fresh token
    second_try = holder(try_number=2)

    assert lease.acquire(second_try) == first_try  # the token recorded stays the one to use
    with pytest.raises(LeaseHeld):
        lease.acquire(holder(map_index=1))  # another mapped instance of the same run is someone else


def test_leases_of_two_clusters_are_independent(store, clock):
    make_lease(store, clock, "a").acquire(holder())
    make_lease(store, clock, "b").acquire(holder(run="other"))
    assert raw_record(store, "b")["holder"]["run_id"] == "other"


def test_an_unreadable_lease_is_refused_and_left_alone(store, clock):
    store.store.put_bytes(lease_key("prod-east"), b"{not json")
    lease = make_lease(store, clock)

    with pytest.raises(LeaseCorrupt, match="remove it by hand"):
        lease.acquire(holder())
    assert store.read_raw(lease_key("prod-east")) == b"{not json"


def _race(store, clock, takers: int) -> list:
    lease = make_lease(store, clock)
    barrier = threading.Barrier(takers)
    results: list = [None] * takers

    def take(index: int) -> None:
        me = holder(run=f"racer-{index}")
        barrier.wait()
        try:
            results[index] = lease.acquire(me)
        except LeaseHeld as exc:
            results[index] = exc

    threads = [threading.Thread(target=take, args=(i,)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_many_takers_at_once_exactly_one_wins(store, clock):
    if store.kind not in ENFORCING:
        pytest.skip("gcp-storage-emulator ignores ifGenerationMatch: a race cannot be refereed there")
    results = _race(store, clock, 6)

    winners = [r for r in results if isinstance(r, Holder)]
    assert len(winners) == 1
    assert raw_record(store)["holder"]["run_id"] == winners[0].run_id
    assert all(winners[0].run_id in str(r) for r in results if isinstance(r, LeaseHeld))


def test_many_takers_of_an_expired_lease_exactly_one_wins(store, clock):
    if store.kind not in ENFORCING:
        pytest.skip("gcp-storage-emulator ignores ifGenerationMatch: a race cannot be refereed there")
    make_lease(store, clock).acquire(holder(run="dead"))
    clock.advance(TTL)
    results = _race(store, clock, 6)

    winners = [r for r in results if isinstance(r, Holder)]
    assert len(winners) == 1
    assert raw_record(store)["holder"]["run_id"] == winners[0].run_id


def _until(condition, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_held_renews_while_the_body_runs(store):
    lease = ClusterLease(store.store, "prod-east", LeaseSettings(ttl=TTL))
    me = holder()
    lease.acquire(me)

    with lease.held(me, renew_every=timedelta(milliseconds=20)) as renewal:
        assert _until(lambda: renewal.renewals >= 2)
        renewal.check()
    assert lease.check(me).holder == me


def test_held_fails_when_the_lease_was_lost_meanwhile(store):
    lease = ClusterLease(store.store, "prod-east", LeaseSettings(ttl=TTL))
    me = holder()
    lease.acquire(me)

    with pytest.raises(LeaseLost, match="no longer holds"):
        with lease.held(me, renew_every=timedelta(hours=1)):
            store.store.delete([lease_key("prod-east")])  # an operator removed it mid-stage


def test_the_renewal_thread_notices_a_lost_lease(store):
    if store.kind not in ENFORCING:
        pytest.skip("gcp-storage-emulator ignores ifGenerationMatch: a renewal may recreate a deleted lease")
    lease = ClusterLease(store.store, "prod-east", LeaseSettings(ttl=TTL))
    me = holder()
    lease.acquire(me)

    with pytest.raises(LeaseLost, match="nobody holds it"):
        with lease.held(me, renew_every=timedelta(milliseconds=20)) as renewal:
            store.store.delete([lease_key("prod-east")])
            assert _until(lambda: renewal.lost is not None)
            with pytest.raises(LeaseLost):
                renewal.check()


def test_held_refuses_at_once_when_not_held(store):
    lease = ClusterLease(store.store, "prod-east", LeaseSettings(ttl=TTL))
    lease.acquire(holder(run="other"))
    entered = []
    with pytest.raises(LeaseLost):
        with lease.held(holder()):
            entered.append(True)
    assert entered == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, LeaseSettings()),
        ({"ttl": "15m", "wait": "1h"}, LeaseSettings(ttl=timedelta(minutes=15), wait=timedelta(hours=1))),
        (
            {"wait": 0, "poke_interval": 5},
            LeaseSettings(wait=timedelta(0), poke_interval=timedelta(seconds=5)),
        ),
    ],
)
def test_settings(raw, expected):
    assert parse_lease_settings(raw, "cluster 'a'") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ttl": "10x"}, "lease.ttl"),
        ({"ttl": "5s"}, "at least 30s"),
        ({"waits": "1h"}, "unknown key"),
        ({"wait": "١h"}, "lease.wait"),  # non-ASCII digits
        ({"wait": True}, "lease.wait"),
        ("1h", "expected a mapping"),
    ],
)
def test_bad_settings_are_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_lease_settings(raw, "cluster 'a'")


def test_renew_until_keeps_the_lease_over_work_that_runs_without_us_and_never_shortens(store, clock):
    lease = make_lease(store, clock)
    me = holder("kubecost_etl_repair", "manual__r")
    lease.acquire(me)

    lease.renew(me, until=clock.now + timedelta(hours=2))  # a repair step's deadline
    assert raw_record(store)["expires_at"] == "2026-03-01T14:00:00.000000Z"
    clock.advance(timedelta(minutes=30))
    lease.renew(me)  # an ordinary renewal does not cut it back to ttl
    assert raw_record(store)["expires_at"] == "2026-03-01T14:00:00.000000Z"
    with pytest.raises(LeaseHeld):
        lease.acquire(holder(run="scheduled__b"))  # well past ttl, still held


def test_held_renews_on_the_way_out_also_after_a_failure(store, clock):
    lease = make_lease(store, clock)
    me = holder()
    lease.acquire(me)
    clock.advance(timedelta(minutes=9))

    with pytest.raises(RuntimeError, match="stage failed"):
        with lease.held(me):
            clock.advance(timedelta(minutes=5))
            raise RuntimeError("stage failed")

    # The retry's wait starts with a whole ttl from the failure, not from the last renewal.
    assert raw_record(store)["expires_at"] == "2026-03-01T12:24:00.000000Z"
