#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one request on each, reads
each answer, then holds them all open and reports how much the RSS of process PID grew per
connection (KiB). Used by bench/idle.sh and tests/idle_memory.rs.

    idle_conns.py PORT PID N [HOST]
"""
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no process {pid}")


def main():
    port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    host = sys.argv[4] if len(sys.argv) > 4 else "localhost"
    request = f"GET / HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
    time.sleep(0.3)
    base = rss_kib(pid)
    socks = []
    # One request at a time, each connection then held open: the upstream side needs a
    # connection or two, and what grows is the idle downstream connections.
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("a connection closed before its answer")
            data += chunk
        socks.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
    print(f"{(after - base) / n:.1f} {base} {after}")
    for s in socks:
        s.close()


main()
