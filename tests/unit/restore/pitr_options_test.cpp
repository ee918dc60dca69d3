#include "common/restore/pitr_options.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

using namespace pgvault;

TEST(PitrOptions, NoFlagIsLatest) {
  EXPECT_EQ(recovery_target_from_flags({}).kind, TargetKind::Latest);
  TargetFlags latest;
  latest.special = "latest";
  EXPECT_EQ(recovery_target_from_flags(latest).kind, TargetKind::Latest);
}

TEST(PitrOptions, EachFlagNamesItsTarget) {
  TargetFlags t;
  t.special = "immediate";
  EXPECT_EQ(recovery_target_from_flags(t).kind, TargetKind::Immediate);
  t = {};
  t.lsn = "0/5000060";
  RecoveryTarget lsn = recovery_target_from_flags(t);
  EXPECT_EQ(lsn.kind, TargetKind::Lsn);
  EXPECT_EQ(lsn.lsn, 0x5000060u);
  EXPECT_EQ(lsn.value, "0/5000060");
  t = {};
  t.time = "2026-11-21 16:41:00+00";
  RecoveryTarget time = recovery_target_from_flags(t);
  EXPECT_EQ(time.kind, TargetKind::Time);
  EXPECT_DOUBLE_EQ(time.time, parse_target_time("2026-11-21 16:41:00+00"));
  t = {};
  t.xid = "1234";
  EXPECT_EQ(recovery_target_from_flags(t).kind, TargetKind::Xid);
  t = {};
  t.name = "before-upgrade";
  EXPECT_EQ(recovery_target_from_flags(t).value, "before-upgrade");
}

TEST(PitrOptions, BadTargetsAreInvalidInput) {
  TargetFlags t;
  t.xid = "12a";
  EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
  t = {};
  t.xid = "";
  EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
  t = {};
  t.name = "";
  EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
  t.name = std::string(64, 'n');  // PostgreSQL refuses a recovery_target_name of 64 bytes or more
  EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
  t.name = std::string(63, 'n');
  EXPECT_EQ(recovery_target_from_flags(t).value, t.name);
  t = {};
  t.time = "2026-11-21 16:41:00";  // no zone
  EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
}

TEST(PitrOptions, XidIsDecimalExactlyAsPostgresqlReadsIt) {
  // PostgreSQL reads recovery_target_xid with strtoul(..., 0): "010" is octal 8 to it, so a leading zero
  // is refused rather than resolved as 10 and stopped at 8; a sign or a space is no transaction id.
  TargetFlags t;
  t.xid = "18446744073709551615";  // a 64-bit xid (epoch and xid) is taken whole
  EXPECT_EQ(recovery_target_from_flags(t).value, "18446744073709551615");
  for (const char* bad : {"010", "0x10", "-1", "+5", " 5", "5 ", "18446744073709551616"}) {
    SCOPED_TRACE(bad);
    t.xid = bad;
    EXPECT_THROW_KIND(recovery_target_from_flags(t), ErrorKind::InvalidInput);
  }
}

TEST(PitrOptions, TablespaceMapNeedsOldAndNew) {
  auto m = parse_tablespace_map({"/old=/new", "/a=/b=c"});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], std::make_pair(std::string("/old"), std::string("/new")));
  EXPECT_EQ(m[1], std::make_pair(std::string("/a"), std::string("/b=c")));
  for (const char* bad : {"/old", "=/new", "/old="}) {
    EXPECT_THROW_KIND(parse_tablespace_map({bad}), ErrorKind::InvalidInput);
  }
}

TEST(PitrOptions, RestoreCommandNamesAnAbsoluteConfig) {
  Config c;
  EXPECT_EQ(restore_command_for("/usr/bin/wal-fetch", c, {}), make_restore_command("/usr/bin/wal-fetch", "", {}));
  c.source = "/etc/pgvault/pgvault.toml";
  EXPECT_EQ(restore_command_for("/usr/bin/wal-fetch", c, {"fetch.prefetch=0"}),
            make_restore_command("/usr/bin/wal-fetch", "/etc/pgvault/pgvault.toml", {"fetch.prefetch=0"}));
}

// Several repositories: wal-fetch reads them all unless pitr-prepare itself was given --repo.
TEST(PitrOptions, RestoreCommandCarriesRepoOnlyWhenPitrPrepareWasGivenIt) {
  Config c;
  c.source = "/etc/pgvault/pgvault.toml";
  EXPECT_EQ(restore_command_for("/usr/bin/wal-fetch", c, {}),
            "/usr/bin/wal-fetch --config /etc/pgvault/pgvault.toml %f %p");
  EXPECT_EQ(restore_command_for("/usr/bin/wal-fetch", c, {"fetch.prefetch=0"}, std::string("cloud")),
            "/usr/bin/wal-fetch --config /etc/pgvault/pgvault.toml --set fetch.prefetch=0 --repo cloud %f %p");
}
