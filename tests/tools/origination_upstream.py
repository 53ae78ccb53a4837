#!/usr/bin/env python3
"""A real TLS upstream for tests/origination.rs (DestinationRule TLS origination).

Listens on 127.0.0.1 (a free port), terminates TLS with --cert/--key and answers every
request `200` with the SNI the client sent (`x-seen-sni`, `-` when none) and the subject
CN of the client certificate it presented (`x-client-cert`, `-` when none). With
--client-ca it REQUIRES a client certificate signed by that CA (`ssl.CERT_REQUIRED`), so a
handshake without one fails.

Prints `port N` on stdout once listening. Appends one line per event to --log:
`handshake-failed sni=S ...` or `request METHOD PATH sni=S client=C`, so a test can tell
"refused at the handshake" from "a request arrived". Exits when its stdin closes (the test
that started it is gone), so it never outlives the test.
"""

import argparse
import http.server
import os
import ssl
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", help="require a client certificate signed by this CA")
    ap.add_argument("--name", default="origination-upstream")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)

    def on_sni(sock, server_name, _ctx):
        # The SSLSocket being handshaken: remember the name for the handler.
        sock.seen_sni = server_name
        return None

    ctx.sni_callback = on_sni

    lock = threading.Lock()

    def log(line):
        with lock, open(args.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            raw = self.request
            raw.settimeout(10)
            # The handshake runs on this connection's own thread, not the accept loop.
            tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as e:
                sni = getattr(tls, "seen_sni", None) or "-"
                log(f"handshake-failed sni={sni} {type(e).__name__}: {e}")
                raise
            self.request = tls
            super().setup()

        def do_GET(self):
            sni = getattr(self.connection, "seen_sni", None) or "-"
            client = "-"
            peer = self.connection.getpeercert()
            if peer:
                for rdn in peer.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            client = v
            log(f"request {self.command} {self.path} sni={sni} client={client}")
            body = f"{args.name} sni={sni} client={client}\n".encode()
            self.send_response(200)
            self.send_header("x-seen-sni", sni)
            self.send_header("x-client-cert", client)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # failed handshakes are logged above; no tracebacks

    server = Server(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
