// An incremental backup's restore plan: its chain (common/repo/chain.h) and, for every file of the
// newest backup, the pieces it is rebuilt from (the base and the block-diffs after it), grouped by
// backup and bundle so each bundle of the chain is read at most once, and only when it holds a piece.
#include <sstream>
#include <tuple>

#include "common/base/errors.h"
#include "common/repo/chain.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace {

using FileKey = std::tuple<std::uint32_t, std::string>;  // tablespace, path
using FileIndex = std::map<FileKey, const ManifestFile*>;

FileIndex index_files(const BackupManifest& m) {
  FileIndex out;
  for (const auto& f : m.files) out.emplace(FileKey{f.tablespace, f.path}, &f);
  return out;
}

bool is_backup_label(const ManifestFile& f) { return f.tablespace == 0 && f.path == "backup_label"; }

// The pieces of the newest backup's file `f`, newest first, ending with its "full" base entry.
std::vector<std::pair<std::size_t, const ManifestFile*>> pieces_of(const std::vector<const BackupManifest*>& chain,
                                                                    const std::vector<FileIndex>& index,
                                                                    const ManifestFile& f) {
  std::vector<std::pair<std::size_t, const ManifestFile*>> out;
  std::size_t k = chain.size() - 1;
  const ManifestFile* e = &f;
  while (e->kind != FileKind::Full) {
    if (e->kind == FileKind::Blocks) out.emplace_back(k, e);
    const std::string what = "backup " + chain[k]->label + ": file " + f.path + " is stored as " +
                             std::string(file_kind_name(e->kind)) + " but ";
    if (k == 0) throw Error(ErrorKind::Corruption, what + "the backup has no parent");
    auto it = index[k - 1].find(FileKey{e->tablespace, e->path});
    if (it == index[k - 1].end()) {
      throw Error(ErrorKind::Corruption, what + "its parent " + chain[k - 1]->label + " has no such file");
    }
    e = it->second;
    --k;
  }
  out.emplace_back(k, e);
  return out;
}

void check_target(const BackupManifest& m, const ManifestFile& f, const RestoreDest& dest) {
  check_restore_path(m.label, "file", f.path, false);
  std::string name = f.path.substr(f.path.rfind('/') == std::string::npos ? 0 : f.path.rfind('/') + 1);
  if (name.rfind("INCREMENTAL.", 0) == 0) {
    throw Error(ErrorKind::Corruption, "backup " + m.label + ": file " + f.path +
                                           " is a server incremental file that was stored as it came");
  }
  if (f.tablespace != 0 && !dest.tablespace_dirs.count(f.tablespace)) {
    throw Error(ErrorKind::Corruption, "backup " + m.label + ": file " + f.path + " belongs to tablespace " +
                                           std::to_string(f.tablespace) + ", which the manifest does not list");
  }
}

}  // namespace

std::optional<std::vector<BackupManifest>> restorable_chain(const Inventory& inv, const BackupManifest& b, bool named,
                                                            std::string& refusal) {
  std::vector<BackupManifest> out;
  if (b.type == "full") return out;
  BackupChain c = resolve_chain(inv, b);
  if (!c.complete()) {
    std::string why = "backup " + b.label + " cannot be restored: " + c.problem;
    if (named) throw Error(c.problem_kind, why);
    refusal = why;
    return std::nullopt;
  }
  for (auto it = c.members.rbegin(); it + 1 != c.members.rend(); ++it) out.push_back(**it);
  return out;
}

ChainPieces plan_pieces(const std::vector<const BackupManifest*>& chain, const RestoreDest& dest) {
  ChainPieces p;
  for (const BackupManifest* m : chain) m->require_files("restore");
  p.chain = chain;
  p.reads.resize(chain.size());
  std::vector<FileIndex> index;
  for (std::size_t k = 0; k + 1 < chain.size(); ++k) index.push_back(index_files(*chain[k]));
  const BackupManifest& newest = *chain.back();
  for (const auto& f : newest.files) {
    if (skipped_file(f) || is_backup_label(f)) continue;
    check_target(newest, f, dest);
    auto pieces = pieces_of(chain, index, f);
    FilePieces fp{&f, pieces.back().first, pieces.front().first};
    for (const auto& [k, e] : pieces) {
      p.reads[k][e->bundle].push_back(Piece{e, p.files.size()});
      p.bytes += e->bundle_bytes();
    }
    p.files.push_back(fp);
  }
  return p;
}

std::string label_without_incremental_lines(const std::string& label) {
  std::istringstream in(label);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("INCREMENTAL FROM ", 0) == 0) continue;
    out += line + "\n";
  }
  if (!label.empty() && label.back() != '\n' && !out.empty()) out.pop_back();
  return out;
}

}  // namespace pgvault::restore_detail
