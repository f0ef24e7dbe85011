#!/usr/bin/env python3
"""Data for the console's browser tests (scripts/console-browser.sh), written with confluent-kafka.

    seed.py data BOOTSTRAP TOPIC GROUP ODD_GROUP
        TOPIC: 3 partitions, RF 3; partition 0 holds 60 records cycling through a JSON value with
        a text key and headers, a text value, and a binary (not UTF-8) value with a null key,
        then one 6 KiB value (cut by the console); partitions 1 and 2 hold 10 text records each.
        GROUP subscribes, commits offsets 40 / 5 / 0 and leaves: an inactive (Empty) group with
        committed offsets and lag. ODD_GROUP (an id with quotes, markup and URL delimiters)
        commits one offset without joining, to test how ids are escaped.
    seed.py hold BOOTSTRAP TOPIC GROUP SECS
        A consumer in GROUP that stays a member for SECS seconds (or until SIGTERM), for the
        pages of an active group; prints "member of GROUP" once it has partitions.

Exits 0 on success; on failure prints "FAIL: reason" and exits 1.
"""

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 30


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def conf(bootstrap, **extra):
    return {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, **extra}


def create(bootstrap, topic):
    admin = AdminClient(conf(bootstrap))
    fut = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)], request_timeout=TIMEOUT)[topic]
    fut.result(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and not md.error and len(md.partitions) == 3 and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    fail(f"{topic} has no leader for every partition after {TIMEOUT} s")


def produce(bootstrap, topic):
    errors = []
    producer = Producer(conf(bootstrap, acks="all", **{"linger.ms": 5}))

    def sent(err, _msg):
        if err:
            errors.append(str(err))

    for i in range(60):
        kind = i % 3
        if kind == 0:
            value = json.dumps({"order": i, "item": "widget", "qty": i % 4 + 1, "note": "<b>not markup</b>"})
            producer.produce(topic, value.encode(), f"customer-{i % 7}".encode(), partition=0,
                             headers=[("trace-id", f"{i:08x}".encode()), ("source", b"console-seed")], on_delivery=sent)
        elif kind == 1:
            producer.produce(topic, f"order line {i}: 2 x widget <i>& co</i>".encode(), f"k{i}".encode(), partition=0, on_delivery=sent)
        else:
            producer.produce(topic, bytes([0xFF, 0x00, i, 0x80, 0xC3, 0x28]), None, partition=0, on_delivery=sent)
    producer.produce(topic, ("long value " * 600).encode(), b"long", partition=0, on_delivery=sent)
    for p in (1, 2):
        for i in range(10):
            producer.produce(topic, f"p{p} record {i}".encode(), f"k{i}".encode(), partition=p, on_delivery=sent)
    left = producer.flush(TIMEOUT)
    if left or errors:
        fail(f"{left} records not acknowledged; errors: {errors[:3]}")


def consumer(bootstrap, group, **extra):
    return Consumer(conf(bootstrap, **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                       "session.timeout.ms": 10000, **extra}))


def wait_assigned(c, topic, what):
    c.subscribe([topic])
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        c.poll(0.2)
        if c.assignment():
            return
    fail(f"{what}: no partitions assigned within {TIMEOUT} s")


def inactive_group(bootstrap, topic, group):
    c = consumer(bootstrap, group)
    wait_assigned(c, topic, group)
    offsets = [TopicPartition(topic, 0, 40), TopicPartition(topic, 1, 5), TopicPartition(topic, 2, 0)]
    for tp in c.commit(offsets=offsets, asynchronous=False):
        if tp.error:
            fail(f"commit {tp}: {tp.error}")
    c.close()


def odd_group(bootstrap, topic, group):
    c = consumer(bootstrap, group)
    for tp in c.commit(offsets=[TopicPartition(topic, 1, 3)], asynchronous=False):
        if tp.error:
            fail(f"commit {tp}: {tp.error}")
    c.close()


def hold(bootstrap, topic, group, secs):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    c = consumer(bootstrap, group, **{"client.id": "console-seed"})
    wait_assigned(c, topic, group)
    print(f"member of {group}", flush=True)
    deadline = time.monotonic() + secs
    while not stop and time.monotonic() < deadline:
        c.poll(0.5)
    c.close()


def main():
    args = sys.argv[1:]
    try:
        if len(args) == 5 and args[0] == "data":
            _, bootstrap, topic, group, odd = args
            create(bootstrap, topic)
            produce(bootstrap, topic)
            inactive_group(bootstrap, topic, group)
            odd_group(bootstrap, topic, odd)
            print(f"seeded {topic}, groups {group!r} and {odd!r}", flush=True)
        elif len(args) == 5 and args[0] == "hold":
            _, bootstrap, topic, group, secs = args
            hold(bootstrap, topic, group, float(secs))
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    except KafkaException as e:
        fail(str(e))


if __name__ == "__main__":
    main()
