"""OpenStack Swift all-in-one with the s3api middleware, for the S3 integration tests.

Runs Debian's swift-{account,container,object,proxy}-server on 127.0.0.1 with free ports, one-replica
rings over plain directories (mount_check = false) and tempauth, all under one temporary directory, and
a memcached for the proxy, as every Swift deployment has: without it the proxy asks the account and
container servers again on every request (about 2.5x the CPU per S3 request on this store).
The S3 credentials are tempauth's: access key "test:tester", secret "testing". Swift's s3api really
verifies SigV4 (a wrong secret gets 403 SignatureDoesNotMatch); it supports multipart uploads,
DeleteObjects and ranges, but not aws-chunked uploads.

    with SwiftS3() as s3:
        s3.create_bucket("repo")
        ... s3.endpoint, s3.access_key, s3.secret_key ...

Every server is started in its own session and stopped by PID (SIGTERM, then SIGKILL); the temporary
directory is removed on stop(), also when start() fails half-way. Standalone: only the standard
library and Debian's memcached, plus botocore (python3-botocore) for create_bucket().
"""

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"

_SERVERS = ("account", "container", "object")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class SwiftS3:
    """A running Swift with s3api; start()/stop() or use as a context manager."""

    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    region = REGION

    def __init__(self, start_timeout=120.0):
        self.start_timeout = start_timeout
        self.dir = None
        self.procs = {}
        self.ports = {}
        self.port = None
        self.endpoint = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if not os.path.exists("/etc/swift/swift.conf"):
            # Swift reads its hash settings from this fixed path; the swift package ships it.
            raise RuntimeError("/etc/swift/swift.conf is missing: install Debian's swift package")
        if shutil.which("memcached") is None:
            raise RuntimeError("memcached is missing: install Debian's memcached package")
        self.dir = tempfile.mkdtemp(prefix="pgvault-swift-")
        try:
            self._configure()
            self._spawn_memcached()
            for name in _SERVERS + ("proxy",):
                self._spawn(name)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for name, proc in list(self.procs.items()):
            _stop_pid(proc)
            del self.procs[name]
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- configuration -------------------------------------------------------------------------
    def _configure(self):
        etc = os.path.join(self.dir, "etc")
        dev = os.path.join(self.dir, "srv")
        os.makedirs(etc)
        user = getpass.getuser()
        for name in _SERVERS:
            os.makedirs(os.path.join(dev, name, "d1"))
        if os.geteuid() == 0 and user != "root":
            shutil.chown(self.dir, user)
        for name in _SERVERS + ("proxy", "memcached"):
            self.ports[name] = free_port()
        self.port = self.ports["proxy"]
        self.endpoint = "http://127.0.0.1:%d" % self.port

        for name in _SERVERS:
            builder = os.path.join(etc, name + ".builder")
            run = lambda *args: subprocess.run(  # noqa: E731
                ["swift-ring-builder", builder, *args], check=False,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            r = run("create", "6", "1", "1")
            if r.returncode != 0:
                raise RuntimeError("swift-ring-builder create: " + r.stdout.decode(errors="replace"))
            r = run("add", "r1z1-127.0.0.1:%d/d1" % self.ports[name], "1")
            if r.returncode != 0:
                raise RuntimeError("swift-ring-builder add: " + r.stdout.decode(errors="replace"))
            r = run("rebalance")
            if r.returncode not in (0, 1):  # 1 = warnings (a single device)
                raise RuntimeError("swift-ring-builder rebalance: " + r.stdout.decode(errors="replace"))

        common = (
            "[DEFAULT]\n"
            "bind_ip = 127.0.0.1\n"
            "bind_port = {port}\n"
            "workers = 0\n"
            "user = {user}\n"
            "swift_dir = {etc}\n"
            "devices = {devices}\n"
            "mount_check = false\n"
            "log_name = {name}\n"
            "log_level = WARNING\n"
            "disable_fallocate = true\n"
            "fallocate_reserve = 0\n"
        )
        for name in _SERVERS:
            _write(os.path.join(etc, name + "-server.conf"),
                   common.format(port=self.ports[name], user=user, etc=etc,
                                 devices=os.path.join(dev, name), name=name)
                   + "\n[pipeline:main]\npipeline = {0}-server\n\n[app:{0}-server]\nuse = egg:swift#{0}\n"
                   .format(name))
        _write(os.path.join(etc, "proxy-server.conf"),
               common.format(port=self.port, user=user, etc=etc, devices=dev, name="proxy") + ("""
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
""").replace("{memcache_port}", str(self.ports["memcached"])))

    def _spawn_memcached(self):
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", getpass.getuser()]  # memcached refuses to run as root without -u
        log = open(os.path.join(self.dir, "memcached.log"), "wb")
        try:
            self.procs["memcached"] = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()

    def _spawn(self, name):
        conf = os.path.join(self.dir, "etc", name + "-server.conf")
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        try:
            self.procs[name] = subprocess.Popen(
                ["swift-%s-server" % name, conf, "--verbose"], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        pending = set(self.ports)
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError("swift %s-server exited with %s:\n%s"
                                       % (name, proc.returncode, self.log(name)))
            for name in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1):
                        pending.discard(name)
                except OSError:
                    pass
            if not pending:
                try:
                    with urllib.request.urlopen(self.endpoint + "/healthcheck", timeout=2) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("swift did not start within %.0f s" % self.start_timeout)
            time.sleep(0.1)

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                return f.read()[-4000:].decode(errors="replace")
        except OSError:
            return ""

    # -- S3 helpers ----------------------------------------------------------------------------
    def env(self):
        """Environment for awscli/botocore against this server."""
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key,
                   AWS_DEFAULT_REGION=self.region, AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        return env

    def client(self):
        import botocore.config
        import botocore.session
        session = botocore.session.get_session()
        return session.create_client(
            "s3", region_name=self.region, endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 10, "mode": "standard"}))

    def delete_keys(self, bucket, keys):
        """Deletes ``keys`` of ``bucket``: a multi-object delete, or one request per key where botocore
        no longer sends the Content-MD5 Swift requires for it (botocore 1.36 and later)."""
        import botocore.exceptions
        client = self.client()
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            try:
                client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in part], "Quiet": True})
            except botocore.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") != "InvalidRequest":
                    raise
                for k in part:
                    client.delete_object(Bucket=bucket, Key=k)

    def create_bucket(self, name):
        """Creates a bucket, retrying while the freshly started servers settle."""
        deadline = time.monotonic() + self.start_timeout
        client = self.client()
        while True:
            try:
                client.create_bucket(Bucket=name)
                return
            except Exception as e:  # pylint: disable=broad-except
                if "BucketAlreadyOwnedByYou" in str(e) or "BucketAlreadyExists" in str(e):
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies (killed by a timeout) so no server is
    left running even when stop() never runs. (The signal follows the thread that called start():
    keep that thread alive as long as the servers are needed, as pytest's main thread is.)"""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_pid(proc, timeout=10.0):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
