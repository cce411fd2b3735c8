"""The lease on its own, on the embedded S3 (which honours If-None-Match and If-Match): two
writers racing for it, expiry and takeover, renewals that find it taken or gone, and the
guard on Data Pipeline writes. The clock is the test's."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from reconciler import emulator
from reconciler.desired.config import Environment
from reconciler.live.aws import AwsEnvironment, AwsError
from reconciler.live.lease import Lease, LeaseLost

BUCKET, KEY = "artifacts", "prod/.reconciler/lease/default.json"
URI = f"s3://{BUCKET}/{KEY}"


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def aws():
    emulator.install()  # S3's conditional writes atomic, as S3 makes them
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="testing",
                                        aws_secret_access_key="testing")
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield AwsEnvironment(Environment("prod", "config/prod.yaml", region="us-east-1"),
                             "default", session.client("datapipeline"), s3)


@pytest.fixture
def clock():
    return Clock()


def lease(aws, clock, holder: str, ttl: float = 30.0) -> Lease:
    return Lease(aws, URI, holder, ttl, clock)


def body(aws) -> dict:
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def race(racers: list[Lease]) -> list[str]:
    """Every racer acquires at once; the holders that were told they won."""
    won: list[str] = []
    start = threading.Barrier(len(racers))

    def run(racer: Lease) -> None:
        start.wait()
        if racer.acquire() is None:
            won.append(racer.holder)

    threads = [threading.Thread(target=run, args=(r,)) for r in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for racer in racers:
        racer.abandon()
    return won


@pytest.mark.parametrize("before", ["free", "expired"])
def test_of_writers_racing_for_a_lease_exactly_one_wins(aws, clock, before):
    for attempt in range(5):
        if before == "free":
            aws.s3.delete_object(Bucket=BUCKET, Key=KEY)
        else:  # a dead holder's: both standbys see it expired and take it with If-Match
            aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(
                {"holder": "dead", "expires": (clock() - timedelta(seconds=1)).isoformat(),
                 "generation": 3}).encode())
        won = race([lease(aws, clock, f"w{attempt}-{i}") for i in range(3)])
        assert len(won) == 1, won
        assert body(aws)["holder"] == won[0]
        if before == "expired":
            assert body(aws)["generation"] == 4


def test_a_held_lease_is_taken_over_only_after_it_expires(aws, clock):
    first, second = lease(aws, clock, "first"), lease(aws, clock, "second")
    assert first.acquire() is None and body(aws)["generation"] == 1
    first.abandon()  # killed: neither renewed nor released
    clock.advance(29)
    other = second.acquire()
    assert other is not None and other.holder == "first"
    clock.advance(2)
    assert second.acquire() is None
    assert (body(aws)["holder"], body(aws)["generation"]) == ("second", 2)
    second.release()
    assert datetime.fromisoformat(body(aws)["expires"]) < clock()  # released: expired


def test_a_released_lease_is_free_to_a_writer_whose_clock_is_behind(aws, clock):
    """Clocks differ between hosts: a lease given back is free at once, not when the next
    writer's clock passes the moment it was released."""
    first = lease(aws, clock, "first")
    assert first.acquire() is None
    clock.advance(20)
    first.release()
    assert body(aws)["released"] is True
    behind = Clock()  # 20 s behind the first writer's
    second = Lease(aws, URI, "second", 30.0, behind)
    assert second.acquire() is None
    assert (body(aws)["holder"], body(aws)["generation"], "released" in body(aws)) == \
        ("second", 2, False)
    second.release()


def test_a_write_conditional_on_a_stale_version_fails(aws, clock):
    """What keeps a slow writer from overwriting a lease someone else renewed meanwhile."""
    holder = lease(aws, clock, "holder")
    assert holder.acquire() is None
    stale = holder.etag
    clock.advance(1)
    assert holder.acquire() is None  # renewed: a new version
    assert holder.etag != stale
    late = lease(aws, clock, "late")
    assert late._write(clock() + timedelta(seconds=30), {"IfMatch": stale}, 5) is False
    assert late._write(clock() + timedelta(seconds=30), {"IfNoneMatch": "*"}, 5) is False
    assert body(aws)["holder"] == "holder"
    holder.abandon()


def test_a_renewal_that_finds_the_lease_taken_loses_it_and_the_guard_stops_writes(aws, clock):
    held = lease(aws, clock, "held", ttl=1.5)  # renewed every 0.5 s
    lost: list[str] = []
    held.on_lost = lost.append
    held.guard(aws.datapipeline)
    assert held.acquire() is None
    time.sleep(2)  # longer than the lease: only the renewals keep it
    held.check()
    aws.datapipeline.list_pipelines()  # a read is never guarded
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(
        {"holder": "usurper", "expires": (clock() + timedelta(hours=1)).isoformat(),
         "generation": 7}).encode())
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lost and "another writer" in lost[0]
    with pytest.raises(LeaseLost):
        held.check()
    with pytest.raises(LeaseLost):
        aws.datapipeline.create_pipeline(name="late", uniqueId="late")
    assert aws.datapipeline.list_pipelines()["pipelineIdList"] == []
    held.abandon()


def test_renewals_that_fail_stop_the_writes_before_the_lease_can_expire(aws, clock,
                                                                        monkeypatch):
    held = lease(aws, clock, "held", ttl=1.5)
    assert held.acquire() is None
    held.check()
    # the endpoint stops answering the renewals: after 80% of the lease, writes stop
    def no_answer(*_args, **_kwargs):
        raise AwsError("PutObject", "ReadTimeoutError", "no answer")

    monkeypatch.setattr(held, "_write", no_answer)
    time.sleep(1.5)
    with pytest.raises(LeaseLost, match="not renewed"):
        held.check()
    held.abandon()


def test_a_deleted_lease_object_is_taken_again(aws, clock):
    held = lease(aws, clock, "held")
    assert held.acquire() is None
    aws.s3.delete_object(Bucket=BUCKET, Key=KEY)
    assert held.acquire() is None  # If-Match finds nothing: If-None-Match takes it again
    assert (body(aws)["holder"], body(aws)["generation"]) == ("held", 2)
    held.abandon()


def test_an_unreadable_lease_is_replaced_only_if_unchanged(aws, clock):
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not json")
    taker = lease(aws, clock, "taker")
    assert taker.acquire() is None
    assert body(aws)["holder"] == "taker"
    taker.abandon()


def test_a_writers_leases_are_made_once_and_given_back_after_a_pass_unless_kept(aws, clock):
    from reconciler.live.lease import Leases

    assert Leases(enabled=False).of("prod", aws, URI, clock(), on_lost=print) is None
    command = Leases(holder="laptop", seconds=30.0, clock=clock)
    lease = command.of("prod", aws, URI, clock(), on_lost=print)
    assert lease is command.of("prod", aws, URI, clock(), on_lost=print)
    assert lease is not None and lease.acquire() is None
    command.after_pass()  # a command gives its leases back
    assert body(aws)["released"] is True and command.held == {}
    controller = Leases(holder="controller", seconds=30.0, keep=True, clock=clock)
    kept = controller.of("prod", aws, URI, clock(), on_lost=print)
    assert kept is not None and kept.acquire() is None
    controller.after_pass()  # the controller keeps them, renewing
    assert body(aws)["holder"] == "controller" and "released" not in body(aws)
    controller.release()


def test_every_lease_or_none_is_taken(aws, clock):
    from reconciler.live.lease import Leases

    staging_uri = f"s3://{BUCKET}/staging/.reconciler/lease/default.json"
    other = Leases(holder="other", seconds=30.0, clock=clock)
    taken = other.of("prod", aws, URI, clock(), on_lost=print)
    assert taken is not None and taken.acquire() is None  # another writer holds prod's
    mine = Leases(holder="mine", seconds=30.0, all_or_none=True, clock=clock)

    def lease_of(env: str, uri: str):
        return lambda: mine.of(env, aws, uri, clock(), on_lost=print)

    def unreachable():
        raise AwsError("GetObject", "RequestTimeout", "no answer", None)

    held = mine.take_every([("staging", lease_of("staging", staging_uri)),
                            ("dev", unreachable), ("prod", lease_of("prod", URI))])
    assert held is not None and held[0] == "prod" and held[1].holder == "other"
    assert mine.held == {}  # staging's, taken first, was given back
    staging = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=staging_uri.split("/", 3)[3])[
        "Body"].read())
    assert staging["holder"] == "mine" and staging["released"] is True
    other.release()
    assert mine.take_every([("staging", lease_of("staging", staging_uri)),
                            ("prod", lease_of("prod", URI))]) is None
    assert set(mine.held) == {"staging", "prod"} and body(aws)["holder"] == "mine"
    mine.release()
