#!/usr/bin/env python3
"""TLS connection-rate load for bench/matrix.sh: PROCS client processes each open one TLS
connection after another to 127.0.0.1:PORT for SECONDS, send one request on it
(`GET PATH HTTP/1.1`, `Connection: close`), read the answer to EOF and close. The
handshake is FULL (no session offered) in mode `new`; in mode `resume` each process makes
one full handshake first (not counted) and then offers, on every connection, the newest
session it holds (TLS 1.3 tickets may be single-use, as rustls' are, so the one each
connection brings is the one the next offers). Every counted connection is checked:
`SSLSocket.session_reused` says whether it resumed, the status line must be 2xx, and
the negotiated version must be the one asked for.

    matrix_tls.py PORT SECONDS new|resume 1.2|1.3 [PROCS] [HOST] [PATH]

Prints one line of KEY=VALUE: conns (counted), secs, rate (conns/s), resumed, full,
ok (2xx), bad (other status), errors (failed connections), version, cipher, and
first_error when there was one. Connections are not verified (CERT_NONE): the client's
own work is kept small, the handshake signature is still checked by OpenSSL.
"""
import os
import socket
import ssl
import sys
import time


def worker(port, seconds, mode, version, host, path, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = v
    ctx.maximum_version = v
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    want = "TLSv1.3" if version == "1.3" else "TLSv1.2"
    st = dict(conns=0, resumed=0, full=0, ok=0, bad=0, errors=0, wrongversion=0)
    first_error = ""
    cipher = ""
    session = None

    def one(offer):
        nonlocal cipher
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname=host, session=offer)
        try:
            s.sendall(request)
            data = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            status = data[9:12].decode("latin1", "replace") if data.startswith(b"HTTP/1.") else "???"
            cipher = s.cipher()[0]
            return status, s.session_reused, s.version(), s.session
        finally:
            try:
                s.close()
            except OSError:
                pass

    if mode == "resume":
        try:
            _, _, _, session = one(None)
        except (OSError, ssl.SSLError) as e:
            first_error = f"priming: {e}"
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        try:
            status, reused, ver, sess = one(session if mode == "resume" else None)
        except (OSError, ssl.SSLError) as e:
            st["errors"] += 1
            if not first_error:
                first_error = f"{type(e).__name__}: {e}"
            continue
        st["conns"] += 1
        st["resumed" if reused else "full"] += 1
        st["ok" if status.startswith("2") else "bad"] += 1
        if ver != want:
            st["wrongversion"] += 1
        if mode == "resume" and sess is not None:
            session = sess
    st["secs"] = time.monotonic() - t0
    st["cipher"] = cipher
    st["first_error"] = first_error.replace(" ", "_")[:120]
    out.write(" ".join(f"{k}={v}" for k, v in st.items()) + "\n")
    out.flush()


def main():
    port, seconds, mode, version = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    procs = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    host = sys.argv[6] if len(sys.argv) > 6 else "bench.example.com"
    path = sys.argv[7] if len(sys.argv) > 7 else "/"
    assert mode in ("new", "resume") and version in ("1.2", "1.3")
    r, w = os.pipe()
    pids = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            with os.fdopen(w, "w") as out:
                worker(port, seconds, mode, version, host, path, out)
            os._exit(0)
        pids.append(pid)
    os.close(w)
    with os.fdopen(r) as f:
        lines = f.read().split("\n")
    for pid in pids:
        os.waitpid(pid, 0)
    tot = dict(conns=0, resumed=0, full=0, ok=0, bad=0, errors=0, wrongversion=0)
    secs = 0.0
    cipher = first_error = ""
    for line in lines:
        if not line.strip():
            continue
        kv = dict(x.split("=", 1) for x in line.split())
        for k in tot:
            tot[k] += int(kv[k])
        secs = max(secs, float(kv["secs"]))
        cipher = cipher or kv["cipher"]
        first_error = first_error or kv["first_error"]
    rate = tot["conns"] / secs if secs else 0
    want = "TLSv1.3" if version == "1.3" else "TLSv1.2"
    fields = dict(tot, secs=f"{secs:.2f}", rate=f"{rate:.1f}", version=want, cipher=cipher or "-")
    if first_error:
        fields["first_error"] = first_error
    print(" ".join(f"{k}={v}" for k, v in fields.items()))


main()
