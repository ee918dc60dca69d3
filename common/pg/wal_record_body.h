// Internal to common/pg (wal_records.cpp): the body of one WAL record (everything after its 24-byte
// XLogRecord header) read as it streams past, for the events of wal_records.h. Keeps at most the first
// kHeadBytes of the body (its block headers) and the few main-data fields an event needs, whatever the
// record's size: the xact records' arrays (subtransactions, relations, statistics, invalidations) are
// skipped by their counts, never buffered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/base/io.h"
#include "common/pg/wal_records.h"

namespace pgvault::walrec {

inline constexpr std::uint8_t kRmXlog = 0;  // RM_XLOG_ID
inline constexpr std::uint8_t kRmXact = 1;  // RM_XACT_ID
inline constexpr std::uint8_t kXlogSwitch = 0x40;
inline constexpr std::uint8_t kXlogRestorePoint = 0x70;

// The event kind of a record of resource manager `rmid` with xl_info `info`; nullopt when it is none.
std::optional<WalEventKind> event_kind(std::uint8_t rmid, std::uint8_t info);

class RecordBody {
 public:
  static constexpr std::uint32_t kHeadBytes = 2048;  // more than 33 block headers and the data headers take

  // `xid` is the record header's xl_xid; `pg_version` the major version of the WAL (12..18).
  RecordBody(WalEventKind kind, std::uint8_t info, std::uint32_t xid, std::uint32_t body_len, int pg_version);
  // The body's next bytes, in order.
  void feed(ByteView data);
  // After the whole body: the event (lsn and end_lsn left 0), or nullopt with `error` set when the body
  // is malformed (block headers that do not add up to its length, main data too short for its fields).
  std::optional<WalEvent> finish(std::string& error);

 private:
  WalEventKind kind_;
  std::uint8_t info_;
  std::uint32_t body_len_;
  int pg_version_;
  std::uint64_t fed_ = 0;   // body bytes seen
  Bytes head_;              // the first min(body_len, kHeadBytes) of them
  bool layout_known_ = false;
  std::uint32_t main_off_ = 0;     // where the main data starts in the body (it is the body's last part)
  std::uint64_t main_seen_ = 0;    // body offset up to which main data was passed to take_main()
  std::string error_;
  // The main-data field wanted next: want_len_ bytes at main-data offset want_at_.
  std::uint64_t mpos_ = 0;
  std::uint64_t want_at_ = 0;
  std::uint32_t want_len_ = 0;
  int step_ = 0;
  Bytes field_;
  bool complete_ = false;
  std::uint32_t xinfo_ = 0;
  std::uint64_t cursor_ = 0;
  WalEvent event_;

  bool parse_layout();
  void take_main(ByteView data);
  void want(std::uint64_t at, std::uint32_t len, int step);
  void on_field();
  void next_array(int from);
};

}  // namespace pgvault::walrec
