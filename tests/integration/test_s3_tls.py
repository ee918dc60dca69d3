"""S3 over TLS with verification (verify_tls = true, the default): helpers/faultproxy.py serves HTTPS
with a self-signed certificate for 127.0.0.1 in front of Swift s3api. pgvault trusts it through
`ca_file` (a PEM file or a hashed directory), loads those certificates once per process however many
connections it opens (common/storage/s3/tls_trust.h), and refuses the server, storing nothing, when the
certificate is not trusted or ca_file cannot be loaded."""

from __future__ import annotations

import subprocess

from conftest import fetch, push
from helpers.faultproxy import FaultProxy
from helpers.proc import chown_to
from helpers.repo import Repo

LOADED = "tls: trusted certificates from"


def certificate(workspace):
    d = workspace.mkdir("tls", mode=0o755)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    chown_to(d, recursive=True)
    return cert, key


def debug(repo):
    return f"PGVAULT_LOG_LEVEL=debug {repo.tool('wal-push')} --config {repo.config_path}"


def test_a_trusted_server_is_verified_with_one_load_of_the_certificates(workspace, s3_server, primary, recovery_dir):
    cert, key = certificate(workspace)
    with FaultProxy(s3_server.port, tls=(str(cert), str(key))) as proxy:
        repo = Repo(workspace, "s3", s3=s3_server)
        repo.update({"repository": {"endpoint": proxy.endpoint, "ca_file": str(cert)}, "push": {"parallel": 1}})
        first, second = primary.segments[:2]
        r = primary.run(["sh", "-c", f"{debug(repo)} pg_wal/{first}"], cwd=primary.datadir)
        assert r.rc == 0, r.stderr
        # The proxy closes every connection after one answer, so each request was a new TLS connection;
        # the certificates were read once for all of them.
        assert proxy.handshakes >= 3, proxy.log
        assert r.stderr.count(LOADED) == 1, r.stderr
        r = fetch(primary, repo, first, "pg_wal/RECOVERYXLOG", recovery_dir)
        assert r.rc == 0, r.stderr
        assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == (primary.datadir / "pg_wal" / first).read_bytes()

        # ca_file may name a directory of hashed certificates (`openssl rehash`), like the system's.
        hashed = workspace.mkdir("hashed", mode=0o755)
        (hashed / "local.pem").write_bytes(cert.read_bytes())
        subprocess.run(["openssl", "rehash", str(hashed)], check=True, capture_output=True)
        chown_to(hashed, recursive=True)
        repo.update({"repository": {"ca_file": str(hashed)}})
        r = primary.run(["sh", "-c", f"{debug(repo)} pg_wal/{second}"], cwd=primary.datadir)
        assert r.rc == 0, r.stderr
        assert f"{LOADED} directory {hashed}" in r.stderr, r.stderr


def test_an_untrusted_server_or_an_unloadable_ca_file_stores_nothing(workspace, s3_server, primary):
    cert, key = certificate(workspace)
    with FaultProxy(s3_server.port, tls=(str(cert), str(key))) as proxy:
        repo = Repo(workspace, "s3", s3=s3_server)
        first = primary.segments[0]
        # The system's certificates do not include this self-signed one.
        repo.update({"repository": {"endpoint": proxy.endpoint}, "push": {"parallel": 1}})
        r = push(primary, repo, f"pg_wal/{first}")
        assert r.rc == 2, r.stderr
        assert "tls" in r.stderr and "certificate" in r.stderr.lower(), r.stderr
        assert proxy.log == [], proxy.log  # refused at the handshake: no request reached the store

        missing = workspace.path("no-such-ca.pem")
        repo.update({"repository": {"ca_file": str(missing)}})
        r = push(primary, repo, f"pg_wal/{first}")
        assert r.rc == 2, r.stderr
        assert f"ca_file {missing}: cannot load trusted certificates" in r.stderr, r.stderr

        empty = workspace.mkdir("empty-ca-dir", mode=0o755)
        repo.update({"repository": {"ca_file": str(empty)}})
        r = push(primary, repo, f"pg_wal/{first}")
        assert r.rc == 2, r.stderr
        assert f"ca_file {empty}: a directory without hashed certificates" in r.stderr, r.stderr
        assert proxy.log == [] and repo.keys("wal/") == [], (proxy.log, repo.keys("wal/"))
