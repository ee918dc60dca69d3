"""A small HTTP fault-injection proxy for the S3 tests, between pgvault and the S3 server.

It listens on 127.0.0.1 (a free port), reads one HTTP/1.1 request per client connection (head plus a
Content-Length body), forwards it to the upstream on a fresh connection with "Connection: close", and
relays the answer, then closes. Faults are queued rules, each applied to the next request that matches
its method (and optional path substring); requests no rule matches pass through untouched:

    with FaultProxy(upstream_port) as proxy:
        proxy.add("PUT", "status", status=503, times=2)    # two 503 SlowDown-style answers
        proxy.add("GET", "cut_response", times=1)          # half the body, then the connection drops
        proxy.add("GET", "stall")                           # read the request, never answer
        proxy.add("PUT", "corrupt_request")                 # flip one body byte before forwarding
        proxy.add("PUT", "cut_request")                     # drop the connection mid-upload
        proxy.add("GET", "corrupt_response")                # flip one body byte of the answer
        ... proxy.endpoint ...
        proxy.log  -> [(method, path, action), ...]

With `tls=(cert_file, key_file)` it speaks HTTPS to pgvault (endpoint https://...; the upstream stays
plain HTTP); a client that refuses the certificate just ends its connection, which the log never sees.

Runs in threads of the calling process; stop() closes the listener and every open connection.
Standalone: standard library only.
"""

import socket
import ssl
import threading
import time

_REASONS = {429: ("Too Many Requests", "SlowDown"), 500: ("Internal Server Error", "InternalError"),
            503: ("Service Unavailable", "ServiceUnavailable"), 502: ("Bad Gateway", "BadGateway")}


class _Rule:
    def __init__(self, method, action, times, path, status):
        self.method, self.action, self.times, self.path, self.status = method, action, times, path, status


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", tls=None):
        self.upstream = (upstream_host, upstream_port)
        self.tls = None
        if tls is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.handshakes = 0
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conns = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.endpoint = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def add(self, method, action, times=1, path=None, status=503):
        """Queue a fault for the next `times` requests with this method (None: any)."""
        with self.lock:
            self.rules.append(_Rule(method, action, times, path, status))

    def clear(self):
        with self.lock:
            self.rules.clear()
            self.log.clear()

    def count(self, method=None, action=None):
        with self.lock:
            return sum(1 for m, _, a in self.log if (method is None or m == method)
                       and (action is None or a == action))

    # -- internals ------------------------------------------------------------------------------
    def _pick(self, method, path):
        with self.lock:
            for rule in self.rules:
                if (rule.method is None or rule.method == method) and (rule.path is None or rule.path in path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                    return rule
        return None

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            if self.tls is not None:
                client.settimeout(30)
                client = self.tls.wrap_socket(client, server_side=True)
                with self.lock:
                    self.handshakes += 1
            self._handle(client)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.conns.discard(client)
            try:
                client.close()
            except OSError:
                pass

    def _handle(self, client):
        client.settimeout(120)
        head, body_start = _read_head(client)
        if head is None:
            return
        lines = head.split(b"\r\n")
        method, path = lines[0].split(b" ")[0].decode(), lines[0].split(b" ")[1].decode()
        length = 0
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            if name.strip().lower() in (b"connection", b"keep-alive"):
                continue
            headers.append(line)
        rule = self._pick(method, path)
        action = rule.action if rule else "pass"
        with self.lock:
            self.log.append((method, path, action))

        if action == "cut_request":
            # Take part of the body, then drop the connection.
            _read_exact(client, body_start, max(1, length // 2))
            return
        body = _read_exact(client, body_start, length)
        if action == "status":
            reason, code = _REASONS.get(rule.status, ("Error", "InternalError"))
            xml = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>injected by the "
                   "fault proxy</Message></Error>" % code).encode()
            client.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n\r\n" % (rule.status, reason.encode(), len(xml)) + xml)
            return
        if action == "stall":
            while not self.stopping.is_set():
                time.sleep(0.1)
            return
        if action == "refuse":
            return
        if action == "corrupt_request" and body:
            body = _flip(body, len(body) // 2)

        up = socket.create_connection(self.upstream, timeout=120)
        with self.lock:
            self.conns.add(up)
        try:
            up.sendall(b"\r\n".join([lines[0]] + headers + [b"Connection: close", b"", b""]) + body)
            response = bytearray()
            while True:
                chunk = up.recv(1 << 16)
                if not chunk:
                    break
                response += chunk
        finally:
            with self.lock:
                self.conns.discard(up)
            up.close()
        split = response.find(b"\r\n\r\n")
        body_at = split + 4 if split >= 0 else len(response)
        if action == "cut_response":
            rest = len(response) - body_at
            client.sendall(bytes(response[:body_at + rest // 2]))
            return  # connection closes with the body half sent
        if action == "corrupt_response" and len(response) > body_at:
            response = _flip(bytes(response), body_at + (len(response) - body_at) // 2)
        client.sendall(bytes(response))


def _flip(data, pos):
    data = bytearray(data)
    data[pos] ^= 0x01
    return bytes(data)


def _read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None, b""
        buf += chunk
        if len(buf) > 1 << 20:
            return None, b""
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_exact(sock, start, n):
    buf = bytearray(start)
    while len(buf) < n:
        chunk = sock.recv(min(1 << 16, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf[:n])
