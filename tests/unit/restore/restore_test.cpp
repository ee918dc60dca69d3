// Restore: planning, settings, the files written and what a failure leaves.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "restore/restore_fixture.h"

namespace pgvault {
namespace {

using namespace restore_test;

TEST(RestoreTest, TargetTimeParsing) {
  EXPECT_DOUBLE_EQ(parse_target_time("2026-01-01T00:01:00Z"), 1767225660.0);
  EXPECT_DOUBLE_EQ(parse_target_time("2026-01-01 00:01:00.25+00"), 1767225660.25);
  EXPECT_DOUBLE_EQ(parse_target_time("2026-01-01 02:01:00+02:00"), 1767225660.0);
  EXPECT_DOUBLE_EQ(parse_target_time("2025-12-31 19:01:00-0500"), 1767225660.0);
  EXPECT_DOUBLE_EQ(parse_target_time("2028-02-29 00:00:00Z"), 1835395200.0);  // a leap day
  // A day the month does not have is refused, as PostgreSQL refuses it (utc_seconds rolled it over).
  for (const char* bad : {"2026-01-01 00:01:00", "yesterday", "2026-01-01T00:01:00Zx", "2026-13-01 00:00:00Z",
                          "2026-11-31 00:00:00Z", "2026-02-29 00:00:00Z", "2100-02-29 00:00:00Z", " 2026-01-01 00:01:00Z",
                          "+2026-01-01 00:01:00Z", "2026-01-01 -1:01:00Z", "26-01-01 00:01:00Z", "0026-1"}) {
    EXPECT_THROW(parse_target_time(bad), Error) << bad;
  }
}

TEST(RestoreTest, RestoreCommandAndAutoConf) {
  EXPECT_EQ(make_restore_command("/usr/bin/wal-fetch", "/etc/p.toml", {"repository.path=/x"}),
            "/usr/bin/wal-fetch --config /etc/p.toml --set repository.path=/x %f %p");
  EXPECT_EQ(make_restore_command("/opt/my tools/wal-fetch", "", {}), "'/opt/my tools/wal-fetch' %f %p");
  // A path holding "%f" must reach wal-fetch as it is: PostgreSQL reads %% as %.
  EXPECT_EQ(make_restore_command("/usr/bin/wal-fetch", "/etc/100%full.toml", {"repository.path=/a%p"}),
            "/usr/bin/wal-fetch --config /etc/100%%full.toml --set repository.path=/a%%p %f %p");
  std::string out = rewrite_auto_conf("# head\nrestore_command = 'old'\nRecovery_Target_Time = 'x'\nwork_mem = 1\n",
                                      "restore_command = 'new'\n");
  EXPECT_EQ(out, "# head\nwork_mem = 1\nrestore_command = 'new'\n");
}

TEST(RestoreTest, SettingsQuoteWhatPostgresqlsScannerReadsBack) {
  // A restore point's name may hold a quote, a backslash and a newline: a raw newline ended the quoted
  // string and the server refused postgresql.auto.conf. Control bytes are 3-digit octal escapes, which
  // the scanner decodes (checked against PostgreSQL 15 with postgres -C recovery_target_name).
  RestoreOptions o;
  o.restore_command = "/usr/bin/wal-fetch %f %p";
  o.target = {TargetKind::Name, "it's\nC:\\x\t\x7f", 0, 0};
  RestorePlan plan;
  const std::string conf = recovery_settings(o, plan);
  EXPECT_NE(conf.find("recovery_target_name = 'it''s\\012C:\\\\x\\011\\177'\n"), std::string::npos) << conf;
  for (std::size_t i = 0, line_start = 0; i < conf.size(); ++i) {  // a comment or one setting per line
    if (conf[i] != '\n') continue;
    const std::string line = conf.substr(line_start, i - line_start);
    EXPECT_TRUE(line.starts_with("# ") || line.find(" = ") != std::string::npos) << line;
    line_start = i + 1;
  }
}

TEST(RestoreTest, RestoresVerifiedFilesAndRecoverySettings) {
  Fixture fx;
  fx.commit();
  RestoreOptions o = fx.options();
  o.target = {TargetKind::Lsn, "0/5000000", 5ull * kSeg, 0};
  o.exclusive = true;
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  RestoreResult r = run_restore(*fx.repo, o);
  const std::string d = o.pgdata;
  EXPECT_EQ(r.plan.backup.label, fx.m.label);
  EXPECT_EQ(r.plan.wal.first_segno, 2u);
  EXPECT_EQ(r.plan.wal.last_segno, 5u);
  EXPECT_EQ(mode_of(d), 0700u);
  EXPECT_EQ(slurp(d + "/PG_VERSION"), "15\n");
  EXPECT_EQ(mode_of(d + "/PG_VERSION"), 0640u);
  EXPECT_EQ(slurp(d + "/base/5/1259"), std::string(70000, 'a'));
  EXPECT_EQ(slurp(d + "/global/pg_control"), std::string(8192, 'c'));
  EXPECT_TRUE(exists(d + "/empty_file"));
  EXPECT_FALSE(exists(d + "/tablespace_map"));  // links are made instead
  EXPECT_FALSE(exists(d + "/" + kRestoreMarker));
  EXPECT_FALSE(exists(d + "/global/pg_control.pgvault-restore"));
  EXPECT_TRUE(exists(d + "/recovery.signal"));
  EXPECT_FALSE(exists(d + "/standby.signal"));
  for (const char* dir : {"pg_wal/archive_status", "pg_replslot", "pg_notify", "pg_logical/snapshots", "pg_stat_tmp"}) {
    EXPECT_EQ(mode_of(d + "/" + dir), 0700u) << dir;
  }
  std::error_code ec;
  EXPECT_EQ(std::filesystem::read_symlink(d + "/pg_tblspc/16384", ec).string(), fx.tmp / "ts-new");
  EXPECT_EQ(slurp(fx.tmp / "ts-new/PG_15_202209061/5/16390"), "tablespace data");
  EXPECT_FALSE(exists(fx.tmp / "ts-orig"));
  std::string conf = slurp(d + "/postgresql.auto.conf");
  EXPECT_EQ(conf.find("'old'"), std::string::npos);
  EXPECT_NE(conf.find("work_mem = '8MB'"), std::string::npos);
  EXPECT_NE(conf.find("restore_command = '/usr/lib/pgvault/wal-fetch --config ''/etc/pg vault.toml'' %f %p'"),
            std::string::npos) << conf;
  EXPECT_NE(conf.find("recovery_target_lsn = '0/5000000'"), std::string::npos);
  EXPECT_NE(conf.find("recovery_target_action = 'promote'"), std::string::npos);
  EXPECT_NE(conf.find("recovery_target_inclusive = off"), std::string::npos);
  EXPECT_NE(conf.find("recovery_target_timeline = 'latest'"), std::string::npos);
  EXPECT_EQ(r.files, fx.m.files.size() - 1);  // all but tablespace_map

  // Not empty any more: refused without --force, replaced with it.
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidInput);
  }
  RestoreOptions o2 = fx.options();
  o2.force = true;
  o2.standby = true;
  // The tablespace directory exists at the new place and is never removed by --force.
  o2.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  EXPECT_THROW(run_restore(*fx.repo, o2), Error);
  EXPECT_TRUE(exists(d + "/PG_VERSION"));  // refused before --force removed anything
  o2.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-other"}};
  run_restore(*fx.repo, o2);
  EXPECT_TRUE(exists(d + "/standby.signal"));
  EXPECT_FALSE(exists(d + "/recovery.signal"));
}

TEST(RestoreTest, MissingWalIsReportedBeforeAnythingIsWritten) {
  Fixture fx;
  fx.commit();
  fx.mem->objects.erase(seg_key(1, 4));
  RestoreOptions o = fx.options();
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find(seg_name(1, 4)), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(o.pgdata));
  EXPECT_FALSE(exists(fx.tmp / "ts-new"));
  // Immediate only needs the WAL up to the stop segment.
  o.target = {TargetKind::Immediate, "", 0, 0};
  EXPECT_NO_THROW(run_restore(*fx.repo, o));
}

TEST(RestoreTest, CorruptFileFailsNamingItAndLeavesNothing) {
  Fixture fx;
  ASSERT_EQ(fx.m.files[2].path, "base/5/1259");
  const std::string good = fx.m.files[2].crc32c;
  fx.m.files[2].crc32c = "0badc0de";  // base/5/1259 "differs" from the manifest
  fx.commit();
  RestoreOptions o = fx.options();
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  std::filesystem::create_directories(o.pgdata);
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    std::string msg = e.what();
    EXPECT_NE(msg.find("base/5/1259"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fx.m.label), std::string::npos) << msg;
    EXPECT_NE(msg.find("CRC-32C " + good + ", manifest says 0badc0de"), std::string::npos) << msg;
  }
  EXPECT_TRUE(exists(o.pgdata));  // it existed before: left, empty
  EXPECT_TRUE(std::filesystem::is_empty(o.pgdata));
  EXPECT_FALSE(exists(fx.tmp / "ts-new"));
}

TEST(RestoreTest, DamagedBundleFailsNamingBackupAndFile) {
  Fixture fx;
  fx.commit();
  auto& obj = fx.mem->objects[keys::backup_bundle(fx.m.label, 1)];
  obj[obj.size() / 2] ^= 0x20;
  RestoreOptions o = fx.options();
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
    EXPECT_NE(std::string(e.what()).find(fx.m.label), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bundle-000001"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(o.pgdata));
}

// A backup taken by an older pgvault: format 1 manifest, per-file "sha256". It restores, verified with
// SHA-256, and a file whose content differs is still caught and named.
TEST(RestoreTest, Format1ManifestWithSha256IsVerified) {
  {
    Fixture fx(true);
    fx.commit();
    Bytes raw = fx.repo->get_bytes(keys::backup_manifest(fx.m.label));
    std::string text(raw.begin(), raw.end());
    EXPECT_NE(text.find("\"sha256\": \"" + to_hex(sha256(as_bytes(std::string("15\n")))) + "\""), std::string::npos);
    EXPECT_EQ(text.find("crc32c"), std::string::npos) << text;
    BackupManifest read = read_manifest(*fx.repo, fx.m.label);
    EXPECT_EQ(read.format, 1);
    EXPECT_TRUE(read.files[0].crc32c.empty());
    EXPECT_EQ(read.files[0].sha256, fx.m.files[0].sha256);
    RestoreOptions o = fx.options();
    o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
    ASSERT_NO_THROW(run_restore(*fx.repo, o));
    EXPECT_EQ(slurp(o.pgdata + "/base/5/1259"), std::string(70000, 'a'));
  }
  Fixture fx(true);
  fx.commit();
  // The bundle is rewritten with one byte of base/5/1259 changed: a valid object (its own SHA-256
  // matches its new plaintext), so only the per-file check can catch it.
  const std::string key = keys::backup_bundle(fx.m.label, 0);
  Bytes plain = fx.repo->get_bytes(key);
  const ManifestFile& f = fx.m.files[2];
  ASSERT_EQ(f.path, "base/5/1259");
  plain[f.offset + 1000] = 'b';
  fx.mem->objects.erase(key);
  fx.repo->put_bytes(key, plain);
  std::string changed = std::string(1000, 'a') + "b" + std::string(70000 - 1001, 'a');
  RestoreOptions o = fx.options();
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    std::string msg = e.what();
    EXPECT_NE(msg.find("base/5/1259"), std::string::npos) << msg;
    EXPECT_NE(msg.find("SHA-256 " + to_hex(sha256(as_bytes(changed))) + ", manifest says " + f.sha256),
              std::string::npos) << msg;
  }
  EXPECT_FALSE(exists(o.pgdata));
}

TEST(RestoreTest, ChoosesNewestBackupBeforeTheTarget) {
  Fixture fx;
  fx.commit();
  BackupManifest later = fx.m;
  later.label = "20260102T000000Z-F";
  later.start_lsn = 5ull * kSeg + 0x28;
  later.stop_lsn = 5ull * kSeg + 0x200;
  later.stop_time = "2026-01-02T00:01:00Z";
  write_manifest(*fx.repo, later);
  Inventory inv = load_inventory(*fx.repo);
  RestoreOptions o = fx.options();
  EXPECT_EQ(plan_restore(*fx.repo, inv, o).backup.label, later.label);
  o.target = {TargetKind::Time, "2026-01-01T12:00:00Z", 0, parse_target_time("2026-01-01T12:00:00Z")};
  EXPECT_EQ(plan_restore(*fx.repo, inv, o).backup.label, fx.m.label);
  o.target = {TargetKind::Time, "2026-01-01T00:01:00Z", 0, parse_target_time("2026-01-01T00:01:00Z")};
  EXPECT_THROW(plan_restore(*fx.repo, inv, o), Error);  // within the stop second: not surely after it
  o.target = {TargetKind::Lsn, "0/5000100", 5ull * kSeg + 0x100, 0};
  EXPECT_EQ(plan_restore(*fx.repo, inv, o).backup.label, fx.m.label);
  o.target = {TargetKind::Latest, "", 0, 0};
  o.backup = fx.m.label;
  EXPECT_EQ(plan_restore(*fx.repo, inv, o).backup.label, fx.m.label);
  o.backup = "nope";
  EXPECT_THROW(plan_restore(*fx.repo, inv, o), Error);

  // An incremental backup whose chain is broken (here: it does not start after its parent) is passed
  // over, and refused naming the broken link when asked for by name.
  BackupManifest incr = later;
  incr.label = "20260103T000000Z-I";
  incr.type = "incremental";
  incr.incremental_mode = "client";
  incr.parent = later.label;
  write_manifest(*fx.repo, incr);
  inv = load_inventory(*fx.repo);
  ASSERT_EQ(inv.backups.back().label, incr.label);
  o.backup.clear();
  EXPECT_EQ(plan_restore(*fx.repo, inv, o).backup.label, later.label);
  o.backup = incr.label;
  try {
    plan_restore(*fx.repo, inv, o);
    ADD_FAILURE() << "planned a broken chain";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("its parent " + later.label + " does not start before it"), std::string::npos)
        << e.what();
  }
}

TEST(RestoreTest, FollowsTimelinesToTheTarget) {
  Fixture fx;
  fx.commit();
  fx.repo->put_bytes("wal/00000002.history", as_bytes("1\t0/5000100\tpromoted\n"));
  for (std::uint64_t s = 5; s <= 7; ++s) fx.repo->put_bytes(seg_key(2, s), as_bytes("wal"));
  Inventory inv = load_inventory(*fx.repo);
  RestoreOptions o = fx.options();
  RestorePlan p = plan_restore(*fx.repo, inv, o);
  EXPECT_EQ(p.target_timeline, 2u);
  EXPECT_EQ(p.wal.last_segno, 7u);
  o.target_timeline = "current";
  p = plan_restore(*fx.repo, inv, o);
  EXPECT_EQ(p.target_timeline, 1u);
  EXPECT_EQ(p.wal.last_segno, 6u);
  o.target_timeline = "2";
  fx.mem->objects.erase(seg_key(2, 5));
  try {
    plan_restore(*fx.repo, load_inventory(*fx.repo), o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(seg_name(2, 5)), std::string::npos) << e.what();
  }
  o.target_timeline = "3";
  EXPECT_THROW(plan_restore(*fx.repo, inv, o), Error);
  // A timeline number is decimal exactly: std::stoul wrapped "-4294967294" to 2 and skipped a space.
  for (const char* bad : {"-4294967294", " 2", "+2", "02", "2x", "0", "4294967296"}) {
    SCOPED_TRACE(bad);
    o.target_timeline = bad;
    try {
      plan_restore(*fx.repo, inv, o);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidInput) << e.what();
      EXPECT_NE(std::string(e.what()).find("--target-timeline must be"), std::string::npos) << e.what();
    }
  }
}

// --- Paths from the repository ---

TEST(RestoreTest, ArchiveModeOffByDefaultAndPreservedOnRequest) {
  Fixture fx;
  fx.commit();
  RestoreOptions o = fx.options();
  RestoreResult r = run_restore(*fx.repo, o);
  std::string conf = slurp(o.pgdata + "/postgresql.auto.conf");
  EXPECT_NE(conf.find("\narchive_mode = 'off'"), std::string::npos) << conf;
  EXPECT_NE(restore_summary_line(r, o).find("archive_mode off"), std::string::npos);
  EXPECT_NE(restore_summary_json(r, o).find("\"archive_mode\":\"off\""), std::string::npos);

  // A later restore of a backup of this server drops that line; the server's own setting stays.
  std::string again = rewrite_auto_conf(conf + "archive_mode = on\n", "");
  EXPECT_EQ(again.find("archive_mode = 'off'"), std::string::npos) << again;
  EXPECT_NE(again.find("archive_mode = on\n"), std::string::npos) << again;

  RestoreOptions p = fx.options();
  p.pgdata = fx.tmp / "preserved";
  p.archive_mode = "preserve";
  p.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-preserved"}};
  RestoreResult rp = run_restore(*fx.repo, p);
  EXPECT_EQ(slurp(p.pgdata + "/postgresql.auto.conf").find("archive_mode"), std::string::npos);
  EXPECT_NE(restore_summary_line(rp, p).find("archive_mode preserved"), std::string::npos);

  RestoreOptions bad = fx.options();
  bad.archive_mode = "on";
  EXPECT_THROW(plan_restore(*fx.repo, load_inventory(*fx.repo), bad), Error);
}

// --- dry run ---

TEST(RestoreTest, DryRunMakesTheDataDirectoryChecksOfARealRun) {
  Fixture fx;
  fx.commit();
  RestoreOptions o = fx.options();
  o.dry_run = true;
  std::filesystem::create_directories(o.pgdata);
  { std::ofstream(o.pgdata + "/PG_VERSION") << "15\n"; }
  try {
    run_restore(*fx.repo, o);
    FAIL() << "a dry run accepted a non-empty data directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidInput);
    EXPECT_NE(std::string(e.what()).find("not empty"), std::string::npos) << e.what();
  }
  // A running server's directory is refused even with --force.
  o.force = true;
  { std::ofstream(o.pgdata + "/postmaster.pid") << ::getpid() << "\n"; }
  try {
    run_restore(*fx.repo, o);
    FAIL() << "a dry run accepted a running server's data directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("running server"), std::string::npos) << e.what();
  }
  // With --force and no server: planned, nothing removed.
  std::filesystem::remove(o.pgdata + "/postmaster.pid");
  RestoreResult r = run_restore(*fx.repo, o);
  EXPECT_EQ(r.files, fx.m.files.size() - 1);
  EXPECT_TRUE(exists(o.pgdata + "/PG_VERSION"));
  EXPECT_FALSE(exists(o.pgdata + "/recovery.signal"));
  // An existing tablespace directory is refused too.
  std::filesystem::create_directories(fx.tmp / "ts-orig/PG_15_202209061");
  EXPECT_THROW(run_restore(*fx.repo, o), Error);
}

}  // namespace
}  // namespace pgvault
