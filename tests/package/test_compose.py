"""docker/compose.yaml run for real with podman-compose (Debian 12's 1.0.3): PostgreSQL archives through
wal-push into S3, the scheduled base-push service takes its backups, the health check turns healthy, and
a second container restores to a restore point from the same S3 repository with exactly the data of the
point. The encryption key and the password are the compose file's secrets, owned and moded as
docker/README.md says.

compose.yaml and pgvault.toml are copied unchanged into a temp project directory (with the .env and
secrets/ an operator makes) and run with compose-test-override.yaml on top: that file names every change
(no MinIO image here: the S3 service is the test's Swift s3api on 127.0.0.1; the host network). podman
runs as this machine needs it through podman-host-network (--podman-path).

The image is the one the container test builds (ctest runs container.image first, FIXTURES_REQUIRED, and
sets PGVAULT_IMAGE_BUILT=1); run alone with pytest, the image fixture of test_container.py builds it.
Every container, volume and network of the project, and the temp directory, are removed afterwards,
pass or fail. Needs root, podman and podman-compose (scripts/setup.sh).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import yaml

import podman
from debian import REPO_ROOT, sh
from helpers.pg import free_port
from test_container import containers, image, psql, wait_until  # noqa: F401 (fixtures)

HERE = Path(__file__).resolve().parent
OVERRIDE = HERE / "compose-test-override.yaml"
PODMAN_PATH = HERE / "podman-host-network"
PGDATA = "/var/lib/postgresql/data"
BACKUP_INTERVAL = 6             # PGVAULT_BACKUP_INTERVAL of the test: a second scheduled run within it
SECRET_MODE = 0o400             # docker/README.md: the secrets belong to the image's postgres user, 0400
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "marks")


class Project:
    """A compose project in a temp dir: compose.yaml and pgvault.toml as shipped, .env, secrets/."""

    def __init__(self, image: str, s3_endpoint: str, access_key: str, secret_key: str):
        self.dir = Path(tempfile.mkdtemp(prefix="pgvault-compose-"))
        self.name = f"pgvault-compose-{os.getpid()}"
        self.image = image
        for f in ("compose.yaml", "pgvault.toml"):
            shutil.copy(REPO_ROOT / "docker" / f, self.dir / f)
        self.declared = yaml.safe_load((self.dir / "compose.yaml").read_text())
        self.port = free_port()
        (self.dir / ".env").write_text(
            f"AWS_ENDPOINT_URL={s3_endpoint}\nAWS_ACCESS_KEY_ID={access_key}\nAWS_SECRET_ACCESS_KEY={secret_key}\n"
            f"PGVAULT_IMAGE={image}\nPGVAULT_BACKUP_INTERVAL={BACKUP_INTERVAL}\nPGPORT={self.port}\n")
        self.write_secrets()

    def write_secrets(self) -> None:
        """secrets/ as the README's commands make it, with the owner and mode compose.yaml declares."""
        d = self.dir / "secrets"
        d.mkdir()
        for entry in self.declared["x-pgvault"]["secrets"]:
            path = d / Path(self.declared["secrets"][entry["source"]]["file"]).name
            path.write_text(secrets.token_hex(32 if entry["source"] == "pgvault_key" else 16) + "\n")
            os.chown(path, int(entry["uid"]), int(entry["gid"]))
            os.chmod(path, entry["mode"])

    def compose(self, *args: str, timeout: float = 300) -> str:
        cmd = ["podman-compose", "--podman-path", str(PODMAN_PATH), "-p", self.name,
               "-f", "compose.yaml", "-f", str(OVERRIDE), *args]
        res = subprocess.run(cmd, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-4000:]}")
        return res.stdout

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, volumes and network still in podman's store."""
        label = f"label=io.podman.compose.project={self.name}"
        found = {"containers": sh(*podman.GLOBAL, "ps", "-a", "-q", "--filter", label).split(),
                 "volumes": sh(*podman.GLOBAL, "volume", "ls", "-q", "--filter", label).split(),
                 "networks": sh(*podman.GLOBAL, "network", "ls", "-q", "--filter", f"name=^{self.name}_").split()}
        return {k: v for k, v in found.items() if v}

    def remove(self) -> None:
        """compose down -v, then whatever it leaves (podman-compose 1.0.3 keeps the project network)."""
        try:
            self.compose("down", "-v", timeout=120)
        except Exception as e:  # pylint: disable=broad-except
            print(f"compose down failed: {e}")
        left = self.leftovers()
        for kind, args in (("containers", ["rm", "-f", "-t", "2"]), ("volumes", ["volume", "rm", "-f"]),
                           ("networks", ["network", "rm", "-f"])):
            for item in left.get(kind, []):
                subprocess.run([*podman.GLOBAL, *args, item], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def pgvault_args(self) -> list[str]:
        """podman run options giving a container the project's configuration, key, S3 settings."""
        return ["--env-file", str(self.dir / ".env"), "--add-host", "s3:127.0.0.1",
                "-v", f"{self.dir / 'pgvault.toml'}:/etc/pgvault/pgvault.toml:ro",
                "-v", f"{self.dir / 'secrets/pgvault.key'}:/run/secrets/pgvault.key:ro"]


@pytest.fixture(scope="module")
def compose_image(request):
    if shutil.which("podman-compose") is None or os.geteuid() != 0:
        pytest.skip("needs root and podman-compose (scripts/setup.sh)")
    if os.environ.get("PGVAULT_IMAGE_BUILT") == "1":
        assert subprocess.run(["podman", "image", "exists", podman.IMAGE]).returncode == 0, \
            f"PGVAULT_IMAGE_BUILT=1 but there is no image {podman.IMAGE} (container.image builds it)"
        return podman.IMAGE
    return request.getfixturevalue("image")


REPOSITORY = tomllib.loads((REPO_ROOT / "docker/pgvault.toml").read_text())["repository"]


@pytest.fixture
def s3_server():
    from helpers.swift import SwiftS3
    with SwiftS3() as server:
        server.create_bucket(REPOSITORY["bucket"])
        yield server


@pytest.fixture
def project(compose_image, s3_server):
    endpoint = s3_server.endpoint.replace("127.0.0.1", "s3")
    p = Project(compose_image, endpoint, s3_server.access_key, s3_server.secret_key)
    try:
        yield p
    finally:
        p.remove()


def state(name: str) -> dict[str, str]:
    """Row count and digest of every table of the test, in a stable order."""
    return {t: psql(name, f"SELECT count(*) || ' ' || coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '') "
                          f"FROM {t} r") for t in TABLES}


def stored_wal(s3_server, segment: str) -> set[str]:
    """The object names of WAL segments in the bucket, next to `segment` (docs/FORMAT.md: wal/<16>/<24>)."""
    prefix = f"{REPOSITORY['prefix']}/wal/{segment[:16]}/"
    listing = s3_server.client().list_objects_v2(Bucket=REPOSITORY["bucket"], Prefix=prefix)
    return {o["Key"][len(prefix):] for o in listing.get("Contents", [])}


def archive_info(name: str) -> dict:
    return json.loads(podman.exec_(name, "archive-info", "--json", timeout=120))


def health_status(name: str) -> str:
    state_ = json.loads(sh(*podman.GLOBAL, "inspect", name))[0]["State"]
    return (state_.get("Health") or state_.get("Healthcheck") or {}).get("Status", "")


def check_secrets(p: Project, name: str) -> None:
    """The secrets inside the container: the image's postgres user's, mode 0400; the one compose.yaml
    declares for Swarm too."""
    uid, gid = podman.exec_(name, "id", "-u").strip(), podman.exec_(name, "id", "-g").strip()
    for entry in p.declared["x-pgvault"]["secrets"]:
        assert (entry["uid"], entry["gid"], entry["mode"]) == (uid, gid, SECRET_MODE), entry
        seen = podman.exec_(name, "stat", "-c", "%u:%g %a", f"/run/secrets/{entry['target']}").strip()
        assert seen == f"{uid}:{gid} {SECRET_MODE:o}", (entry["target"], seen)


def write_load(name: str) -> None:
    podman.exec_(name, "pgbench", "-i", "-q", "-s", "1", "postgres", timeout=300)
    psql(name, "CREATE TABLE marks(id serial PRIMARY KEY, step text)")
    podman.exec_(name, "pgbench", "-n", "-c", "2", "-t", "200", "postgres", timeout=300)


def wait_for_scheduled_backups(p: Project, count: int) -> None:
    """Waits until the base-push service has `count` complete backups in the repository."""
    pg = p.container("postgres")
    wait_until(f"{count} backups by the base-push service", lambda: len(archive_info(pg)["backups"]) >= count,
               timeout=BACKUP_INTERVAL * count + 120, name=p.container("base-push"))


def restore_point_and_more(name: str) -> tuple[dict[str, str], str]:
    """Writes, sets the restore point, keeps its state, writes more; returns the state and the segment
    that must reach the repository (switched out after the later writes)."""
    podman.exec_(name, "pgbench", "-n", "-c", "2", "-t", "100", "postgres", timeout=300)
    psql(name, "INSERT INTO marks(step) VALUES ('after-backups')")
    expected = state(name)
    psql(name, "SELECT pg_create_restore_point('compose_point')")
    psql(name, "INSERT INTO marks(step) VALUES ('after-point'); DELETE FROM pgbench_accounts WHERE aid % 3 = 0")
    return expected, psql(name, "SELECT pg_walfile_name(pg_switch_wal())")


def restore(p: Project, containers, target_dir: Path) -> tuple[str, dict]:
    """pitr-prepare to the restore point from the S3 repository in one container, then the server in a
    second one; returns the second container's name once recovery has ended, and pitr-prepare's report."""
    uid = int(podman.exec_(p.container("postgres"), "id", "-u"))
    gid = int(podman.exec_(p.container("postgres"), "id", "-g"))
    target_dir.mkdir(mode=0o700)
    os.chown(target_dir, uid, gid)
    mounts = [*p.pgvault_args(), "-v", f"{target_dir}:{PGDATA}"]
    prepared = json.loads(podman.run(*mounts, p.image, "pitr-prepare", "--pgdata", PGDATA, "--json",
                                     "--target-name", "compose_point", timeout=600))
    restored = containers("compose-restored")
    podman.start(restored, *mounts, "-e", f"PGPORT={free_port()}", p.image)
    wait_until("recovery to end", lambda: psql(restored, "SELECT pg_is_in_recovery()", check=False) == "f",
               timeout=300, name=restored)
    return restored, prepared


def stop_scheduler(name: str) -> None:
    """docker stop ends the base-push schedule at once and cleanly (its TERM trap), not by SIGKILL after
    the stop timeout."""
    began = time.monotonic()
    sh(*podman.GLOBAL, "stop", "-t", "30", name)
    took = time.monotonic() - began
    code = json.loads(sh(*podman.GLOBAL, "inspect", name))[0]["State"]["ExitCode"]
    assert code == 0 and took < 20, (code, took, podman.logs(name)[-2000:])


def test_compose_archives_to_s3_backs_up_on_schedule_and_restores(project, containers, s3_server):
    started = time.monotonic()
    p = project
    p.compose("up", "-d", "--no-build")
    assert sorted(p.leftovers()) == ["containers", "networks", "volumes"]   # what the end must remove
    pg, scheduler = p.container("postgres"), p.container("base-push")
    wait_until("the server", lambda: "accepting" in podman.exec_(pg, "pg_isready", check=False), name=pg)
    check_secrets(p, pg)
    assert psql(pg, "SHOW archive_command") == "wal-push %p"
    write_load(pg)
    wait_for_scheduled_backups(p, 2)
    expected, last = restore_point_and_more(pg)
    wait_until(f"{last} to be archived", lambda: psql(
        pg, f"SELECT coalesce(last_archived_wal >= '{last}', false) FROM pg_stat_archiver") == "t", name=pg)
    assert psql(pg, "SELECT failed_count FROM pg_stat_archiver") == "0"

    assert last in stored_wal(s3_server, last)
    info = archive_info(pg)
    assert info["wal"] and info["wal"][-1]["last"] >= last and not info["wal"][-1]["gaps"], info["wal"]
    assert all(b["stop_time"] for b in info["backups"]), info["backups"]
    log = podman.logs(scheduler)
    assert "failed" not in log, log
    health = sh(*podman.GLOBAL, "healthcheck", "run", pg, check=False)
    assert health.strip() in ("", "healthy") and health_status(pg) == "healthy", (health, podman.logs(pg)[-3000:])

    restored, prepared = restore(p, containers, p.dir / "restored")
    assert prepared["backup"] in {b["label"] for b in info["backups"]}, prepared
    assert state(restored) == expected
    podman.remove(restored)

    stop_scheduler(scheduler)
    p.compose("down", "-v", timeout=120)
    sh(*podman.GLOBAL, "network", "rm", "-f", f"{p.name}_default", check=False)
    assert p.leftovers() == {}
    print(f"compose test: {time.monotonic() - started:.0f}s")
