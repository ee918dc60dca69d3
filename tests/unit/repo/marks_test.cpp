// The marks object of a backup (repo/marks.h): round trip through the repository, validation of keys
// and values on the command line and on decode, and how load_inventory lists marks (unreadable = kept).
#include <gtest/gtest.h>

#include "common/repo/inventory.h"
#include "common/repo/layout.h"
#include "common/repo/marks.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::VerifyRepo;

TEST(Marks, RoundTripThroughRepository) {
  VerifyRepo r;
  r.write_manifest_once();
  EXPECT_FALSE(read_marks(*r.repo, r.m.label));
  BackupMarks m;
  m.label = r.m.label;
  m.keep = true;
  set_annotation(m, "reason", "pre-upgrade to 16");
  set_annotation(m, "ticket", "OPS-1");
  m.time = "2026-11-30T12:00:00Z";
  write_marks(*r.repo, m);
  auto back = read_marks(*r.repo, r.m.label);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->keep);
  EXPECT_EQ(back->annotations, m.annotations);
  EXPECT_EQ(back->time, m.time);
  m.keep = false;  // replaced in place
  set_annotation(m, "ticket", "");
  write_marks(*r.repo, m);
  back = read_marks(*r.repo, r.m.label);
  EXPECT_FALSE(back->keep);
  EXPECT_EQ(back->annotations.count("ticket"), 0u);
}

TEST(Marks, AnnotationsAreValidated) {
  EXPECT_EQ(parse_annotation("reason=pre upgrade=x", "--annotate"),
            (std::pair<std::string, std::string>{"reason", "pre upgrade=x"}));
  EXPECT_THROW_KIND(parse_annotation("reason", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation("=x", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation("a b=x", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation(std::string(65, 'k') + "=x", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation("k=" + std::string(1025, 'v'), "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation("k=line\nbreak", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_annotation("k=\x1b[31m", "--annotate"), ErrorKind::InvalidInput);
  EXPECT_NO_THROW(parse_annotation(std::string(64, 'k') + "=" + std::string(1024, 'v'), "--annotate"));
  BackupMarks m;
  for (int i = 0; i < 64; ++i) set_annotation(m, "k" + std::to_string(i), "v");
  EXPECT_THROW_KIND(set_annotation(m, "one-more", "v"), ErrorKind::InvalidInput);
}

TEST(Marks, DecodeRefusesWhatTheChecksRefuse) {
  const std::string ok = R"({"format":1,"label":"L","keep":true,"annotations":{"a":"b"},"time":""})";
  EXPECT_TRUE(BackupMarks::from_json(ok, "m").keep);
  for (std::string bad : {R"({"format":2,"label":"L","keep":true,"annotations":{}})",
                          R"({"format":1.5,"label":"L","keep":true,"annotations":{}})",  // get<int>() read 1
                          R"({"format":"1","label":"L","keep":true,"annotations":{}})",
                          R"({"format":1,"label":"L","keep":"yes","annotations":{}})",
                          R"({"format":1,"label":"L","keep":true,"annotations":{"a b":"c"}})",
                          R"({"format":1,"label":"L","keep":true,"annotations":{"a":"\u0007"}})", "not json"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW_KIND(BackupMarks::from_json(bad, "m"), ErrorKind::Corruption);
  }
}

TEST(Marks, InventoryListsMarksAndTreatsUnreadableAsKept) {
  VerifyRepo r;
  r.write_manifest_once();
  EXPECT_TRUE(load_inventory(*r.repo).marks.empty());
  BackupMarks m;
  m.label = r.m.label;
  set_annotation(m, "reason", "x");
  write_marks(*r.repo, m);
  Inventory inv = load_inventory(*r.repo);
  ASSERT_EQ(inv.marks.count(r.m.label), 1u);
  EXPECT_FALSE(inv.marks[r.m.label].keep);
  EXPECT_EQ(inv.marks[r.m.label].annotations.at("reason"), "x");
  r.mem->objects[keys::backup_marks(r.m.label)] = Bytes{'j', 'u', 'n', 'k'};
  inv = load_inventory(*r.repo);
  ASSERT_EQ(inv.backups.size(), 1u);
  EXPECT_TRUE(inv.marks[r.m.label].keep);
  EXPECT_FALSE(inv.marks[r.m.label].error.empty());
}

}  // namespace
}  // namespace pgvault
