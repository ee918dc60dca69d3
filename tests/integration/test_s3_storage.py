"""The s3 storage backend against a real S3 implementation that verifies SigV4 (OpenStack Swift's
s3api with tempauth, started by helpers/swift.py), cross-checked with a second client (awscli).

Drives the backend through tests/tools/s3-storage-tool (exit codes: 2 not-found, 3 duplicate, 4 auth,
5 transient).
"""

import concurrent.futures
import filecmp
import os
import subprocess

import pytest

from helpers.swift import SwiftS3

TOOL = os.path.join(os.environ.get("PGVAULT_BIN", "../../build"), "s3-storage-tool")
BUCKET = "repo"
SECRET = "testing"


@pytest.fixture(scope="module")
def swift():
    with SwiftS3() as s:
        s.create_bucket(BUCKET)
        yield s


@pytest.fixture
def tool(swift):
    def run(*args, opts=None, stdin=None, check=None, prefix="t"):
        env = dict(os.environ, PGVAULT_S3_ENDPOINT=swift.endpoint, PGVAULT_S3_BUCKET=BUCKET,
                   PGVAULT_S3_PREFIX=prefix, PGVAULT_S3_ACCESS_KEY_ID=swift.access_key,
                   PGVAULT_S3_SECRET_ACCESS_KEY=swift.secret_key, PGVAULT_S3_TOTAL_TIMEOUT_S="60")
        argv = [TOOL]
        for k, v in (opts or {}).items():
            argv += ["--opt", "%s=%s" % (k, v)]
        r = subprocess.run(argv + list(args), env=env, input=stdin, capture_output=True, timeout=600)
        if check is not None:
            assert r.returncode == check, r.stderr.decode(errors="replace")
        return r
    return run


def aws(swift, *args):
    r = subprocess.run(["aws", "--endpoint-url", swift.endpoint, *args], env=swift.env(),
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


def blob(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return str(path)


ODD_KEY = "wal/0000000100000000/a b+c=d:e~f ü 日本 'q'&amp;.bin"


def test_small_round_trip_and_awscli_reads_it(swift, tool, tmp_path):
    src = blob(tmp_path / "src", 1000)
    tool("put", ODD_KEY, src, check=0)
    tool("get", ODD_KEY, str(tmp_path / "back"), check=0)
    assert filecmp.cmp(src, tmp_path / "back", shallow=False)
    aws(swift, "s3", "cp", "s3://%s/t/%s" % (BUCKET, ODD_KEY), str(tmp_path / "aws"))
    assert filecmp.cmp(src, tmp_path / "aws", shallow=False)
    out = tool("list", "wal/", check=0).stdout.decode()
    assert out.split("\t")[0] == ODD_KEY
    head = tool("head", ODD_KEY, check=0).stdout.decode().split("\t")
    assert int(head[0]) == 1000 and int(head[1]) > 1_600_000_000


def test_multipart_round_trip_awscli_and_ranges(swift, tool, tmp_path):
    size = 40 * 1024 * 1024 + 12345
    src = blob(tmp_path / "big", size)
    opts = {"part_size": 5 << 20, "multipart_threshold": 8 << 20, "upload_parallel": 3}
    tool("put", "big/object", src, opts=opts, check=0)
    # pgvault reads it in 3 MiB ranged GETs.
    tool("get", "big/object", str(tmp_path / "back"), opts={"get_chunk_size": 3 << 20}, check=0)
    assert filecmp.cmp(src, tmp_path / "back", shallow=False)
    aws(swift, "s3", "cp", "s3://%s/t/big/object" % BUCKET, str(tmp_path / "aws"))
    assert filecmp.cmp(src, tmp_path / "aws", shallow=False)
    data = open(src, "rb").read()
    for off, length in [(0, 1), (5 << 20, 100), (size - 10, 10), (size - 10, 1000), (7, 9 << 20)]:
        r = tool("get", "big/object", "-", "--offset", str(off), "--length", str(length),
                 opts={"get_chunk_size": 1 << 20}, check=0)
        assert r.stdout == data[off:off + length]
    r = tool("get", "big/object", "-", "--offset", str(size - 3), check=0)
    assert r.stdout == data[-3:]
    # Nothing left behind by the multipart upload.
    client = swift.client()
    assert not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_known_size_and_empty_object(tool, tmp_path):
    src = blob(tmp_path / "sized", 11 << 20)
    tool("put", "sized", src, "--size", opts={"part_size": 5 << 20, "multipart_threshold": 6 << 20}, check=0)
    tool("get", "sized", str(tmp_path / "back"), check=0)
    assert filecmp.cmp(src, tmp_path / "back", shallow=False)
    empty = blob(tmp_path / "empty", 0)
    tool("put", "empty", empty, check=0)
    assert tool("get", "empty", "-", check=0).stdout == b""
    assert tool("get", "empty", "-", "--offset", "0", "--length", "10", check=0).stdout == b""
    assert tool("head", "empty", check=0).stdout.startswith(b"0\t")


def test_announced_upload_is_spooled_to_an_unnamed_file(swift, tool, tmp_path):
    """A put whose size is announced (wal-push) is spooled to an O_TMPFILE file and sent from there; the
    spool directory stays empty, a missing one falls back to memory, and a body that outgrows its
    announcement moves on to a multipart upload. Every variant reads back byte for byte, also by awscli."""
    spool = tmp_path / "spool"
    spool.mkdir()
    src = blob(tmp_path / "seg", 3 << 20)
    cases = [("spooled", {"spill_dir": str(spool)}, ["--size"]),
             ("in-memory", {"spill_dir": str(tmp_path / "missing")}, ["--size"]),
             ("outgrown", {"spill_dir": str(spool), "multipart_threshold": 6 << 20, "part_size": 5 << 20},
              ["--size-is", str(1 << 20)])]
    for name, opts, flags in cases:
        data = src if name != "outgrown" else blob(tmp_path / "big", 13 << 20)
        r = tool("put", name, data, *flags, "--debug", opts=opts, check=0)
        fell_back = b"buffering in memory" in r.stderr
        assert fell_back == (name == "in-memory"), (name, r.stderr.decode(errors="replace")[-2000:])
        assert os.listdir(spool) == []
        tool("get", name, str(tmp_path / "back"), check=0)
        assert filecmp.cmp(data, tmp_path / "back", shallow=False), name
        aws(swift, "s3", "cp", "s3://%s/t/%s" % (BUCKET, name), str(tmp_path / "aws"))
        assert filecmp.cmp(data, tmp_path / "aws", shallow=False), name
    # The multipart ETag ("<md5>-<parts>") shows the outgrown upload really switched to multipart.
    etag = swift.client().head_object(Bucket=BUCKET, Key="t/outgrown")["ETag"]
    assert etag.strip('"').endswith("-3"), etag
    etag = swift.client().head_object(Bucket=BUCKET, Key="t/spooled")["ETag"]
    assert "-" not in etag, etag


def test_awscli_upload_read_by_pgvault(swift, tool, tmp_path):
    for name, size in [("aws-small", 3000), ("aws-multipart", 20 * 1024 * 1024 + 3)]:
        src = blob(tmp_path / name, size)
        aws(swift, "s3", "cp", src, "s3://%s/t/from-aws/%s" % (BUCKET, name))
        tool("get", "from-aws/" + name, str(tmp_path / (name + ".back")), check=0)
        assert filecmp.cmp(src, tmp_path / (name + ".back"), shallow=False)
    listed = tool("list", "from-aws/", check=0).stdout.decode().splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["from-aws/aws-multipart", str(20 * 1024 * 1024 + 3)],
                                                          ["from-aws/aws-small", "3000"]]


def test_list_continuation_and_batch_delete(swift, tool):
    client = swift.client()
    keys = ["many/%05d ü" % i for i in range(1105)]

    def put(k):
        client.put_object(Bucket=BUCKET, Key="t/" + k, Body=k.encode())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    out = tool("list", "many/", check=0).stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in out] == sorted(keys)
    # Delete 1105 keys in two DeleteObjects batches, plus one key that does not exist.
    tool("rm-many", stdin=("\n".join(keys + ["many/missing"]) + "\n").encode(), check=0)
    assert tool("list", "many/", check=0).stdout == b""


def test_remove_and_not_found(tool, tmp_path):
    src = blob(tmp_path / "x", 10)
    tool("put", "gone", src, check=0)
    tool("rm", "gone", check=0)
    tool("rm", "gone", check=0)  # deleting a missing key is fine
    r = tool("get", "gone", "-", check=2)
    assert b"not-found" in r.stderr and b"NoSuchKey" in r.stderr and b"s3://repo/t/gone" in r.stderr
    assert tool("head", "gone", check=2).stdout == b"missing\n"


def test_if_absent_duplicate(tool, tmp_path):
    src = blob(tmp_path / "x", 100)
    tool("put", "once", src, "--if-absent", check=0)
    r = tool("put", "once", src, "--if-absent", check=3)
    assert b"duplicate" in r.stderr
    big = blob(tmp_path / "big", 7 << 20)
    r = tool("put", "once", big, "--if-absent", opts={"part_size": 5 << 20, "multipart_threshold": 5 << 20},
             check=3)
    tool("get", "once", str(tmp_path / "back"), check=0)
    assert filecmp.cmp(src, tmp_path / "back", shallow=False)


def test_wrong_credentials_are_auth_errors(tool, tmp_path):
    r = tool("list", "", opts={"secret_access_key": "wrong"}, check=4)
    err = r.stderr.decode()
    assert "SignatureDoesNotMatch" in err and "403" in err and "s3://repo" in err
    r = tool("get", "whatever", "-", opts={"access_key_id": "nobody:none"}, check=4)
    assert "403" in r.stderr.decode()
    src = blob(tmp_path / "x", 10)
    tool("put", "denied", src, opts={"secret_access_key": "wrong"}, check=4)
    assert tool("head", "denied", check=2)


def test_abandoned_writer_leaves_nothing(swift, tool, tmp_path):
    big = blob(tmp_path / "big", 12 << 20)
    tool("put-abandon", "abandoned", big, opts={"part_size": 5 << 20, "multipart_threshold": 5 << 20}, check=0)
    tool("put-abandon", "abandoned-small", blob(tmp_path / "s", 10), check=0)
    assert tool("head", "abandoned", check=2)
    assert tool("head", "abandoned-small", check=2)
    assert not swift.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_debug_log_has_no_secret(tool, tmp_path):
    src = blob(tmp_path / "x", 10)
    r = tool("--debug", "put", "logged", src, check=0)
    r2 = tool("--debug", "get", "logged", "-", check=0)
    r3 = tool("--debug", "list", "", opts={"secret_access_key": "wrong-secret-xyz"}, check=4)
    logs = r.stderr + r2.stderr + r3.stderr
    assert b"s3 PUT" in logs  # debug lines are there...
    for secret in (SECRET.encode(), b"wrong-secret-xyz", b"Signature=", b"Credential="):
        assert secret not in logs  # ...without anything secret


def test_bad_config_is_config_error(tool):
    tool("list", "", opts={"endpoint": "ftp://127.0.0.1:1"}, check=6)
    tool("list", "", opts={"uri_style": "sideways"}, check=6)
    tool("list", "", opts={"part_size": 1024}, check=6)
