"""What the package tests need from dpkg and apt: building the .deb with cpack, reading its control
fields, which package owns a shared library, installing and removing."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "pgvault"


def sh(*cmd: str, timeout: float = 600, check: bool = True, env: dict | None = None) -> str:
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-4000:]}")
    return res.stdout


def tool_names() -> list[str]:
    """Every tool of the source tree (tools/<name>/main.cpp), as the build globs them."""
    return sorted(p.parent.name for p in (REPO_ROOT / "tools").glob("*/main.cpp"))


def build_deb(build_dir: Path, out_dir: Path) -> Path:
    """cpack -G DEB of a configured, built build directory; returns the one .deb it wrote."""
    sh("cpack", "-G", "DEB", "--config", str(build_dir / "CPackConfig.cmake"), "-B", str(out_dir))
    debs = sorted(out_dir.glob(f"{PACKAGE}_*_amd64.deb"))
    assert len(debs) == 1, f"cpack wrote {debs} into {out_dir}"
    return debs[0]


def control_field(deb: Path, field: str) -> str:
    return sh("dpkg-deb", "--field", str(deb), field).strip()


def depends_names(depends: str) -> set[str]:
    """Package names of a Depends field ("libc6 (>= 2.34), libfoo1 | libbar1" -> {libc6, libfoo1, libbar1})."""
    names = set()
    for alternative in re.split(r"[,|]", depends):
        name = alternative.strip().split(" ", 1)[0].split(":", 1)[0]
        if name:
            names.add(name)
    return names


def shared_libraries(executable: Path) -> set[str]:
    """The resolved paths of the shared libraries `executable` links directly (its NEEDED entries, as
    ldd resolves them); an unresolved one fails."""
    needed = set(re.findall(r"NEEDED\s+(\S+)", sh("objdump", "-p", str(executable))))
    out = sh("ldd", str(executable))
    assert "not found" not in out, f"{executable}: a shared library is missing:\n{out}"
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", out, re.M))
    resolved.update((os.path.basename(p), p) for p in re.findall(r"^\s*(/\S+) \(", out, re.M))  # ld.so
    missing = needed - resolved.keys()
    assert not missing, f"ldd did not resolve {sorted(missing)} of {executable}"
    return {resolved[n] for n in needed}


def provided_names(package: str) -> set[str]:
    """The package's own name and the virtual packages it Provides."""
    out = sh("dpkg-query", "-W", "-f=${Provides}", package)
    return {package} | depends_names(out)


@functools.lru_cache(maxsize=None)
def owning_package(path: str) -> str:
    """The package that ships `path`, trying the merged-/usr aliases (/lib and /usr/lib) too."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for p in candidates:
        res = subprocess.run(["dpkg-query", "-S", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
        if res.returncode == 0:
            return res.stdout.split(":", 1)[0].strip()
    raise AssertionError(f"no package ships {path}")


def installed_version(package: str = PACKAGE) -> str | None:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", package], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    if res.returncode != 0 or not res.stdout.startswith("install ok installed"):
        return None
    return res.stdout.rsplit(" ", 1)[-1]


def package_state(package: str = PACKAGE) -> str:
    """dpkg's status word of the package: installed, config-files, not-installed."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "not-installed"


APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def apt(*args: str) -> str:
    return sh("apt-get", "-y", "-q", *args, env=APT_ENV, timeout=900)
