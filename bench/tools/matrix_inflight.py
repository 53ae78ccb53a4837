#!/usr/bin/env python3
"""RSS per in-flight request, for bench/matrix.sh: sends N concurrent requests for /hold
through the proxy on 127.0.0.1:PORT (one connection each, opened 100 at a time) to
bench/tools/matrix_hold.py on HOLD_PORT, which keeps each in flight for its hold time;
waits until the upstream reports all N held (GET /count straight to it), reads the RSS of
process PID then, and reports (RSS during - RSS before) / N in KiB. Then it reads every
answer and counts the 2xx ones.

    matrix_inflight.py PORT PID N HOLD_PORT [WAIT_SECONDS]

Prints: KiB_per_request rss_before_kib rss_during_kib held_at_peak answered_2xx
"""
import asyncio
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no process {pid}")


async def count(hold_port):
    r, w = await asyncio.open_connection("127.0.0.1", hold_port)
    w.write(b"GET /count HTTP/1.1\r\nhost: hold\r\nconnection: close\r\n\r\n")
    await r.readuntil(b"\r\n\r\n")
    data = await asyncio.wait_for(r.readline(), 5)
    w.close()
    return int(data)


async def one(port, opened):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    opened.append(w)
    w.write(b"GET /hold HTTP/1.1\r\nhost: bench.example.com\r\n\r\n")
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60)
    w.close()
    return head[9:12] in (b"200", b"201", b"204")


async def main():
    port, pid, n, hold_port = (int(a) for a in sys.argv[1:5])
    wait = float(sys.argv[5]) if len(sys.argv) > 5 else 6.0
    await asyncio.sleep(0.3)
    before = rss_kib(pid)
    opened = []
    tasks = []
    for i in range(0, n, 100):
        tasks += [asyncio.create_task(one(port, opened)) for _ in range(min(100, n - i))]
        await asyncio.sleep(0.01)
    deadline = time.monotonic() + wait
    held = peak = 0
    during = before
    while time.monotonic() < deadline:
        held = await count(hold_port)
        if held >= peak:
            peak, during = held, rss_kib(pid)
        if held >= n:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    during = max(during, rss_kib(pid)) if held >= n else during
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = sum(1 for x in results if x is True)
    print(f"{(during - before) / n:.1f} {before} {during} {peak} {ok}")


asyncio.run(main())
