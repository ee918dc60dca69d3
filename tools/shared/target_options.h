// The recovery target flags of pitr-prepare and restore-drill (one definition for both tools).
#pragma once

#include <CLI/CLI.hpp>

#include "common/restore/pitr_options.h"

namespace pgvault {

// --target-time, --target-lsn, --target-xid, --target-name, --target: at most one of them.
inline void add_target_options(CLI::App& app, TargetFlags& t) {
  auto* g = app.add_option_group("target", "recovery target (at most one; default: latest)");
  g->add_option("--target-time", t.time, "recover to this time; a time zone is required (2026-11-21 16:41:00+00)");
  g->add_option("--target-lsn", t.lsn, "recover to this WAL location (e.g. 0/5000060)");
  g->add_option("--target-xid", t.xid, "recover to the commit of this transaction id (decimal, no leading zero)");
  g->add_option("--target-name", t.name, "recover to this restore point (pg_create_restore_point)");
  g->add_option("--target", t.special, "immediate (end of the backup) or latest")
      ->check(CLI::IsMember({"immediate", "latest"}));
  g->require_option(0, 1);
}

}  // namespace pgvault
