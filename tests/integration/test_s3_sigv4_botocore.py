"""Differential test of pgvault's SigV4 signer against an independent one: botocore's S3SigV4Auth
(Debian's python3-botocore). Both sign the same generated requests (odd keys with spaces, unicode, '~',
'+', '=', ':', query strings, repeated parameters, multi-space header values, a ':' in the access key,
session tokens); the canonical requests and Authorization headers must be identical.
"""

import json
import os
import random
import subprocess
from urllib.parse import quote

import pytest

botocore_auth = pytest.importorskip("botocore.auth")
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

TOOL = os.path.join(os.environ.get("PGVAULT_BIN", "../../build"), "s3-storage-tool")

KEY_CHARS = (list("abcXYZ019-_.~/ +=:%!*'()&$@,;?#[]") + ["ü", "é", "日本", "\u00a0", "😀", "\\", "^", "`",
             "{", "}", "|", '"', "<", ">"])
ACCESS_KEYS = ["AKIDEXAMPLE", "test:tester", "AK+ID/with=odd"]
SECRETS = ["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "testing", "s3cr3t with space"]


def random_text(rng, n):
    return "".join(rng.choice(KEY_CHARS) for _ in range(n))


def make_case(rng, i):
    key = random_text(rng, rng.randint(1, 40)).lstrip("/") or "k"
    bucket = rng.choice(["repo", "my-bucket", "b.dots"])
    path = "/%s/%s" % (bucket, key)
    query = []
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["prefix", "list-type", "continuation-token", "uploadId", "partNumber", "delete",
                           "uploads", "x y", "Param", "param", "a+b", "ü"])
        value = rng.choice(["", "2", random_text(rng, rng.randint(0, 12))])
        query.append([name, value])
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    body = os.urandom(rng.randint(0, 64)) if method in ("PUT", "POST") else b""
    headers = []
    if rng.random() < 0.5:
        headers.append(["Content-Type", rng.choice(["application/xml", "text/plain;  charset=utf-8"])])
    if rng.random() < 0.5:
        headers.append(["Range", "bytes=%d-%d" % (i, i + 100)])
    if rng.random() < 0.5:
        headers.append(["X-Amz-Meta-Note", "  a   b\tc  "])
    if rng.random() < 0.3:
        headers.append(["If-None-Match", "*"])
    port = rng.choice(["", ":8080", ":443"])
    host = "127.0.0.1" + port if rng.random() < 0.5 else "s3.eu-west-1.amazonaws.com" + port
    return {
        "method": method, "path": path, "query": query, "headers": headers, "body": body,
        "host": host, "region": rng.choice(["us-east-1", "eu-west-1"]),
        "access_key": rng.choice(ACCESS_KEYS), "secret_key": rng.choice(SECRETS),
        "token": rng.choice(["", "", "FQoGZXIvYXdzE//token+with/slash=="]),
        "date": "2024%02d%02dT%02d%02d%02dZ" % (rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                                               rng.randint(0, 59), rng.randint(0, 59)),
    }


def botocore_sign(case):
    qs = "&".join("%s=%s" % (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in case["query"])
    url = "http://%s%s%s" % (case["host"], quote(case["path"], safe="/~"), ("?" + qs) if qs else "")
    req = AWSRequest(method=case["method"], url=url, headers=dict(case["headers"]), data=case["body"])
    creds = Credentials(case["access_key"], case["secret_key"], case["token"] or None)
    auth = botocore_auth.S3SigV4Auth(creds, "s3", case["region"])
    req.context["timestamp"] = case["date"]
    auth._modify_request_before_signing(req)  # x-amz-date, x-amz-content-sha256, security token
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    sig = auth.signature(sts, req)
    signed = {k.lower(): v for k, v in auth.headers_to_sign(req).items()}
    auth._inject_signature_to_request(req, sig)
    return creq, req.headers["Authorization"], signed


def test_signer_matches_botocore():
    rng = random.Random(20240601)
    cases = [make_case(rng, i) for i in range(400)]
    lines = []
    expected = []
    for case in cases:
        creq, authz, signed = botocore_sign(case)
        expected.append((creq, authz))
        headers = [[k, v] for k, v in signed.items()]
        lines.append(json.dumps({
            "method": case["method"], "path": case["path"], "query": case["query"], "headers": headers,
            "payload_hash": signed["x-amz-content-sha256"], "access_key": case["access_key"],
            "secret_key": case["secret_key"], "token": case["token"], "region": case["region"],
            "service": "s3", "date": case["date"]}))
    out = subprocess.run([TOOL, "sign"], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    assert len(out) == len(cases)
    for case, line, (creq, authz) in zip(cases, out, expected):
        got = json.loads(line)
        assert got["canonical_request"] == creq, case
        assert got["authorization"] == authz, case


def test_session_token_is_signed():
    rng = random.Random(7)
    case = make_case(rng, 0)
    case["token"] = "tok/en+=="
    _, _, signed = botocore_sign(case)
    assert signed["x-amz-security-token"] == "tok/en+=="
