#!/usr/bin/env python3
"""The holding upstream of bench/matrix.sh's in-flight memory cell: an HTTP/1.1 keep-alive
server on 127.0.0.1:PORT that answers a request whose path starts with /hold only after
HOLD_SECONDS (so the proxy in front keeps it in flight), answers /count at once with the
number of requests it holds right now, and anything else at once with "ok\n".

    matrix_hold.py PORT HOLD_SECONDS
"""
import asyncio
import sys

held = 0


async def serve(reader, writer):
    global held
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split()
            path = line[1].decode("latin1") if len(line) > 1 else "/"
            length, close = 0, False
            for h in head.split(b"\r\n")[1:]:
                h = h.lower()
                if h.startswith(b"content-length:"):
                    length = int(h.split(b":", 1)[1])
                elif h.startswith(b"connection:") and b"close" in h:
                    close = True
            if length:
                await reader.readexactly(length)
            if path.startswith("/hold"):
                held += 1
                try:
                    await asyncio.sleep(HOLD)
                finally:
                    held -= 1
                body = b"held\n"
            elif path.startswith("/count"):
                body = f"{held}\n".encode()
            else:
                body = b"ok\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()


PORT, HOLD = int(sys.argv[1]), float(sys.argv[2])
asyncio.run(main())
