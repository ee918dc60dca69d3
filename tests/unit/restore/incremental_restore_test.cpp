// pitr-prepare restoring an incremental backup straight from the repository: every file reconstructed
// from its chain (full entries, unchanged ones, block-diffs with truncation and extension) against the
// bytes expected, the chain checked before anything is written, damaged pieces named.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/repo/chain.h"
#include "support/repo_builder.h"
#include "common/restore/restore_steps.h"
#include "restore/chain_repo.h"
#include "restore/restore_fixture.h"

using namespace pgvault;
using namespace pgvault::restore_test;
using pgvault::testing::blocks_text;
using pgvault::testing::ChainBuilder;
using pgvault::testing::kChainBlock;

namespace {

// The full backup every test starts from: 8 blocks of a relation, PG_VERSION, pg_control, one more.
void base_full(ChainRepo& r) {
  ChainBuilder& c = *r.chain;
  c.begin("20260101T000000Z-F");
  c.full("PG_VERSION", "15\n");
  c.full("global/pg_control", std::string(512, 'c'));
  c.full("base/5/100", blocks_text(8, 'a'));
  c.next_bundle();
  c.full("base/5/200", blocks_text(2, 'x'));
  c.commit();
}

// base_full, then an incremental on it begun, PG_VERSION and pg_control unchanged.
ChainBuilder& first_incremental(ChainRepo& r) {
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T000000Z-F");
  c.unchanged("PG_VERSION");
  c.unchanged("global/pg_control");
  return c;
}

}  // namespace

TEST(IncrementalRestore, ChangedBlocksUnchangedFilesAndFilesCreatedAndDropped) {
  ChainRepo r;
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T000000Z-F");
  c.unchanged("PG_VERSION");
  c.full("global/pg_control", std::string(512, 'd'));
  std::string rel = blocks_text(8, 'a');
  rel.replace(2 * kChainBlock, kChainBlock, block('X'));
  rel.replace(5 * kChainBlock, kChainBlock, block('Y'));
  c.blocks("base/5/100", 8, 8, {{2, block('X')}, {5, block('Y')}}, rel);
  c.drop("base/5/200");  // dropped after the full backup: no entry
  c.full("base/5/300", "created after the full backup");
  c.commit();

  RestoreResult res = run_restore(*r.repo, r.options());
  EXPECT_EQ(res.plan.backup.label, "20260102T000000Z-I");
  ASSERT_EQ(res.plan.chain.size(), 1u);
  EXPECT_NE(restore_summary_json(res, r.options()).find(R"("chain":["20260101T000000Z-F","20260102T000000Z-I"])"),
            std::string::npos) << restore_summary_json(res, r.options());
  EXPECT_NE(restore_summary_line(res, r.options()).find("(incremental, on 1 older backup from 20260101T000000Z-F)"),
            std::string::npos);
  r.expect_contents();
  EXPECT_EQ(r.file("base/5/200"), "<missing>");
  std::string label = r.file("backup_label");
  EXPECT_EQ(label.find("INCREMENTAL"), std::string::npos) << label;
  EXPECT_NE(label.find("CHECKPOINT LOCATION: 0/4000028"), std::string::npos) << label;
  EXPECT_FALSE(exists(r.tmp / (std::string("pgdata/") + kRestoreMarker)));
  EXPECT_EQ(mode_of(r.tmp / "pgdata/base/5/100"), 0600u);
  EXPECT_EQ(res.files, 5u);  // PG_VERSION, pg_control, 100, 300 and backup_label
}

TEST(IncrementalRestore, TruncationBelowAndExtensionPastTheParentLength) {
  ChainRepo r;
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T000000Z-F");
  c.unchanged("PG_VERSION");
  c.unchanged("global/pg_control");
  // Truncated to 4 blocks after the full backup, then extended to 6 with block 5 written: block 4 is
  // zeros (nothing of the full backup's block 4 survives a truncation below it).
  c.blocks("base/5/100", 4, 6, {{5, block('T')}}, blocks_text(4, 'a') + zeros(1) + block('T'));
  // Extended from 2 to 7 blocks: blocks 2 and 6 written, 3..5 zeros.
  c.blocks("base/5/200", 2, 7, {{2, block('E')}, {6, block('F')}},
           blocks_text(2, 'x') + block('E') + zeros(3) + block('F'));
  c.commit();
  run_restore(*r.repo, r.options());
  r.expect_contents();
}

TEST(IncrementalRestore, AChainOfAFullAndTwoIncrementalsReadsOnlyTheBundlesItNeeds) {
  ChainRepo r;
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T000000Z-F");
  c.unchanged("PG_VERSION");
  c.full("global/pg_control", std::string(512, 'e'));
  std::string rel = blocks_text(8, 'a');
  rel.replace(1 * kChainBlock, kChainBlock, block('1'));
  c.blocks("base/5/100", 8, 9, {{1, block('1')}, {8, block('9')}}, rel + block('9'));
  c.blocks("base/5/200", 2, 2, {{0, block('0')}}, block('0') + blocks_text(2, 'x').substr(kChainBlock));
  c.commit();
  c.begin("20260103T000000Z-I", "20260102T000000Z-I");
  c.next_bundle();  // bundle 0 holds nothing of this backup
  c.unchanged("PG_VERSION");
  c.full("global/pg_control", std::string(512, 'f'));
  std::string rel2 = c.content["base/5/100"];
  rel2.replace(3 * kChainBlock, kChainBlock, block('3'));
  rel2.replace(1 * kChainBlock, kChainBlock, block('!'));
  c.blocks("base/5/100", 9, 9, {{1, block('!')}, {3, block('3')}}, rel2);
  c.unchanged("base/5/200");  // last piece: the first incremental's block-diff
  c.commit();

  // The first incremental's bundle 0 and the second's bundle 0 hold nothing the restore needs... but the
  // first incremental's bundle does (200's block-diff); the full backup's bundle 1 (base/5/200) too.
  // The full backup's pg_control is replaced later: its bundle 0 is still needed for PG_VERSION.
  r.record_bundle_reads();
  RestoreResult res = run_restore(*r.repo, r.options());
  EXPECT_EQ(res.plan.chain.size(), 2u);
  r.expect_contents();
  std::vector<std::string> want = {keys::backup_bundle("20260101T000000Z-F", 0),
                                   keys::backup_bundle("20260101T000000Z-F", 1),
                                   keys::backup_bundle("20260102T000000Z-I", 0),
                                   keys::backup_bundle("20260103T000000Z-I", 1)};
  EXPECT_EQ(r.bundles_read(), want);  // the newest backup's empty bundle 0 is not read
}

// Three layers of one file: the newest backup's block wins over the middle one's (block 1), the middle
// one's truncation to 3 blocks removes the full backup's blocks 3..7 (zeros unless a newer piece lists
// them), the newest extends the file to 10 blocks. A file whose newest block-diff lists every block
// needs nothing older: the full backup's bundle holding it is not read.
TEST(IncrementalRestore, ThreeLayersComposeNewestFirstAndACoveredBaseIsNotRead) {
  ChainRepo r;
  ChainBuilder& c = first_incremental(r);
  const std::string a = blocks_text(8, 'a');
  auto old_block = [&](std::size_t b) { return a.substr(b * kChainBlock, kChainBlock); };
  c.blocks("base/5/100", 3, 6, {{1, block('M')}, {4, block('N')}},
           old_block(0) + block('M') + old_block(2) + zeros(1) + block('N') + zeros(1));
  c.unchanged("base/5/200");
  c.commit();
  c.begin("20260103T000000Z-I", "20260102T000000Z-I");
  c.unchanged("PG_VERSION");
  c.unchanged("global/pg_control");
  c.blocks("base/5/100", 6, 10, {{1, block('Z')}, {7, block('P')}, {9, block('Q')}},
           old_block(0) + block('Z') + old_block(2) + zeros(1) + block('N') + zeros(2) + block('P') + zeros(1) +
               block('Q'));
  c.blocks("base/5/200", 2, 3, {{0, block('U')}, {1, block('V')}, {2, block('W')}}, block('U') + block('V') + block('W'));
  c.commit();

  r.record_bundle_reads();
  RestoreResult res = run_restore(*r.repo, r.options());
  EXPECT_EQ(res.plan.chain.size(), 2u);
  r.expect_contents();
  EXPECT_EQ(res.files, 5u);  // PG_VERSION, pg_control, 100, 200 and backup_label
  std::vector<std::string> want = {keys::backup_bundle("20260101T000000Z-F", 0),
                                   keys::backup_bundle("20260102T000000Z-I", 0),
                                   keys::backup_bundle("20260103T000000Z-I", 0)};
  EXPECT_EQ(r.bundles_read(), want);
}

TEST(IncrementalRestore, ABrokenChainIsRefusedBeforeAnythingIsWritten) {
  ChainRepo r;
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T120000Z-F");  // a parent that does not exist
  c.unchanged("PG_VERSION");
  c.commit();
  // Chosen by name: the missing link is the error.
  try {
    run_restore(*r.repo, r.options("20260102T000000Z-I"));
    ADD_FAILURE() << "restored a backup without its parent";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("its parent 20260101T120000Z-F does not exist"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(r.tmp / "pgdata"));
  // Chosen automatically: the full backup serves instead.
  Inventory inv = load_inventory(*r.repo);
  EXPECT_EQ(plan_restore(*r.repo, inv, r.options()).backup.label, "20260101T000000Z-F");
}

TEST(IncrementalRestore, ChainLinksAreChecked) {
  Inventory inv;
  auto add = [&](const std::string& label, const std::string& parent, std::uint64_t seg) {
    BackupManifest m = pgvault::testing::backup_manifest(label, 1, seg, seg + 1);
    m.type = parent.empty() ? "full" : "incremental";
    m.parent = parent;
    inv.backups.push_back(m);
    return &inv.backups.back();
  };
  inv.backups.reserve(8);
  add("A-F", "", 2);
  add("B-I", "A-F", 4);
  BackupManifest* c = add("C-I", "B-I", 6);
  BackupChain ok = resolve_chain(inv, *c);
  EXPECT_TRUE(ok.complete()) << ok.problem;
  EXPECT_EQ(ok.text(), "A-F <- B-I <- C-I");

  // A server-side incremental names the backup it was taken against: its parent's start and timeline.
  c->backup_label = "START WAL LOCATION: 0/6000028\nINCREMENTAL FROM LSN: " + format_lsn(inv.backups[1].start_lsn) +
                    "\nINCREMENTAL FROM TLI: 1\nSTART TIME: x\n";
  EXPECT_TRUE(resolve_chain(inv, *c).complete()) << resolve_chain(inv, *c).problem;
  inv.backups[1].start_lsn += 0x1000;  // another backup under the parent's label (a copy over another)
  BackupChain other = resolve_chain(inv, *c);
  EXPECT_EQ(other.problem_kind, ErrorKind::Corruption);
  EXPECT_NE(other.problem.find("its parent B-I is not the backup it was taken against"), std::string::npos)
      << other.problem;
  inv.backups[1].start_lsn -= 0x1000;
  inv.backups[1].timeline = 2;
  EXPECT_FALSE(resolve_chain(inv, *c).complete());
  inv.backups[1].timeline = 1;
  c->backup_label = "START WAL LOCATION: ...";  // the client-side form (no such lines) from here on

  // Every incremental's manifest records its parent's start and timeline too: the parent must be that
  // backup whatever the mode (a client-side incremental's blocks were chosen against its start).
  c->parent_start_lsn = inv.backups[1].start_lsn;
  c->parent_timeline = 1;
  EXPECT_TRUE(resolve_chain(inv, *c).complete()) << resolve_chain(inv, *c).problem;
  inv.backups[1].start_lsn += 0x1000;
  BackupChain replaced = resolve_chain(inv, *c);
  EXPECT_EQ(replaced.problem_kind, ErrorKind::Corruption);
  EXPECT_NE(replaced.problem.find("its parent B-I is not the backup it was taken against (that one started at "
                                  "0/4000028 on timeline 1, by its manifest"),
            std::string::npos)
      << replaced.problem;
  inv.backups[1].start_lsn -= 0x1000;
  c->parent_timeline = 2;
  EXPECT_FALSE(resolve_chain(inv, *c).complete());
  c->parent_start_lsn = 0;  // older manifests: not recorded, not checked
  EXPECT_TRUE(resolve_chain(inv, *c).complete()) << resolve_chain(inv, *c).problem;

  inv.backups[0].system_identifier = 7;  // the full backup is of another database system
  BackupChain foreign = resolve_chain(inv, *c);
  EXPECT_EQ(foreign.problem_kind, ErrorKind::Foreign);
  EXPECT_NE(foreign.problem.find("backup B-I: its parent A-F is of another database system"), std::string::npos)
      << foreign.problem;
  inv.backups[0].system_identifier = 42;

  inv.backups[1].start_lsn = inv.backups[2].start_lsn;  // the parent does not start before its child
  EXPECT_NE(resolve_chain(inv, *c).problem.find("its parent B-I does not start before it"), std::string::npos);
  inv.backups[1].start_lsn = 1;
  inv.backups[1].parent = "C-I";  // a loop
  EXPECT_NE(resolve_chain(inv, *c).problem.find("loops back to C-I"), std::string::npos);
  inv.backups[1].parent = "Z-F";
  IncompleteBackup z;
  z.label = "Z-F";
  inv.incomplete.push_back(z);
  BackupChain missing = resolve_chain(inv, *c);
  EXPECT_EQ(missing.problem_kind, ErrorKind::NotFound);
  EXPECT_NE(missing.problem.find("backup B-I: its parent Z-F is incomplete (chain of C-I)"), std::string::npos)
      << missing.problem;
  EXPECT_EQ(missing.text(), "B-I <- C-I");
}

// A changed byte in a block-diff: the CRC-32C of the stored entry names it; a block-diff whose structure
// is damaged under a matching CRC is named by its reader; either way nothing is left behind.
TEST(IncrementalRestore, ADamagedBlockDiffIsNamedAndNothingIsLeft) {
  for (bool fix_crc : {false, true}) {
    ChainRepo r;
    base_full(r);
    ChainBuilder& c = *r.chain;
    c.begin("20260102T000000Z-I", "20260101T000000Z-F");
    c.unchanged("PG_VERSION");
    c.unchanged("global/pg_control");
    c.blocks("base/5/100", 8, 8, {{2, block('X')}}, "");
    // fix_crc: the block number (bytes 36..39 of the entry: 32 header + 4 count) says block 9 of 8, under
    // a CRC-32C that matches; else one byte of the block's data changed.
    ManifestFile& f = c.cur().files.back();
    if (fix_crc) {
      c.plain[f.offset + kBlockDiffHeaderSize + 4] = 9;
      f.crc32c = crc32c_hex(crc32c(as_bytes(c.plain.substr(f.offset, f.stored_size))));
    } else {
      c.plain[f.offset + kBlockDiffHeaderSize + 8 + 100] ^= 1;
    }
    c.commit();
    try {
      run_restore(*r.repo, r.options());
      ADD_FAILURE() << "restored a damaged block-diff";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << msg;
      EXPECT_NE(msg.find("backup 20260102T000000Z-I: file base/5/100 (bundle bundle-000000)"), std::string::npos) << msg;
      EXPECT_NE(msg.find(fix_crc ? "lists block 9 out of order or beyond its 8 blocks" : "changed blocks fail verification: CRC-32C"),
                std::string::npos) << msg;
    }
    EXPECT_FALSE(exists(r.tmp / "pgdata"));
  }
}

// The reconstructed file must have the size the newest manifest gives it.
TEST(IncrementalRestore, ALengthThatDisagreesWithTheManifestIsCorruption) {
  ChainRepo r;
  base_full(r);
  ChainBuilder& c = *r.chain;
  c.begin("20260102T000000Z-I", "20260101T000000Z-F");
  c.blocks("base/5/100", 8, 8, {{2, block('X')}}, "");
  c.cur().files.back().size += kChainBlock;
  c.commit();
  EXPECT_THROW_KIND(run_restore(*r.repo, r.options()), ErrorKind::Corruption);
  c.begin("20260103T000000Z-I", "20260101T000000Z-F");
  c.unchanged("base/5/100");
  c.cur().files.back().size = 5;  // unchanged, but the manifest says another size
  c.commit();
  try {
    run_restore(*r.repo, r.options("20260103T000000Z-I"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file base/5/100 (bundle bundle-000000): reconstructed file has 8192 bytes, the manifest says 5"),
              std::string::npos) << e.what();
  }
}

TEST(IncrementalRestore, LabelLosesOnlyTheIncrementalLines) {
  EXPECT_EQ(restore_detail::label_without_incremental_lines(
                "START WAL LOCATION: 0/4000028\nINCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\nSTART TIME: x\n"),
            "START WAL LOCATION: 0/4000028\nSTART TIME: x\n");
  EXPECT_EQ(restore_detail::label_without_incremental_lines("A\nB"), "A\nB");
}
