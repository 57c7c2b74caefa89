#!/usr/bin/env python3
"""A backend of the demo and test network: tells who it is over HTTP and UDP.

    backend-service.py --name b1 [--http-port 80] [--udp-port 5353]

HTTP/1.1 (keep-alive, one thread per connection), both IPv4 and IPv6 on one socket:
    GET /              -> "backend=<name>\\n"
    GET /big?bytes=N   -> N bytes (0 to 10 MiB) of a repeating 64-byte ASCII pattern, so
                          that a client can check every byte: byte i is PATTERN[i % 64]
    POST /             -> reads the body (at most 10 MiB) and answers
                          "backend=<name> received=<bytes>\n"
    any answer carries the header "X-Backend: <name>"
UDP echo, both families: each datagram is answered with b"<name>:" + payload, sent back
to its sender.

Prints "ready" on stdout once both sockets listen. SIGTERM or SIGINT stops it (exit 0).
Standard library only.
"""

import argparse
import errno
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BIG = 10 * 1024 * 1024
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"
assert len(PATTERN) == 64
CHUNK = PATTERN * 1024  # 64 KiB, a whole number of patterns


def dual_stack_socket(kind):
    """A socket of `kind` for both families: IPv6 with IPV6_V6ONLY off (IPv4 clients
    appear as ::ffff:a.b.c.d), or plain IPv4 where the host has no IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, kind)
    except OSError as e:
        if e.errno not in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            raise
        return socket.socket(socket.AF_INET, kind), "0.0.0.0"
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock, "::"


class Server(ThreadingHTTPServer):
    daemon_threads = True  # open keep-alive connections must not block the exit
    request_queue_size = 128  # tests open many connections at once

    def __init__(self, port, name, verbose=False):
        self.backend_name = name
        self.verbose = verbose
        sock, self.any_addr = dual_stack_socket(socket.SOCK_STREAM)
        self.address_family = sock.family
        sock.close()
        super().__init__((self.any_addr, port), Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a Content-Length
    server_version = "loaded-demo-backend"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.server.verbose:
            sys.stderr.write(
                "%s %s %s\n" % (self.server.backend_name, self.address_string(), format % args)
            )

    def answer(self, code, body, content_type="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.backend_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.answer(200, ("backend=%s\n" % self.server.backend_name).encode())
        elif url.path == "/big":
            self.big(parse_qs(url.query))
        else:
            self.answer(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        try:
            size = int(self.headers.get("Content-Length", ""))
            if not 0 <= size <= MAX_BIG:
                raise ValueError
        except ValueError:
            self.answer(400, b"Content-Length: 0 to %d bytes\n" % MAX_BIG)
            return
        received = 0
        while received < size:
            chunk = self.rfile.read(min(size - received, len(CHUNK)))
            if not chunk:
                break
            received += len(chunk)
        body = "backend=%s received=%d\n" % (self.server.backend_name, received)
        self.answer(200, body.encode())

    def big(self, query):
        try:
            (text,) = query.get("bytes", ["0"])
            size = int(text)
            if not 0 <= size <= MAX_BIG:
                raise ValueError
        except ValueError:
            self.answer(400, b"bytes=N: N from 0 to %d\n" % MAX_BIG)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("X-Backend", self.server.backend_name)
        self.end_headers()
        if self.command == "HEAD":
            return
        left = size
        while left > 0:
            n = min(left, len(CHUNK))
            self.wfile.write(CHUNK[:n])
            left -= n


def udp_echo(sock, name, stop):
    prefix = name.encode() + b":"
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                return
            raise
        try:
            # The reply leaves from the address the routing picks: a backend has one
            # address per family, which is the one the datagram was sent to.
            sock.sendto(prefix + data, peer)
        except OSError as e:
            sys.stderr.write("%s: udp reply to %s failed: %s\n" % (name, peer, e))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the name to answer with (e.g. b1)")
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--udp-port", type=int, default=5353)
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        http = Server(args.http_port, args.name, args.verbose)
        udp, any_addr = dual_stack_socket(socket.SOCK_DGRAM)
        udp.bind((any_addr, args.udp_port))
    except OSError as e:
        sys.stderr.write("backend-service %s: cannot listen: %s\n" % (args.name, e))
        return 1
    udp.settimeout(0.5)  # lets the loop see `stop`

    threads = [
        threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
        threading.Thread(target=udp_echo, args=(udp, args.name, stop), daemon=True),
    ]
    for t in threads:
        t.start()
    print("ready", flush=True)

    # The main thread only waits: signal handlers run here.
    while not stop.wait(0.5):
        if not all(t.is_alive() for t in threads):
            sys.stderr.write("backend-service %s: a server thread died\n" % args.name)
            http.shutdown()
            return 1
    http.shutdown()
    http.server_close()
    udp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
