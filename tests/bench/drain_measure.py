"""Measuring helpers of the drain section (tests/bench/drain.py): CPU of a process tree through a
cgroup-v1 cpuacct group, and a counting relay for the S3 requests each tool sends."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import time
from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup/cpuacct")


# --------------------------------------------------------------------------------- CPU accounting

class CpuGroup:
    """A cgroup-v1 cpuacct group holding every process of one cluster (and what they start, detached
    or not): total CPU seconds of PostgreSQL + the archive/restore tool. None when cgroups are not
    writable here."""

    def __init__(self, name: str):
        self.path: Optional[Path] = CGROUP_ROOT / f"pgvault-bench-{name}-{os.getpid()}"
        try:
            self.path.mkdir()
        except OSError:
            self.path = None

    def adopt_tree(self, root_pid: int) -> None:
        if not self.path:
            return
        for pid in [root_pid] + descendants(root_pid):
            try:
                (self.path / "cgroup.procs").write_text(f"{pid}\n")
            except OSError:
                pass   # exited meanwhile

    def seconds(self) -> Optional[float]:
        if not self.path:
            return None
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        if not self.path:
            return
        parent = self.path.parent / "cgroup.procs"
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                parent.write_text(f"{pid}\n")
            except OSError:
                pass
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


# ------------------------------------------------------------------------------ request counting

class CountingRelay:
    """A plain TCP relay between bench.py's TLS front-end and Swift that counts connections and HTTP
    requests by method (request lines in the decrypted client stream), for the untimed diagnostic
    pass: what each tool sends per segment."""

    # No anchor: a request line may follow a body (which ends with no CRLF) in the same read.
    REQUEST = re.compile(rb"(GET|PUT|HEAD|POST|DELETE) (/[^ \r\n]*) HTTP/1\.[01]\r\n")
    SEGMENT = re.compile(rb"[0-9A-F]{24}")

    def __init__(self, backend_port: int, loop: asyncio.AbstractEventLoop):
        """Serves on ``loop``, an event loop already running in another thread (the TLS front-end's)."""
        self.backend_port = backend_port
        self.methods: collections.Counter = collections.Counter()
        self.connections = 0
        self.segments: set[bytes] = set()   # WAL names in PUT/POST/GET paths: segments moved
        self.loop = loop
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=128), loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        self.methods.clear()
        self.connections = 0
        self.segments.clear()

    async def _pipe(self, r, w, count: bool) -> None:
        tail = b""
        try:
            while True:
                data = await r.read(1 << 18)
                if not data:
                    break
                if count:
                    buf = tail + data
                    for m in self.REQUEST.finditer(buf):
                        if m.end() > len(tail):
                            self.methods[m.group(1).decode()] += 1
                            seg = self.SEGMENT.search(m.group(2))
                            if seg and m.group(1) != b"HEAD":
                                self.segments.add(seg.group(0))
                    tail = buf[-80:]
                w.write(data)
                await w.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            try:
                if count and w.can_write_eof():
                    w.write_eof()
                else:
                    w.close()
            except (OSError, RuntimeError):
                pass

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, bw, True), self._pipe(br, writer, False))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
