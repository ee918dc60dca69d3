// What the two ways of composing a chain's files share (chain_write.cpp: backup by backup, newest
// first; chain_pipe.cpp: one file's pieces pipelined): per file of the plan, its BlockCover while it is
// composed and whether it was created and finished; the counters; where each bundle's files end.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/errors.h"
#include "common/repo/block_diff.h"
#include "common/repo/bundle_split.h"
#include "common/restore/chain_compose.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

struct ChainCounters {
  std::atomic<std::uint64_t> files{0};
  std::atomic<std::uint64_t> bytes{0};  // sizes of the files completed
  std::atomic<std::uint64_t> read{0};   // bytes of pieces processed (progress)
};

// A file's slots are touched by one task at a time (one piece per backup, backups one after the other;
// or the one task that pipelines all its pieces).
struct ChainState {
  const ChainPieces& p;
  std::vector<std::unique_ptr<BlockCover>> covers;
  std::vector<char> created, done;
  std::vector<char> piped;  // composed by chain_pipe.cpp: the backup-by-backup passes skip it
  std::vector<std::map<std::uint64_t, std::uint64_t>> ends;  // per backup: where each bundle's last file ends
  ChainCounters n;
  explicit ChainState(const ChainPieces& pieces);
};

// The checks of a bundle's bounds every chain visitor makes: no bytes past the manifest's files, none
// missing inside a file.
class ChainVisitor : public BundleVisitor {
 public:
  void attach(const BundleSplitter& s, std::uint64_t bundle_end) {
    splitter_ = &s;
    end_ = bundle_end;
  }
  std::string current() const { return splitter_ && splitter_->current() ? splitter_->current()->path : ""; }
  void on_extra(std::uint64_t) override;
  void on_truncated(std::uint64_t pos, const ManifestFile& f) override;

 private:
  const BundleSplitter* splitter_ = nullptr;
  std::uint64_t end_ = 0;
};

// Reads bundle `idx` of backup `k` holding `entries` into `visitor`; an error names the backup, the
// bundle and the file being read.
void read_bundle(Repository& repo, const ChainState& st, std::size_t k, std::uint64_t idx,
                 std::vector<const ManifestFile*> entries, ChainVisitor& visitor);

// A block-diff piece's header against its manifest entry (file_blocks x block_size = its size) and, for
// the file's newest piece, against the newest manifest's size (`target`, else nullptr).
void check_diff_header(const ManifestFile& e, const BlockDiffHeader& h, const ManifestFile* target);

// Sets the file being composed to its final length `size` (holes read as zeros until written).
void truncate_to(int fd, std::uint64_t size, const std::string& path);

// The reconstructed file's size against the newest manifest, then finish_file (mode, mtime, fsync),
// counted; the file is done.
void finish_chain_file(ChainState& st, std::size_t idx, Fd& fd, const std::string& path);

}  // namespace pgvault::restore_detail
