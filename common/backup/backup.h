// base-push: a full or incremental base backup of a running PostgreSQL 15+ server into the repository
// (incremental backups: incremental.h for the parent and the mode, tar_receiver.h for what is stored).
//
// How it works (docs/EXIT-CODES.md has the tool's exit codes):
//  0. Takes the repository lock locks/base-push (lock.h): one base-push at a time per repository; a
//     second one fails with Conflict naming the holder.
//  1. Connects in physical replication mode (pgconn.h), runs IDENTIFY_SYSTEM and checks the server:
//     version 15 or newer, wal_level not minimal, archive_mode not off. The repository's identity must
//     name the same database system (created on first use).
//  2. Runs BASE_BACKUP (PostgreSQL 15 syntax, TARGET 'client', WAIT false, TABLESPACE_MAP, a backup
//     manifest with CRC-32C checksums) and splits the tar archives of the CopyData stream (tar.h) into
//     files, which are packed into bundles and uploaded in parallel (backup_bundles.h), each file's
//     CRC-32C computed on the way (crc32c.h; the bundles' SHA-256 is the object codec's).
//     backup_label and tablespace_map are stored as files and copied into the manifest.
//  3. Checks every received file against the server's backup_manifest (size and CRC-32C).
//  4. Waits until the stop segment (the segment holding the last byte before the stop LSN) is in the
//     repository: PostgreSQL switches to a new segment at the end of a backup taken on a primary, so it
//     is archived promptly by archive_command. On a standby there is no switch: the segment arrives when
//     the primary archives it.
//  5. Stores the server's backup_manifest as backups/<label>/backup_manifest (the parent manifest a later
//     server-side incremental uploads), then writes manifest.json (the commit point) after two checks:
//     the create-if-absent checks a store without conditional writes deferred (the lock's, the claim's
//     and every bundle's, each after its own settle time, which passed while the backup ran: another
//     writer's object under one of those keys fails the run with Conflict), and the label's claim is
//     still its own. Until then the backup is invisible.
// The label is claimed before any bundle is written (claim_backup_label below), so two runs started in
// the same second get distinct labels.
// On any failure or interrupt: the server-side backup is cancelled (the connection closed), no manifest
// is written, and, if the run still holds its claim, the objects it wrote itself (the keys it uploaded
// and its claim) are deleted; never anything else (best effort; leftovers are incomplete backups that
// retention-prune removes after [retention] incomplete_grace).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/backup/tar_receiver.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/manifest.h"
#include "common/repo/marks.h"
#include "common/repo/repo.h"

namespace pgvault {

struct BackupOptions {
  std::string conninfo;              // libpq conninfo; Default: [backup] conninfo ("" = PG* variables)
  std::string checkpoint = "fast";   // "fast" | "spread"; Default: [backup] checkpoint
  int parallel = 0;                  // upload workers; 0 = number of cores. Default: [backup] parallel
  std::uint64_t bundle_size = 64ull << 20;  // Default: [backup] bundle_size
  int archive_timeout = 600;         // seconds to wait for the stop segment. Default: 600
  bool progress = false;             // a progress line on stderr (meant for a terminal)
  std::string type = "full";         // "full" | "incremental" | "diff" (--type; see incremental.h)
  bool no_fallback = false;          // incremental: refuse (Config) rather than take a full backup or
                                     // client-side blocks when no parent or summarize_wal is off
  // --keep / --annotate: written as backups/<label>/marks just before the manifest (repo/marks.h), so the
  // backup is never visible without them. Default: none.
  std::optional<BackupMarks> marks;
};

// Options from the configuration (conninfo, checkpoint, parallel, bundle_size).
BackupOptions backup_options_from_config(const Config& config);

// How base-push encodes and uploads its bundles: `parallel` workers, the repository's codec settings
// (Repository::encode_options, with its zstd window and match-table caps), and zstd threads for a
// single-file bundle. Loads or creates the repository's key record.
BundleUploaderOptions backup_uploader_options(Repository& repo, const BackupOptions& opts);

struct BackupResult {
  BackupManifest manifest;
  double seconds = 0;                // wall-clock duration, including the wait for the stop segment
  std::string server_version;        // e.g. "15.4"
};

// Takes a base backup. Throws (ErrorKind): Transient (server unreachable, down or failed, storage
// failures), Conflict (another base-push holds the repository lock, no label could be claimed, or the
// lock, the claim or a bundle was another run's at the commit),
// Auth (authentication refused), Config (no REPLICATION attribute, wal_level minimal, archive_mode off,
// PostgreSQL older than 15, bad options), Foreign (repository of another database system), Corruption
// (the received files do not match the server's backup_manifest), Interrupted (SIGINT/SIGTERM after
// install_interrupt_handlers()), and storage/codec kinds.
BackupResult run_base_backup(Repository& repo, const BackupOptions& opts);

// The claim of a backup label: backups/<label>/claim (keys::backup_claim), plain JSON naming the tool,
// host, pid, time and a random token, written with create-if-absent before anything else of the backup,
// then read back (after `settle`) and checked to hold this run's token: on a store without conditional
// writes create-if-absent is HEAD-then-PUT, and the read-back catches the run whose PUT came first.
// A label whose claim exists (another run, same second), whose read-back shows another token, or that
// holds other objects (a run of an older pgvault, a clock that moved back) is given up for the next
// second's label; the claim waits for that second to begin, so labels still sort by start time and keep
// their form. The claim stays with the backup (retention deletes it with the rest); a claim without
// manifest is an incomplete backup like any other. Throws Conflict after `attempts` labels.
struct BackupClaim {
  std::string label;
  std::string token;
};
struct ClaimOptions {
  std::function<std::int64_t()> now;             // seconds since the epoch
  std::function<void(std::int64_t)> wait_until;  // returns once now() >= t (may throw Interrupted)
  std::chrono::milliseconds settle{0};           // pause between writing the claim and reading it back
  int attempts = 10;
  bool incremental = false;                      // labels end "-I" (else "-F")
  // Where a store without conditional writes hands the create-if-absent check of the claim taken
  // (PutOptions::confirm_later; a label given up keeps its own out); the caller runs it before the
  // backup's manifest. nullptr: the put checks before it returns.
  DeferredConfirms* confirm_later = nullptr;
};
BackupClaim claim_backup_label(Storage& storage, const ClaimOptions& opts);
// base-push's claim options: the clock, waits that end on SIGINT/SIGTERM, and a settle of 500 ms on a
// store without atomic create-if-absent (Storage::atomic_create()), none on one with it (nor, once the
// claim is written, where that put confirmed itself: claim_read_back_pause).
ClaimOptions base_push_claim_options(const Storage& storage);
// The pause before a claim is read back: 500 ms on a store without atomic create-if-absent, else none.
std::chrono::milliseconds claim_settle(const Storage& storage);
// What is left of `settle` once the claim is written: none where the store's create-if-absent put
// confirms itself after its own settle time (Storage::create_confirmed()), at once or, with
// ClaimOptions::confirm_later, before the manifest; else all of it.
std::chrono::milliseconds claim_read_back_pause(Storage& storage, std::chrono::milliseconds settle);
// True when the label's claim object still holds this claim's token (false when it is gone or another's).
bool claim_holds(Storage& storage, const BackupClaim& claim);

// A label's claim as read back: who wrote it and, for backup-copy, which backup it copies (its start and
// stop LSN and timeline, so a later run knows its own interrupted copy of the same backup again).
struct LabelClaim {
  std::string tool, host, time, token;  // all "" when the claim cannot be read
  long pid = 0;
  std::string start_lsn, stop_lsn;      // backup-copy only
  std::int64_t timeline = -1;           // backup-copy only
  bool copies(const BackupManifest& b) const;  // a backup-copy claim of `b`
  std::string describe() const;                // "a claim of base-push on HOST (pid P, TIME)"
};
std::optional<LabelClaim> read_label_claim(Storage& storage, const std::string& label);  // nullopt: none
// backup-copy's claim of `b`'s label at the destination, before any object of the backup is written
// there: created when absent, taken over when it is a backup-copy claim of this same backup (an
// interrupted copy), then read back after `settle` (as claim_backup_label). Conflict naming the label
// and the holder when another run holds it (a base-push, or a copy of another backup of that label).
BackupClaim claim_label_for_copy(Storage& storage, const BackupManifest& b, std::chrono::milliseconds settle);

// SIGINT and SIGTERM set a flag that run_base_backup checks at least every 200 ms; it then aborts
// cleanly and throws ErrorKind::Interrupted.
void install_interrupt_handlers();

// One line for the log: label, size, stored size, duration, rate, WAL range.
std::string backup_summary_line(const BackupResult& r);
// The --json summary (one JSON object and a newline).
std::string backup_summary_json(const BackupResult& r);

// Checks the files of a backup against the server's backup_manifest text (PostgreSQL's JSON format,
// CRC32C checksums, compared with ReceivedFile::crc32c): same set of paths (tablespace files as
// "pg_tblspc/<oid>/<path>"), sizes and checksums, and the manifest's own checksum (SHA-256). Throws
// Corruption naming the first differences (file, our value, the server's).
void verify_server_manifest(const std::string& manifest_text, const std::vector<ReceivedFile>& files);

// "16MB", "1GB", "64kB" (PostgreSQL's unit spelling) -> bytes; throws InvalidInput.
std::uint64_t parse_pg_size(const std::string& text);

}  // namespace pgvault
