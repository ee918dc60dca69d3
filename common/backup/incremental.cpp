#include "common/backup/incremental.h"

#include <spdlog/spdlog.h>

#include <map>

#include "common/base/errors.h"
#include "common/pg/wal.h"
#include "common/repo/layout.h"

namespace pgvault {

namespace {

// Why backup `b` cannot be the parent of a backup of `server` on `timeline`; "" when it can.
std::string unusable_because(const Inventory& inv, const BackupManifest& b, const ServerFacts& server,
                             std::uint32_t timeline) {
  if (b.system_identifier != server.system.system_identifier) return "it is of another database system";
  if (b.pg_version != server.version / 10000) return "it was taken of PostgreSQL " + std::to_string(b.pg_version);
  if (b.wal_segment_size != server.segment_size) return "its WAL segment size differs";
  if (b.timeline == timeline) return "";
  auto h = inv.histories.find(timeline);
  if (h == inv.histories.end() || !h->second.error.empty()) {
    return "it is on timeline " + std::to_string(b.timeline) + " and the history file of timeline " +
           std::to_string(timeline) + " is not in the repository";
  }
  for (const auto& e : h->second.entries) {
    if (e.parent != b.timeline) continue;
    if (e.switchpoint >= b.stop_lsn) return "";
    return "timeline " + std::to_string(timeline) + " left its timeline " + std::to_string(b.timeline) + " at " +
           format_lsn(e.switchpoint) + ", before the backup's stop " + format_lsn(b.stop_lsn);
  }
  return "its timeline " + std::to_string(b.timeline) + " is not on the history of the server's timeline " +
         std::to_string(timeline);
}

// "" when every ancestor of `b` is a complete backup.
std::string broken_chain(const std::map<std::string, const BackupManifest*>& by_label, const BackupManifest& b) {
  const BackupManifest* cur = &b;
  for (std::size_t depth = 0; cur->type == "incremental"; ++depth) {
    auto it = by_label.find(cur->parent);
    if (it == by_label.end() || depth > by_label.size()) return "its ancestor " + cur->parent + " is missing";
    cur = it->second;
  }
  return "";
}

}  // namespace

ParentChoice choose_parent(const Inventory& inv, const ServerFacts& server, std::uint32_t timeline, bool full_only) {
  std::map<std::string, const BackupManifest*> by_label;
  for (const auto& b : inv.backups) by_label[b.label] = &b;
  ParentChoice c;
  for (auto it = inv.backups.rbegin(); it != inv.backups.rend(); ++it) {
    if (full_only && it->type != "full") continue;  // a differential's parent is a full backup
    std::string why = unusable_because(inv, *it, server, timeline);
    if (why.empty()) why = broken_chain(by_label, *it);
    if (why.empty()) {
      c.parent = *it;
      return c;
    }
    if (c.why_none.empty()) c.why_none = "the newest backup " + it->label + " cannot be a parent: " + why;
  }
  if (c.why_none.empty()) c.why_none = std::string("the repository holds no complete ") + (full_only ? "full " : "") + "backup";
  return c;
}

namespace {

std::uint32_t server_block_size(ReplicationConnection& conn) {
  const std::string text = conn.show("block_size");
  std::uint32_t bs = 0;
  try {
    bs = static_cast<std::uint32_t>(std::stoul(text));
  } catch (const std::exception&) {
  }
  if (bs < 1024 || bs > 32768 || (bs & (bs - 1)) != 0) {
    throw Error(ErrorKind::Transient, "the server reports an invalid block_size \"" + text + "\"");
  }
  return bs;
}

// Whether server mode is possible; else logs why (or throws under no_fallback when summarize_wal is off).
bool choose_server_mode(Repository& repo, ReplicationConnection& conn, const ServerFacts& server,
                        IncrementalPlan& plan, bool no_fallback) {
  if (server.version < 170000) {
    spdlog::info("incremental backup: client-side block mode (PostgreSQL {} has no WAL summaries)", server.version_text);
    return false;
  }
  if (conn.show("summarize_wal") != "on") {
    if (no_fallback) {
      throw Error(ErrorKind::Config, "incremental backup: summarize_wal is off on the server; set summarize_wal = on "
                                     "for a server-side incremental, or drop --no-fallback for client-side block mode");
    }
    spdlog::info("incremental backup: summarize_wal is off on the server, falling back to client-side block mode");
    return false;
  }
  try {
    plan.parent_server_manifest = repo.get_text(keys::backup_server_manifest(plan.parent.label));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
    spdlog::info("incremental backup: parent {} has no stored server backup_manifest, using client-side block mode",
                 plan.parent.label);
    return false;
  }
  return true;
}

}  // namespace

std::optional<IncrementalPlan> plan_incremental(Repository& repo, ReplicationConnection& conn,
                                                const ServerFacts& server, bool no_fallback, bool differential) {
  ParentChoice choice = choose_parent(load_inventory(repo), server, server.system.timeline, differential);
  if (!choice.parent) {
    if (no_fallback) throw Error(ErrorKind::Config, "incremental backup impossible: " + choice.why_none);
    spdlog::info("no parent for an incremental backup ({}): taking a full backup", choice.why_none);
    return std::nullopt;
  }
  IncrementalPlan plan;
  plan.parent = with_files(repo, *choice.parent);  // the inventory holds the manifests' heads
  plan.base.block_size = server_block_size(conn);
  plan.base.since_lsn = plan.parent.start_lsn;
  plan.base.server_mode = choose_server_mode(repo, conn, server, plan, no_fallback);
  plan.parent.require_files("an incremental backup's parent");
  if (!plan.base.server_mode) plan.base.parent_files = ParentFiles(plan.parent.files);
  plan.parent.drop_files();  // all the backup needs of them is in parent_files
  spdlog::info("{} backup on parent {} ({} mode)", differential ? "differential" : "incremental", plan.parent.label,
               plan.mode());
  return plan;
}

}  // namespace pgvault
