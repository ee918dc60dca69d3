// archive-info with incremental backups: type, parent and chain in text and JSON; --verify checks every
// chain and every block-diff (CRC-32C of its stored bytes, structure, length), naming backup and file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/report/inventory_report.h"
#include "common/report/verify.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::blocks_text;
using testing::ChainBuilder;
using testing::has_problem;
using testing::kChainBlock;
using testing::kSmallSeg;
using testing::VerifyRepo;

const std::string kF = "20260102T000000Z-F", kI1 = "20260103T000000Z-I", kI2 = "20260104T000000Z-I";

// A full backup and two incrementals (WAL 1..8 of 1 MiB segments from VerifyRepo); `damage` may change
// the second incremental's bundle plaintext or entries before it is committed.
struct Chain {
  VerifyRepo v;
  ChainBuilder c{*v.repo, kSmallSeg};
  template <typename F>
  explicit Chain(F damage) {
    c.begin(kF);
    c.full("PG_VERSION", "15\n");
    c.full("base/5/100", blocks_text(4, 'a'));
    c.commit();
    c.begin(kI1, kF);
    c.unchanged("PG_VERSION");
    c.blocks("base/5/100", 4, 5, {{4, std::string(kChainBlock, 'n')}}, "");
    c.commit();
    c.begin(kI2, kI1);
    c.unchanged("PG_VERSION");
    c.blocks("base/5/100", 5, 5, {{1, std::string(kChainBlock, 'm')}}, "");
    damage(c);
    c.commit();
  }
  Chain() : Chain([](ChainBuilder&) {}) {}
  VerifyReport verify() { return verify_repository(*v.repo, load_inventory(*v.repo), VerifyOptions{2, false}); }
};

std::string problems_text(const VerifyReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += p.kind + " " + p.key + ": " + p.message + "\n";
  return s;
}

TEST(IncrementalReport, VerifyAcceptsACompleteChain) {
  Chain ch;
  VerifyReport r = ch.verify();
  EXPECT_TRUE(r.problems.empty()) << problems_text(r);
}

TEST(IncrementalReport, VerifyNamesADamagedBlockDiff) {
  // A changed byte in a block: the entry's CRC-32C.
  Chain crc([](ChainBuilder& c) { c.plain[c.cur().files.back().offset + kBlockDiffHeaderSize + 8 + 5] ^= 1; });
  VerifyReport r = crc.verify();
  EXPECT_TRUE(has_problem(r, keys::backup_bundle(kI2, 0), "backup " + kI2 + ": file base/5/100: CRC-32C"))
      << problems_text(r);
  // A block number past the file under a matching CRC-32C: the structure.
  Chain structure([](ChainBuilder& c) {
    ManifestFile& f = c.cur().files.back();
    c.plain[f.offset + kBlockDiffHeaderSize + 4] = 7;
    f.crc32c = crc32c_hex(crc32c(as_bytes(c.plain.substr(f.offset, f.stored_size))));
  });
  r = structure.verify();
  EXPECT_TRUE(has_problem(r, keys::backup_bundle(kI2, 0),
                          "backup " + kI2 + ": file base/5/100: blocks entry: block-diff entry lists block 7"))
      << problems_text(r);
  // A length that is not the manifest's size.
  Chain length([](ChainBuilder& c) { c.cur().files.back().size += 1; });
  r = length.verify();
  EXPECT_TRUE(has_problem(r, keys::backup_bundle(kI2, 0), "file base/5/100: blocks entry describes 5120 bytes, the manifest says 5121"))
      << problems_text(r);
}

TEST(IncrementalReport, VerifyNamesABrokenChain) {
  Chain ch;
  ch.v.mem->objects.erase(keys::backup_manifest(kI1));  // the middle backup is now incomplete
  VerifyReport r = ch.verify();
  EXPECT_TRUE(has_problem(r, keys::backup_manifest(kI2),
                          "backup " + kI2 + " cannot be restored: backup " + kI2 + ": its parent " + kI1 + " is incomplete"))
      << problems_text(r);
  EXPECT_EQ(r.problems.size(), 1u) << problems_text(r);
  EXPECT_EQ(r.problems[0].kind, "missing");
}

TEST(IncrementalReport, ArchiveInfoShowsTypeParentAndChain) {
  Chain ch;
  Inventory inv = load_inventory(*ch.v.repo);
  std::string text = inventory_text("mem", inv, recovery_window(inv), nullptr);
  EXPECT_NE(text.find(kI2 + "  incremental  " + kI1), std::string::npos) << text;
  EXPECT_NE(text.find(kI2 + "  " + kF + " <- " + kI1 + " <- " + kI2), std::string::npos) << text;

  auto j = nlohmann::json::parse(inventory_json("mem", inv, recovery_window(inv), nullptr));
  const auto& b = j["backups"][2];
  EXPECT_EQ(b["type"], "incremental");
  EXPECT_EQ(b["parent"], kI1);
  EXPECT_EQ(b["incremental_mode"], "client");
  EXPECT_EQ(b["chain"], nlohmann::json::array({kF, kI1, kI2}));
  EXPECT_EQ(b["chain_complete"], true);
  EXPECT_EQ(j["backups"][0]["parent"], "");
  EXPECT_EQ(j["backups"][0]["chain"], nlohmann::json::array({kF}));

  ch.v.mem->objects.erase(keys::backup_manifest(kF));
  inv = load_inventory(*ch.v.repo);
  text = inventory_text("mem", inv, recovery_window(inv), nullptr);
  EXPECT_NE(text.find(kI2 + "  BROKEN: backup " + kI1 + ": its parent " + kF + " is incomplete"), std::string::npos) << text;
  j = nlohmann::json::parse(inventory_json("mem", inv, recovery_window(inv), nullptr));
  EXPECT_EQ(j["backups"][1]["chain_complete"], false);
  EXPECT_NE(j["backups"][1]["chain_problem"].get<std::string>().find("is incomplete"), std::string::npos);
}

}  // namespace
}  // namespace pgvault
