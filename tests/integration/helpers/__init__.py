"""Helpers for pgvault's integration tests (real PostgreSQL 15, real S3 server).

Modules:

* :mod:`helpers.proc` -- :func:`run` (commands as another user, with timeouts), postgres-owned temp
  dirs, locating/installing the pgvault executables (:func:`pgvault_bin`, :func:`install_tools`).
* :mod:`helpers.pg` -- :class:`PgCluster` (initdb, configure, start/stop by pid, psql, pgbench,
  WAL switch/archiving waits, base backups, recovery) and :class:`Workspace` (a temp dir of
  clusters, cleaned up on close).

Other servers (S3, fault-injecting proxy) live in their own modules next to these.
"""

from .pg import (PG_BINDIR, PgCluster, PgError, Workspace, conf_value, free_port, pg_bin,
                 stop_all_clusters)
from .proc import (PG_USER, TOOL_NAMES, CommandError, PgvaultTools, RunResult, accessible_by,
                   chown_to, install_tools, make_dir, make_tempdir, pgvault_bin, pid_alive,
                   remove_tree, run)

__all__ = [
    "PG_BINDIR", "PgCluster", "PgError", "Workspace", "conf_value", "free_port", "pg_bin",
    "stop_all_clusters", "PG_USER", "TOOL_NAMES", "CommandError", "PgvaultTools", "RunResult",
    "accessible_by", "chown_to", "install_tools", "make_dir", "make_tempdir", "pgvault_bin",
    "pid_alive", "remove_tree", "run",
]
