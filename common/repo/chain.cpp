// resolve_chain (chain.h): walks the parents through the inventory, checking each link.
#include "common/repo/chain.h"

#include <set>
#include <sstream>

namespace pgvault {

namespace {

// The value of backup_label's line "INCREMENTAL FROM <what>: " (PostgreSQL 17+ server-side incremental
// backups: the start LSN and timeline of the backup it was taken against); "" when there is none.
std::string incremental_from(const BackupManifest& child, const std::string& what) {
  const std::string prefix = "INCREMENTAL FROM " + what + ": ";
  std::istringstream in(child.backup_label);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

// An incremental names the backup it was taken against, by its start LSN and timeline: its manifest
// records them (manifest.h; not in manifests older than that), and a server-side incremental's
// backup_label has them too (PostgreSQL 17+). The backup under the parent's label must be that one: the
// parent's blocks are what the child's were chosen against. "" when it is, or nothing names it.
std::string taken_against_problem(const BackupManifest& child, const BackupManifest& parent) {
  const std::string start = format_lsn(parent.start_lsn), tli = std::to_string(parent.timeline);
  auto problem = [&](const std::string& lsn, const std::string& timeline, const char* by) {
    return " is not the backup it was taken against (that one started at " + lsn + " on timeline " + timeline +
           ", by its " + by + "; " + parent.label + " started at " + start + " on timeline " + tli + ")";
  };
  if (child.parent_start_lsn != 0 &&
      (child.parent_start_lsn != parent.start_lsn || child.parent_timeline != parent.timeline)) {
    return problem(format_lsn(child.parent_start_lsn), std::to_string(child.parent_timeline), "manifest");
  }
  const std::string lsn = incremental_from(child, "LSN"), label_tli = incremental_from(child, "TLI");
  if ((lsn.empty() && label_tli.empty()) || (lsn == start && label_tli == tli)) return "";
  return problem(lsn, label_tli, "backup_label");
}

// Why `parent` cannot be the parent of `child` ("" when it can), and the kind of that problem.
std::string link_problem(const BackupManifest& child, const BackupManifest& parent, ErrorKind& kind) {
  const std::string link = "backup " + child.label + ": its parent " + parent.label;
  if (parent.system_identifier != child.system_identifier) {
    kind = ErrorKind::Foreign;
    return link + " is of another database system (" + std::to_string(parent.system_identifier) + ", not " +
           std::to_string(child.system_identifier) + ")";
  }
  if (parent.pg_version != child.pg_version) {
    kind = ErrorKind::Foreign;
    return link + " is of PostgreSQL " + std::to_string(parent.pg_version) + ", not " +
           std::to_string(child.pg_version);
  }
  if (parent.start_lsn >= child.start_lsn) {
    kind = ErrorKind::Corruption;
    return link + " does not start before it (" + format_lsn(parent.start_lsn) + " >= " +
           format_lsn(child.start_lsn) + ")";
  }
  if (std::string p = taken_against_problem(child, parent); !p.empty()) {
    kind = ErrorKind::Corruption;
    return link + p;
  }
  return "";
}

}  // namespace

std::string BackupChain::text() const {
  std::string out;
  for (auto it = members.rbegin(); it != members.rend(); ++it) out += (out.empty() ? "" : " <- ") + (*it)->label;
  return out;
}

BackupChain resolve_chain(const Inventory& inv, const BackupManifest& b) {
  BackupChain c;
  c.members.push_back(&b);
  std::set<std::string> seen{b.label};
  const BackupManifest* cur = &b;
  while (cur->type != "full") {
    const std::string& label = cur->parent;
    if (c.members.size() >= kMaxChainLength || seen.count(label)) {
      c.problem = "backup " + b.label + ": its chain " +
                  (seen.count(label) ? "loops back to " + label : "is longer than " + std::to_string(kMaxChainLength) + " backups");
      return c;
    }
    const BackupManifest* parent = inv.find_backup(label);
    if (!parent) {
      const bool incomplete = inv.find_incomplete(label) != nullptr;
      c.problem_kind = ErrorKind::NotFound;
      c.problem = "backup " + cur->label + ": its parent " + label +
                  (incomplete ? " is incomplete" : " does not exist") + " (chain of " + b.label + ")";
      return c;
    }
    c.problem = link_problem(*cur, *parent, c.problem_kind);
    if (!c.problem.empty()) return c;
    seen.insert(label);
    c.members.push_back(parent);
    cur = parent;
  }
  return c;
}

}  // namespace pgvault
