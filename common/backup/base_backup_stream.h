// The BASE_BACKUP replication command (PostgreSQL 15 syntax, TARGET 'client', WAIT false,
// TABLESPACE_MAP, a backup manifest with CRC-32C checksums) and its CopyData stream: the archives go
// to a TarReceiver, the server's backup_manifest is kept, progress messages move the progress line.
#pragma once

#include <cstdint>
#include <string>

#include "common/backup/tar_receiver.h"
#include "common/base/progress.h"
#include "common/pg/pgconn.h"
#include "common/repo/manifest.h"

namespace pgvault {

struct StreamedBackup {
  std::string server_manifest;  // as the server sent it ("" when it sent none)
  std::uint64_t stop_lsn = 0;
  std::uint32_t stop_timeline = 0;
};

// A server-side incremental backup (PostgreSQL 17+): UPLOAD_MANIFEST sends the parent's backup_manifest
// before BASE_BACKUP asks for INCREMENTAL.
struct IncrementalRequest {
  std::string parent_label;
  std::string parent_manifest;
};

// Runs BASE_BACKUP labelled "pgvault <label>" with `checkpoint` ("fast" or "spread") to its end. Sets
// m.start_lsn, m.timeline and m.tablespaces; the files reach `receiver`. Throws Transient for anything
// the server sends out of protocol, and what the connection, the receiver or the tar parser throw. With
// `incremental`, the server's refusal (WAL summaries missing or not caught up, summarize_wal off, a
// parent too old for wal_summary_keep_time or not on its history, a manifest it rejects) is one line
// naming the parent, of the server's error kind.
StreamedBackup stream_base_backup(ReplicationConnection& conn, const std::string& label, const std::string& checkpoint,
                                  BackupManifest& m, TarReceiver& receiver, Progress& progress,
                                  const IncrementalRequest* incremental = nullptr);

}  // namespace pgvault
