"""podman as this machine runs it (as root, runc, host network, bounded ulimits: crun refuses this host's
cgroup setup), for the container test: building docker/Dockerfile, running and removing containers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from debian import REPO_ROOT, sh

GLOBAL = ["podman", "--runtime", "runc"]
LIMITS = ["--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = os.environ.get("PGVAULT_IMAGE", "localhost/pgvault:test")


def image_ccache_dir() -> str:
    """The ccache directory lent to the image's build stage ($PGVAULT_IMAGE_CCACHE): kept on the machine,
    so a rebuild after a source change compiles only what changed."""
    return os.environ.get("PGVAULT_IMAGE_CCACHE", "/var/cache/pgvault/ccache-image")


def build_image(deb: Path | None = None) -> float:
    """The base image (scripts/build-base-image.sh), then docker/Dockerfile; returns the seconds taken.
    With `deb` (a path inside the repository, the build context) the image installs that package
    (DEB_STAGE=prebuilt: the compile stage does not run); without, the build stage compiles the tree."""
    started = time.monotonic()
    sh(str(REPO_ROOT / "scripts/build-base-image.sh"), timeout=900)
    if deb is not None:
        source = ["--build-arg", "DEB_STAGE=prebuilt", "--build-arg", f"PGVAULT_DEB={deb.relative_to(REPO_ROOT)}"]
    else:
        ccache = image_ccache_dir()
        Path(ccache).mkdir(parents=True, exist_ok=True)
        source = ["--volume", f"{ccache}:/ccache"]
    sh(*GLOBAL, "build", *LIMITS, "--format", "docker", "--ignorefile",
       str(REPO_ROOT / "docker/Dockerfile.dockerignore"), *source,
       "-f", str(REPO_ROOT / "docker/Dockerfile"), "-t", IMAGE, str(REPO_ROOT), timeout=1800)
    return time.monotonic() - started


def run(*args: str, timeout: float = 300, check: bool = True) -> str:
    """podman run --rm with the machine's options; args are the run options, the image and the command.
    Returns the command's stdout only: podman's own messages on stderr (e.g. that it cannot reach systemd
    to schedule the image's health check, on a host without systemd) must not mix into the output parsed."""
    cmd = [*GLOBAL, "run", "--rm", *LIMITS, *args]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return res.stdout


def start(name: str, *args: str) -> None:
    sh(*GLOBAL, "run", "-d", "--name", name, *LIMITS, *args)


def exec_(name: str, *cmd: str, timeout: float = 300, check: bool = True) -> str:
    return sh(*GLOBAL, "exec", name, *cmd, timeout=timeout, check=check)


def logs(name: str) -> str:
    return sh(*GLOBAL, "logs", name, check=False)


def remove(name: str) -> None:
    subprocess.run([*GLOBAL, "rm", "-f", "-t", "5", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
