// One large file of an incremental chain composed with its pieces pipelined (piece_merge.h): each
// piece's bundle decoded by its own thread, the blocks merged newest-wins as they arrive, so the pieces
// of the file are decoded at the same time instead of one backup after the other (the big relation
// segments were the restore's serial critical path).
//
// Taken for a composed file whose every piece is the only one read from its bundle (files larger than
// bundle_size have bundles of their own), which has at most kPipeMaxPieces pieces and none of whose
// block-diffs seems (by its length in the manifest) to list every block of its file; every other file
// goes the backup-by-backup way (chain_write.cpp), which stops reading a file's pieces as soon as the
// newer ones supplied every block. A pipelined file's pieces are all read (they start together) even
// when that guess missed.
//
// Verified as strongly as that way: each piece's bundle by its digest (the codec) and the piece by its
// CRC-32C, every block-diff's structure and length, the block sizes, the result's size. A piece's queue
// is closed only after its bundle was verified whole, and the file is finished (size, mode, mtime, fsync)
// only after every queue is closed. The first error of any piece or of the merge (writes) cancels every
// queue, every thread of the file is joined, and that error is thrown naming the backup, bundle and
// file; the file is then neither finished nor counted.
//
// Memory: per piece one bundle's decoding buffers and its queue (piece_merge.h, about 4 MiB), so at most
// kPipeMaxPieces x that per pipelined file (the runs are written straight from the queue's batches);
// threads: one per piece.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "common/base/task_group.h"
#include "common/restore/chain_state.h"

namespace pgvault::restore_detail {

inline constexpr std::size_t kPipeMaxPieces = 8;

struct PipeFile {
  std::size_t file = 0;                                          // index in ChainPieces::files
  std::vector<std::pair<std::size_t, const ManifestFile*>> pieces;  // (backup, entry), newest first
};

// The files of [lo, hi) composed by pipe_file(); marks them in st.piped.
std::vector<PipeFile> pipe_files(ChainState& st, std::size_t lo, std::size_t hi);

void pipe_file(Repository& repo, ChainState& st, const PipeFile& f, const RestoreDest& dest, const TaskGroup& group);

}  // namespace pgvault::restore_detail
