"""confluent-kafka (librdkafka) compatibility check, run by scripts/compat.sh.

    compat.py admin     BOOTSTRAP TOPIC       create_topics (with configs) / describe_configs /
                                              create_partitions / delete_topics
    compat.py roundtrip BOOTSTRAP TOPIC [N]   3-partition topic; Producer (acks=all) sends N
                                              keyed records with headers; Consumer in assign
                                              mode reads them back and checks count,
                                              per-partition order and content

Progress goes to stderr. On success prints one summary line and exits 0; on any mismatch
prints "FAIL: reason" and exits 1.

No consumer group is used: confluent-kafka's Consumer refuses to start without a group.id
("group.id must be set"), so one is configured, but the consumer only ever assign()s partitions
at explicit offsets (OFFSET_BEGINNING) and never subscribes or commits
(enable.auto.commit=false, enable.auto.offset.store=false).
"""

import concurrent.futures
import os
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic

# Seconds to wait for the broker in one operation (scripts/compat.sh sets it); requests
# time out after half of it.
TIMEOUT = float(os.environ.get("COMPAT_CLIENT_TIMEOUT", "20"))
REQUEST_MS = int(TIMEOUT * 500)


class CheckFailed(Exception):
    pass


def progress(msg):
    print(f"[python] {msg}", file=sys.stderr, flush=True)


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def wait_for(what, cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}")


def result(future, what):
    try:
        return future.result(timeout=TIMEOUT)
    except KafkaException as e:
        raise CheckFailed(f"{what}: {e.args[0]}") from None
    except concurrent.futures.TimeoutError:
        raise CheckFailed(f"{what}: no answer within {TIMEOUT:.0f}s") from None
    except Exception as e:  # noqa: BLE001 - report anything with context
        raise CheckFailed(f"{what}: {type(e).__name__}: {e}") from None


def expect_error(future, code, what):
    """The admin call must fail with Kafka error `code`."""
    try:
        future.result(timeout=TIMEOUT)
    except KafkaException as e:
        got = e.args[0].code()
        check(got == code, f"{what}: error {e.args[0]}, want {KafkaError(code).name()}")
        return
    raise CheckFailed(f"{what}: succeeded, want error {KafkaError(code).name()}")


def partition_count(admin, topic):
    """Partition count with every partition led, or -1 if the topic is unknown/not ready."""
    md = admin.list_topics(topic=topic, timeout=TIMEOUT)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return -1
    if any(p.leader < 0 or p.error is not None for p in t.partitions.values()):
        return -1
    return len(t.partitions)


def topic_names(admin):
    return set(admin.list_topics(timeout=TIMEOUT).topics)


def admin_client(bootstrap):
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "sluice-compat-python-admin",
            "socket.timeout.ms": REQUEST_MS,
        }
    )


def run_admin(bootstrap, topic):
    admin = admin_client(bootstrap)
    configs = {"retention.ms": "3600000", "max.message.bytes": "2097152", "cleanup.policy": "delete"}

    progress(f"create_topics {topic} partitions=1 configs={configs}")
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)],
        operation_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    result(fs[topic], "create_topics")
    wait_for(f"topic {topic} with 1 partition in metadata", lambda: partition_count(admin, topic) == 1)
    check(topic in topic_names(admin), f"list_topics does not include {topic}")

    progress(f"describe_configs {topic}")
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    fs = admin.describe_configs([res], request_timeout=TIMEOUT)
    entries = result(fs[res], "describe_configs")
    for name, want in configs.items():
        got = entries.get(name)
        check(got is not None, f"describe_configs: no entry for {name}")
        check(got.value == want, f"describe_configs: {name}={got.value}, want {want}")
        check(
            got.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
            f"describe_configs: {name} source={got.source}, want DYNAMIC_TOPIC_CONFIG",
        )
    check(len(entries) > len(configs), f"describe_configs: only {len(entries)} entries (defaults missing)")

    progress(f"create_partitions {topic} -> 3")
    fs = admin.create_partitions([NewPartitions(topic, 3)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    result(fs[topic], "create_partitions")
    wait_for(f"topic {topic} with 3 partitions in metadata", lambda: partition_count(admin, topic) == 3)

    progress("errors: bad config value, bad topic name, duplicate topic, partition decrease")
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "banana"})
    expect_error(admin.alter_configs([bad], request_timeout=TIMEOUT)[bad], KafkaError.INVALID_CONFIG, "alter_configs")
    fs = admin.create_topics([NewTopic("bad/name", 1, 1)], request_timeout=TIMEOUT)
    expect_error(fs["bad/name"], KafkaError.TOPIC_EXCEPTION, "create_topics bad/name")
    fs = admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=TIMEOUT)
    expect_error(fs[topic], KafkaError.TOPIC_ALREADY_EXISTS, "create_topics duplicate")
    fs = admin.create_partitions([NewPartitions(topic, 2)], request_timeout=TIMEOUT)
    expect_error(fs[topic], KafkaError.INVALID_PARTITIONS, "create_partitions 3->2")

    progress(f"delete_topics {topic}")
    fs = admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    result(fs[topic], "delete_topics")
    wait_for(f"topic {topic} to disappear from list_topics", lambda: topic not in topic_names(admin))
    return (
        f"admin: create_topics(configs)/describe_configs/create_partitions(1->3)/error codes/"
        f"delete_topics ok on {topic}"
    )


def header(headers, key):
    values = [v for k, v in (headers or []) if k == key]
    check(len(values) <= 1, f"duplicate header {key}")
    return values[0].decode() if values and values[0] is not None else None


def run_roundtrip(bootstrap, topic, n):
    partitions = 3
    admin = admin_client(bootstrap)
    progress(f"create_topics {topic} partitions={partitions}")
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    result(fs[topic], "create_topics")
    wait_for(
        f"topic {topic} with {partitions} partitions in metadata",
        lambda: partition_count(admin, topic) == partitions,
    )

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "sluice-compat-python-producer",
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(TIMEOUT * 1000),
            "socket.timeout.ms": REQUEST_MS,
            # Preserve per-partition send order even if a request is retried.
            "max.in.flight.requests.per.connection": 1,
        }
    )
    delivered = {}  # seq -> (partition, offset)
    errors = []

    def on_delivery(seq):
        # Exceptions must not escape a librdkafka callback: record them instead.
        def cb(err, msg):
            if err is not None:
                errors.append(f"record {seq}: {err}")
            else:
                delivered[seq] = (msg.partition(), msg.offset())

        return cb

    progress(f"producing {n} records")
    records = []
    for i in range(n):
        key = f"key-{i % 1000}"
        value = f"value-{i}-" + "y" * (i % 97)
        records.append((key, value))
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=[("seq", str(i).encode()), ("client", b"python")],
                    on_delivery=on_delivery(i),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    check(not errors, f"{len(errors)} deliveries failed, first: {errors[:1]}")
    check(remaining == 0 and len(delivered) == n, f"only {len(delivered)} of {n} deliveries confirmed")

    expected = {}  # partition -> [(offset, seq)]
    for seq in range(n):
        p, off = delivered[seq]
        lst = expected.setdefault(p, [])
        if lst:
            check(
                off > lst[-1][0],
                f"partition {p}: record {seq} got offset {off} after record {lst[-1][1]} at {lst[-1][0]}"
                " (send order not preserved)",
            )
        lst.append((off, seq))
    check(len(expected) == partitions, f"keyed records landed in {len(expected)} partitions, want {partitions}")

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "sluice-compat-python-consumer",
            # Required by confluent-kafka even in assign mode; never used for subscribe/commit.
            "group.id": "sluice-compat-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "socket.timeout.ms": REQUEST_MS,
        }
    )
    try:
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
            lst = expected.get(p, [])
            want = lst[-1][0] + 1 if lst else 0
            check(high == want, f"partition {p}: high watermark {high}, want {want}")
        progress(f"consuming {n} records (assign, no subscribe/commit)")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        nxt = {p: 0 for p in range(partitions)}
        consumed = 0
        deadline = time.monotonic() + TIMEOUT
        while consumed < n:
            check(time.monotonic() < deadline, f"timed out after {TIMEOUT:.0f}s: consumed {consumed} of {n}")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    raise CheckFailed(f"consumer error: {msg.error()}")
                p, off = msg.partition(), msg.offset()
                where = f"partition {p} offset {off}"
                lst = expected.get(p)
                check(lst is not None, f"record from unexpected partition {p}")
                idx = nxt[p]
                check(idx < len(lst), f"{where}: extra record")
                want_off, seq = lst[idx]
                check(off == want_off, f"{where}: want offset {want_off} (record {seq}), order or gap mismatch")
                key, value = records[seq]
                got_key = msg.key().decode() if msg.key() is not None else None
                got_value = msg.value().decode() if msg.value() is not None else None
                check(got_key == key, f"{where}: key {got_key!r}, want {key!r}")
                check(got_value == value, f"{where}: value {got_value!r}, want {value!r}")
                check(header(msg.headers(), "seq") == str(seq), f"{where}: header seq mismatch, want {seq}")
                check(header(msg.headers(), "client") == "python", f"{where}: header client mismatch")
                nxt[p] = idx + 1
                consumed += 1
        extra = consumer.consume(num_messages=10, timeout=0.3)
        check(not extra, f"{len(extra)} unexpected extra records after the {n} produced")
    finally:
        consumer.close()

    progress("errors: bad config value, bad topic name, duplicate topic, partition decrease")
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "banana"})
    expect_error(admin.alter_configs([bad], request_timeout=TIMEOUT)[bad], KafkaError.INVALID_CONFIG, "alter_configs")
    fs = admin.create_topics([NewTopic("bad/name", 1, 1)], request_timeout=TIMEOUT)
    expect_error(fs["bad/name"], KafkaError.TOPIC_EXCEPTION, "create_topics bad/name")
    fs = admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=TIMEOUT)
    expect_error(fs[topic], KafkaError.TOPIC_ALREADY_EXISTS, "create_topics duplicate")
    fs = admin.create_partitions([NewPartitions(topic, 2)], request_timeout=TIMEOUT)
    expect_error(fs[topic], KafkaError.INVALID_PARTITIONS, "create_partitions 3->2")

    progress(f"delete_topics {topic}")
    fs = admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    result(fs[topic], "delete_topics (cleanup)")
    split = "/".join(str(len(expected[p])) for p in range(partitions))
    return f"roundtrip: {consumed} records ({split} over {partitions} partitions) produced and consumed back in order on {topic}"


def main(argv):
    if len(argv) < 4:
        print("usage: compat.py admin|roundtrip BOOTSTRAP TOPIC [N]", file=sys.stderr)
        return 2
    mode, bootstrap, topic = argv[1], argv[2], argv[3]
    try:
        if mode == "admin":
            summary = run_admin(bootstrap, topic)
        elif mode == "roundtrip":
            summary = run_roundtrip(bootstrap, topic, int(argv[4]) if len(argv) > 4 else 10_000)
        else:
            print(f"unknown mode {mode}", file=sys.stderr)
            return 2
    except CheckFailed as e:
        print(f"FAIL: {e}")
        return 1
    except KafkaException as e:
        err = e.args[0]
        print(f"FAIL: {err.str() if isinstance(err, KafkaError) else err}")
        return 1
    except Exception as e:  # noqa: BLE001 - one clear line for compat.sh
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
