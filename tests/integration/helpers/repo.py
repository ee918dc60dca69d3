"""A pgvault repository for the integration tests, on either backend, with its config file.

The same tests run against the local-directory backend and the S3 backend (OpenStack Swift's s3api,
see helpers/swift.py): tests talk to :class:`Repo` for everything backend-specific -- the config file,
the tool command lines, and raw object access (to corrupt, truncate or delete stored objects).

Every Repo runs ``repo-init`` when it is created (as an operator sets a repository up), so tests get an
initialised repository; ``Repo(..., init=False)`` leaves the location untouched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Optional

from .proc import PG_USER, chown_to, run


def wal_key(name: str) -> str:
    """Storage key of a WAL file (docs/FORMAT.md): history files at wal/, the rest grouped by 16 hex."""
    if name.endswith(".history"):
        return f"wal/{name}"
    return f"wal/{name[:16]}/{name}"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_text(settings: Mapping[str, Mapping[str, object]]) -> str:
    """A config file's text: one ``[section]`` table per entry of ``{"section": {"key": value}}``."""
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def write_config(path: Path, settings: Mapping[str, Mapping[str, object]]) -> None:
    """Writes a pgvault.toml readable by every user and owned by postgres, in one rename: a tool that
    PostgreSQL starts while a test rewrites the config (archive_command keeps running) reads the old file
    or the new one, never the empty file an in-place rewrite shows between truncation and write (read as
    the defaults: the tool fails, but first makes its push spool at the default location)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(toml_text(settings))
    os.chmod(tmp, 0o644)
    chown_to(tmp)
    os.replace(tmp, path)


def local_dirs(workspace, name: str) -> dict[str, dict[str, object]]:
    """The settings that keep a config's local folders in the workspace, so that they go with it and each
    test starts from zero: the push and fetch spools, the owed queue and the local state ([check]
    state_dir: the last --verify, the WAL tools' counters). The tools' defaults are under
    /var/lib/pgvault or /var/tmp/pgvault-<uid>, an operator's on a developer's machine: every config a
    test writes names these (conftest.py fails the run that touches a default location)."""
    return {"push": {"spool": str(workspace.mkdir(f"{name}-push-spool")),
                     "owed_dir": str(workspace.mkdir(f"{name}-owed"))},
            "fetch": {"spool": str(workspace.mkdir(f"{name}-fetch-spool"))},
            "check": {"state_dir": str(workspace.mkdir(f"{name}-state"))}}


class Repo:
    """A repository plus the pgvault.toml that points at it.

    ``backend`` is "fs" or "s3"; for "s3", ``s3`` is a running helpers.swift.SwiftS3 server, and each
    Repo gets its own bucket. ``init`` (default True) runs ``repo-init`` with the initial settings
    (an encryption key given in ``settings`` gets its key record then; one added later by
    :meth:`update` gets it on the first write, as with any repository).
    """

    _buckets = 0

    def __init__(self, workspace, backend: str = "fs", s3=None, name: str = "repo",
                 settings: Optional[Mapping[str, Mapping[str, object]]] = None, init: bool = True):
        self.workspace = workspace
        self.backend = backend
        self.s3 = s3
        self.name = name
        self.dir = workspace.mkdir(f"{name}-conf", mode=0o755)
        self.config_path = self.dir / "pgvault.toml"
        self.path: Optional[Path] = None
        self.bucket: Optional[str] = None
        if backend == "fs":
            self.path = workspace.path(name)
            base = {"repository": {"type": "fs", "path": str(self.path)}}
        elif backend == "s3":
            assert s3 is not None, "the s3 backend needs a running S3 server"
            Repo._buckets += 1
            self.bucket = f"pgvault-{os.getpid()}-{Repo._buckets}"
            s3.create_bucket(self.bucket)
            self._client = s3.client()
            base = {"repository": {"type": "s3", "bucket": self.bucket, "endpoint": s3.endpoint,
                                   "region": s3.region, "access_key_id": s3.access_key,
                                   "secret_access_key": s3.secret_key, "uri_style": "path"}}
        else:
            raise ValueError(backend)
        base.update(local_dirs(workspace, name))  # spools, owed queue, local state: in the workspace
        self.settings: dict[str, dict[str, object]] = {k: dict(v) for k, v in base.items()}
        self.update(settings or {})
        if init:
            self.init()

    def init(self, *args: str, user: str = PG_USER, check: bool = True):
        """Run ``repo-init`` on this config as ``user`` (the user PostgreSQL runs as); returns RunResult."""
        return run(self.cmd("repo-init", *args), user=user, cwd=self.dir, check=check)

    # -- configuration ---------------------------------------------------------------------------
    def update(self, settings: Mapping[str, Mapping[str, object]]) -> "Repo":
        """Merge settings ({"section": {"key": value}}) and rewrite the config file."""
        for section, values in settings.items():
            self.settings.setdefault(section, {}).update(values)
        write_config(self.config_path, self.settings)
        return self

    def write_key(self, key_hex: str = "00112233445566778899aabbccddeeff" * 2, name: str = "key") -> Path:
        """A key file readable only by postgres."""
        p = self.dir / name
        p.write_text(key_hex + "\n")
        os.chmod(p, 0o600)
        chown_to(p)
        return p

    def tool(self, name: str) -> str:
        return self.workspace.tool(name)

    def cmd(self, tool: str, *args: str) -> list[str]:
        return [self.tool(tool), "--config", str(self.config_path), *args]

    @property
    def archive_command(self) -> str:
        return f"{self.tool('wal-push')} --config {self.config_path} %p"

    @property
    def restore_command(self) -> str:
        return f"{self.tool('wal-fetch')} --config {self.config_path} %f %p"

    # -- raw object access (bypassing pgvault) -----------------------------------------------------
    def keys(self, prefix: str = "") -> list[str]:
        if self.backend == "fs":
            out = []
            if not self.path.exists():
                return out
            for root, _, files in os.walk(self.path):
                for f in files:
                    key = os.path.relpath(os.path.join(root, f), self.path)
                    if key.startswith(prefix) and not f.startswith(".pgvault-tmp."):
                        out.append(key)
            return sorted(out)
        keys, token = [], None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            page = self._client.list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]

    def temp_files(self) -> list[str]:
        """Leftover temporary files (fs only): invisible to every tool."""
        if self.backend != "fs" or not self.path.exists():
            return []
        return [os.path.join(r, f) for r, _, fs in os.walk(self.path) for f in fs
                if f.startswith(".pgvault-tmp.")]

    def read(self, key: str) -> bytes:
        if self.backend == "fs":
            return (self.path / key).read_bytes()
        return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        if self.backend == "fs":
            p = self.path / key
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            chown_to(p)
        else:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        if self.backend == "fs":
            (self.path / key).unlink()
        else:
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def flip_byte(self, key: str, offset: int) -> None:
        data = bytearray(self.read(key))
        data[offset % len(data)] ^= 0x01
        self.write(key, bytes(data))
