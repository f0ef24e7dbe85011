#!/usr/bin/env python3
"""Memory of idle client connections: start `sluice dev`, open N connections that each send one
ApiVersions request, read the answers, let them idle, and print the broker's RSS before and after.

    python3 scripts/idle-connections.py [--sluice target/release/sluice] [-n 10000]

Each connection takes a file descriptor in this process and one in the broker: N must stay
under the open-files limit (`ulimit -n`), which the script raises to its hard limit.
"""
import argparse
import re
import resource
import socket
import subprocess
import tempfile
import time


def raise_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("-n", type=int, default=10000)
    args = ap.parse_args()
    raise_nofile()
    data = tempfile.mkdtemp(prefix="idle-connections-")
    broker = subprocess.Popen(
        [args.sluice, "dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--data-dir", data, "--set", f"max.connections={args.n + 100}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=raise_nofile)
    try:
        port = None
        for line in broker.stdout:
            m = re.search(r"kafka=127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            raise SystemExit("the broker did not start")
        time.sleep(1)
        before = rss_kib(broker.pid)
        # ApiVersions v0: api key 18, version 0, correlation id 1, client id "x".
        request = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01x"
        frame = len(request).to_bytes(4, "big") + request
        conns = []
        for _ in range(args.n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(frame)
            conns.append(s)
        for s in conns:
            size = int.from_bytes(s.recv(4, socket.MSG_WAITALL), "big")
            s.recv(size, socket.MSG_WAITALL)
        time.sleep(2)
        after = rss_kib(broker.pid)
        print(f"{args.n} idle connections: broker RSS {before / 1024:.1f} MiB -> "
              f"{after / 1024:.1f} MiB ({(after - before) / args.n:.1f} KiB per connection)")
    finally:
        broker.kill()
        broker.wait()


if __name__ == "__main__":
    main()
