// The claim of a backup label (claim_backup_label, claim_holds in backup.h).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "common/backup/backup.h"
#include "common/backup/interrupt.h"
#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/pg/wal.h"

namespace pgvault {

namespace {

using nlohmann::json;

std::string random_token() {
  std::array<std::uint8_t, 16> rnd;
  random_bytes(rnd);
  return to_hex(rnd);
}

// The claim's JSON: the tool, this host and process, the token and the time, and `extra` (backup-copy:
// the backup it copies).
std::string claim_text(const std::string& token, const std::string& tool, json extra = json::object()) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json j = {{"tool", tool}, {"host", host}, {"pid", static_cast<long>(::getpid())}, {"token", token}, {"time", now_iso8601()}};
  j.update(extra);
  return j.dump() + "\n";
}

// The token in the label's claim; nullopt when there is no claim, "" when it is unreadable.
std::optional<std::string> claim_token(Storage& storage, const std::string& label) {
  auto c = read_label_claim(storage, label);
  if (!c) return std::nullopt;
  return c->token;
}

// What backup-copy writes of the backup it copies, to know its own interrupted copy again.
json copied_backup(const BackupManifest& b) {
  return {{"start_lsn", format_lsn(b.start_lsn)}, {"stop_lsn", format_lsn(b.stop_lsn)}, {"timeline", b.timeline}};
}

// Writes the claim of `c` with create-if-absent; false when the label is claimed already.
bool write_claim(Storage& storage, const BackupClaim& c, DeferredConfirms* confirm_later) {
  try {
    write_all(storage, keys::backup_claim(c.label), as_bytes(claim_text(c.token, "base-push")),
              PutOptions{.if_absent = true, .size = {}, .confirm_later = confirm_later});
    return true;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;
    spdlog::info("backup label {} is claimed by another base-push; taking the next second's", c.label);
    return false;
  }
}

// True when the written claim of `c` is (still) its own and its label holds nothing else; otherwise
// the label is given up (our claim removed when the label holds another run's objects).
bool claim_stands(Storage& storage, const BackupClaim& c, std::chrono::milliseconds settle) {
  settle = claim_read_back_pause(storage, settle);
  if (settle.count() > 0) std::this_thread::sleep_for(settle);
  if (!claim_holds(storage, c)) {
    spdlog::info("backup label {} was claimed by another base-push at the same time; taking the next second's",
                 c.label);
    return false;
  }
  const std::string key = keys::backup_claim(c.label);
  bool others = false;
  for (const auto& o : storage.list(keys::backup_prefix(c.label))) others = others || o.key != key;
  if (others) {
    spdlog::warn("backup label {} already holds objects not written by this run in {}; taking the next second's",
                 c.label, storage.describe());
    storage.remove(key);
    return false;
  }
  return true;
}

}  // namespace

std::optional<LabelClaim> read_label_claim(Storage& storage, const std::string& label) {
  LabelClaim c;
  try {
    Bytes data = read_all(storage, keys::backup_claim(label));
    json j = json::parse(data.begin(), data.end());
    if (!j.is_object()) return c;
    auto text = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
    c.tool = text("tool"), c.host = text("host"), c.time = text("time"), c.token = text("token");
    c.start_lsn = text("start_lsn"), c.stop_lsn = text("stop_lsn");
    c.pid = j.contains("pid") && j["pid"].is_number_integer() ? j["pid"].get<long>() : 0;
    c.timeline = j.contains("timeline") && j["timeline"].is_number_unsigned() ? j["timeline"].get<std::int64_t>() : -1;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  } catch (const json::exception&) {
  }
  return c;
}

bool LabelClaim::copies(const BackupManifest& b) const {
  return tool == "backup-copy" && start_lsn == format_lsn(b.start_lsn) && stop_lsn == format_lsn(b.stop_lsn) &&
         timeline == static_cast<std::int64_t>(b.timeline);
}

std::string LabelClaim::describe() const {
  if (tool.empty()) return "an unreadable claim";
  return "a claim of " + tool + " on " + (host.empty() ? "?" : host) + " (pid " + std::to_string(pid) + ", " +
         (time.empty() ? "?" : time) + ")";
}

BackupClaim claim_label_for_copy(Storage& storage, const BackupManifest& b, std::chrono::milliseconds settle) {
  BackupClaim c{b.label, random_token()};
  const std::string key = keys::backup_claim(b.label);
  auto existing = read_label_claim(storage, b.label);
  auto lost = [&](const std::string& why) {
    return Error(ErrorKind::Conflict, storage.describe() + ": backup label " + b.label + " " + why);
  };
  if (existing && !existing->copies(b)) throw lost("holds " + existing->describe() + ", not a copy of this backup");
  const std::string text = claim_text(c.token, "backup-copy", copied_backup(b));
  try {
    // An interrupted copy of this same backup: taken over (its objects are written again).
    write_all(storage, key, as_bytes(text), PutOptions{.if_absent = !existing, .size = {}});
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;
    throw lost("was claimed by another run at the same time");
  }
  settle = claim_read_back_pause(storage, settle);
  if (settle.count() > 0) std::this_thread::sleep_for(settle);
  if (!claim_holds(storage, c)) throw lost("was claimed by another run at the same time");
  return c;
}

bool claim_holds(Storage& storage, const BackupClaim& claim) {
  auto token = claim_token(storage, claim.label);
  return token && *token == claim.token;
}

BackupClaim claim_backup_label(Storage& storage, const ClaimOptions& opts) {
  const int attempts = std::max(opts.attempts, 1);
  std::int64_t t = opts.now();
  std::string first;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      t = std::max(opts.now(), t + 1);
      opts.wait_until(t);
    }
    BackupClaim c{make_backup_label(t, opts.incremental), random_token()};
    if (first.empty()) first = c.label;
    // A label given up keeps its check out of the caller's: its claim is another run's, or removed.
    auto check = std::make_shared<DeferredConfirms>();
    if (write_claim(storage, c, opts.confirm_later ? check.get() : nullptr) && claim_stands(storage, c, opts.settle)) {
      if (opts.confirm_later) opts.confirm_later->add([check] { check->run(); });
      return c;
    }
  }
  throw Error(ErrorKind::Conflict, "no backup label free in " + storage.describe() + ": " + first + " and the " +
                                       std::to_string(attempts - 1) +
                                       " following seconds are claimed by other base-push runs");
}

ClaimOptions base_push_claim_options(const Storage& storage) {
  ClaimOptions co;
  co.now = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
  co.wait_until = wait_until_second;
  co.settle = claim_settle(storage);
  return co;
}

std::chrono::milliseconds claim_read_back_pause(Storage& storage, std::chrono::milliseconds settle) {
  // The put already waited a settle time and saw its own object stored (an S3 store without
  // conditional writes), or handed that check to ClaimOptions::confirm_later: another pause would only
  // repeat it.
  return storage.create_confirmed() ? std::chrono::milliseconds(0) : settle;
}

std::chrono::milliseconds claim_settle(const Storage& storage) {
  // Without atomic create-if-absent (S3 stores such as Swift) the claim is HEAD-then-PUT: a pause before
  // the read-back lets a PUT of another run that raced ours land first, so the read-back sees it.
  return std::chrono::milliseconds(storage.atomic_create() ? 0 : 500);
}

}  // namespace pgvault
