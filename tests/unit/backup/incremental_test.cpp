// The incremental backup's pieces: PostgreSQL's INCREMENTAL files converted to block-diff entries, the
// client-side block filter, the stored form of each file (TarReceiver) and the choice of the parent.
#include <gtest/gtest.h>

#include <cctype>
#include <map>

#include "common/backup/block_forms.h"
#include "common/backup/incremental.h"
#include "common/backup/tar_receiver.h"
#include "common/pg/crc32c.h"
#include "common/repo/block_diff.h"
#include "common/repo/layout.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::uint32_t kBs = 8192;

struct BytesSink final : Sink {
  Bytes data;
  void write(ByteView d) override { data.insert(data.end(), d.begin(), d.end()); }
  void finish() override {}
};

void put32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes block_of(std::uint32_t n, std::uint32_t bs = kBs) { return Bytes(bs, static_cast<std::uint8_t>(n % 251 + 1)); }

// An INCREMENTAL file laid out as PostgreSQL 17's sendFile writes it (padded) or as an unpadded header.
Bytes incremental_file(const std::vector<std::uint32_t>& blocks, std::uint32_t truncation, bool pad = true,
                       std::uint32_t magic = kIncrementalMagic) {
  Bytes b;
  put32(b, magic);
  put32(b, static_cast<std::uint32_t>(blocks.size()));
  put32(b, truncation);
  for (auto n : blocks) put32(b, n);
  if (pad && !blocks.empty() && b.size() % kBs != 0) b.resize(b.size() + kBs - b.size() % kBs, 0);
  for (auto n : blocks) {
    Bytes blk = block_of(n);
    b.insert(b.end(), blk.begin(), blk.end());
  }
  return b;
}

struct Decoded {
  BlockDiffHeader header;
  std::map<std::uint32_t, Bytes> blocks;
};
Decoded decode(const Bytes& diff) {
  Decoded d;
  BlockDiffReader r("test", [&](const BlockDiffHeader& h) { d.header = h; },
                    [&](std::uint32_t n, ByteView b) { d.blocks[n] = Bytes(b.begin(), b.end()); });
  r.write(diff);
  r.finish();
  return d;
}

// Feeds `file` in pieces of `piece` bytes; returns the reconstructed size and the block-diff bytes.
std::pair<std::uint64_t, Bytes> convert(const Bytes& file, std::size_t piece) {
  BytesSink out;
  IncrementalFileConverter c("base/5/INCREMENTAL.16384", file.size(), kBs, out);
  for (std::size_t i = 0; i < file.size(); i += piece) c.write(ByteView(file).subspan(i, std::min(piece, file.size() - i)));
  std::uint64_t size = c.finish();
  EXPECT_EQ(c.stored_bytes(), out.data.size());
  return {size, out.data};
}

TEST(IncrementalFile, ConvertsPaddedAndUnpaddedHeaders) {
  for (bool pad : {true, false}) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{777}, std::size_t{1} << 20}) {
      auto [size, diff] = convert(incremental_file({0, 3, 9}, 5, pad), piece);
      Decoded d = decode(diff);
      EXPECT_EQ(size, 10u * kBs);  // the last block (9) is past the truncation length (5)
      EXPECT_EQ(d.header.truncation_blocks, 5u);
      EXPECT_EQ(d.header.file_blocks, 10u);
      ASSERT_EQ(d.blocks.size(), 3u);
      EXPECT_EQ(d.blocks[3], block_of(3));
      EXPECT_EQ(d.blocks[9], block_of(9));
    }
  }
}

TEST(IncrementalFile, NoBlocksKeepsTheTruncationLength) {
  auto [size, diff] = convert(incremental_file({}, 7), 5);
  Decoded d = decode(diff);
  EXPECT_EQ(size, 7u * kBs);
  EXPECT_EQ(d.header.truncation_blocks, 7u);
  EXPECT_EQ(d.header.file_blocks, 7u);
  EXPECT_TRUE(d.blocks.empty());
}

TEST(IncrementalFile, HostileOrDamagedFilesAreRefused) {
  auto refuse = [](Bytes file, std::uint64_t entry_size) {
    BytesSink out;
    IncrementalFileConverter c("f", entry_size, kBs, out);
    c.write(file);
    c.finish();
  };
  Bytes good = incremental_file({1, 2}, 3);
  EXPECT_THROW_KIND(refuse(incremental_file({1, 2}, 3, true, 0xd3ae1f0e), good.size()), ErrorKind::Corruption);
  EXPECT_THROW_KIND(refuse(incremental_file({2, 1}, 3), good.size()), ErrorKind::Corruption);  // not ascending
  EXPECT_THROW_KIND(refuse(incremental_file({1, 1}, 3), good.size()), ErrorKind::Corruption);  // repeated
  Bytes cut(good.begin(), good.end() - 1);
  EXPECT_THROW_KIND(refuse(cut, good.size()), ErrorKind::Corruption);        // the entry ends early
  EXPECT_THROW_KIND(refuse(cut, cut.size()), ErrorKind::Corruption);         // size inconsistent with the header
  Bytes header_only(good.begin(), good.begin() + 10);
  EXPECT_THROW_KIND(refuse(header_only, 10), ErrorKind::Corruption);
  Bytes huge;
  put32(huge, kIncrementalMagic);
  put32(huge, 0xffffffffu);  // a count that would allocate 16 GiB of block numbers
  put32(huge, 0);
  EXPECT_THROW_KIND(refuse(huge, 1ull << 40), ErrorKind::Corruption);
  Bytes far = incremental_file({kMaxIncrementalBlocks}, 0);
  EXPECT_THROW_KIND(refuse(far, far.size()), ErrorKind::Corruption);
}

// A page with pd_lsn = lsn and pd_upper = upper (the rest filled).
Bytes page(std::uint64_t lsn, std::uint16_t upper = 8000, std::uint8_t fill = 7) {
  Bytes p(kBs, fill);
  Bytes h;
  put32(h, static_cast<std::uint32_t>(lsn >> 32));
  put32(h, static_cast<std::uint32_t>(lsn));
  std::copy(h.begin(), h.end(), p.begin());
  p[14] = static_cast<std::uint8_t>(upper);
  p[15] = static_cast<std::uint8_t>(upper >> 8);
  return p;
}

TEST(ChangedBlocks, PageLsnDecides) {
  const std::uint64_t since = 0x1'0000'2000ull;
  EXPECT_FALSE(page_changed_since(page(since - 1), since));
  EXPECT_TRUE(page_changed_since(page(since), since));
  EXPECT_TRUE(page_changed_since(page(since + 0x1'0000'0000ull), since));  // xlogid is the high half
  EXPECT_FALSE(page_changed_since(page(0x2000), since));
  EXPECT_TRUE(page_changed_since(Bytes(kBs, 0), since));      // new: all zero
  EXPECT_TRUE(page_changed_since(page(5, 0), since));          // new: pd_upper 0
  EXPECT_TRUE(page_changed_since(page(0), since));             // LSN 0
}

Bytes concat(const std::vector<Bytes>& pages) {
  Bytes out;
  for (const auto& p : pages) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(ChangedBlocks, KeepsChangedNewAndExtendedBlocks) {
  const std::uint64_t since = 0x5000000;
  // blocks 0 old, 1 changed, 2 old, 3 new (zero), 4 old but past the parent's 4 blocks.
  Bytes file = concat({page(0x100), page(since + 8), page(0x200), Bytes(kBs, 0), page(0x300)});
  BytesSink out;
  ChangedBlockFilter f("base/5/16384", file.size(), kBs, 4ull * kBs, since, false, out);
  for (std::size_t i = 0; i < file.size(); i += 1000) f.write(ByteView(file).subspan(i, std::min<std::size_t>(1000, file.size() - i)));
  f.finish();
  Decoded d = decode(out.data);
  EXPECT_EQ(d.header.truncation_blocks, 5u);
  EXPECT_EQ(d.header.file_blocks, 5u);
  std::vector<std::uint32_t> kept;
  for (const auto& [n, b] : d.blocks) kept.push_back(n);
  EXPECT_EQ(kept, (std::vector<std::uint32_t>{1, 3, 4}));
  EXPECT_EQ(d.blocks[1], page(since + 8));
  EXPECT_EQ(f.stored_bytes(), out.data.size());
}

TEST(ChangedBlocks, ShrunkFileAndEveryBlockMode) {
  Bytes file = concat({page(0x100), page(0x100)});
  BytesSink out;
  ChangedBlockFilter f("base/5/16384_fsm", file.size(), kBs, 9ull * kBs, 0x5000000, true, out);
  f.write(file);
  f.finish();
  Decoded d = decode(out.data);
  EXPECT_EQ(d.header.truncation_blocks, 2u);  // the parent's blocks 2..8 are dropped
  EXPECT_EQ(d.blocks.size(), 2u);
  BytesSink out2;
  ChangedBlockFilter g("x", file.size(), kBs, 0, 0x5000000, false, out2);
  g.write(ByteView(file).subspan(0, kBs));
  EXPECT_THROW_KIND(g.finish(), ErrorKind::Corruption);
}

// ---- stored forms, through TarReceiver --------------------------------------------------------------

struct Received {
  BackupManifest m;
  std::vector<ReceivedFile> raw;
  testing::MemoryStorage storage;
};

void receive(Received& r, const IncrementalBase* inc, const std::vector<std::pair<std::string, Bytes>>& files) {
  BundleUploaderOptions o;
  BundleUploader up(r.storage, "L", o, nullptr);
  TarReceiver rec(r.m, up, 1 << 20, inc);
  rec.start_archive(0, "base.tar");
  for (const auto& [path, content] : files) {
    TarEntry e;
    e.path = path;
    e.size = content.size();
    rec.begin_entry(e);
    rec.entry_data(content);
    rec.end_entry();
  }
  r.m.bundles = up.finish();
  r.raw = rec.received_files();
}

ManifestFile parent_entry(const std::string& path, const Bytes& content) {
  ManifestFile f;
  f.path = path;
  f.size = content.size();
  f.crc32c = crc32c_hex(crc32c(content));
  return f;
}

TEST(StoredForm, ClientModeForms) {
  const std::uint64_t since = 0x5000000;
  Bytes rel = concat({page(0x100), page(since + 1)}), conf = bytes_of("a = 1\n"), conf2 = bytes_of("a = 2\n");
  IncrementalBase inc;
  inc.since_lsn = since;
  inc.parent_files = ParentFiles({parent_entry("base/5/16384", rel), parent_entry("postgresql.auto.conf", conf),
                                  parent_entry("pg_ident.conf", conf)});
  Received r;
  receive(r, &inc, {{"base/5/16384", rel}, {"base/5/16390", rel}, {"postgresql.auto.conf", conf},
                    {"pg_ident.conf", conf2}, {"backup_label", conf}});
  ASSERT_EQ(r.m.files.size(), 5u);
  const auto& blocks = r.m.files[0];
  EXPECT_EQ(blocks.kind, FileKind::Blocks);
  EXPECT_EQ(blocks.size, rel.size());
  EXPECT_LT(blocks.stored_size, rel.size());
  EXPECT_EQ(r.m.files[1].kind, FileKind::Full);  // the parent lacks it
  EXPECT_EQ(r.m.files[2].kind, FileKind::Unchanged);
  EXPECT_EQ(r.m.files[2].crc32c, parent_entry("", conf).crc32c);
  EXPECT_EQ(r.m.files[3].kind, FileKind::Full);  // same size, other content
  EXPECT_EQ(r.m.files[4].kind, FileKind::Full);  // backup_label: always whole
  EXPECT_EQ(r.m.backup_label, "a = 1\n");
  // The stored bytes: the block-diff entry (its CRC-32C in the manifest), then the whole files.
  Bytes plain = decode_bytes(r.storage.objects.at(keys::backup_bundle("L", blocks.bundle)), nullptr,
                             keys::backup_bundle("L", blocks.bundle), "bundle");
  Bytes diff(plain.begin() + static_cast<std::ptrdiff_t>(blocks.offset),
             plain.begin() + static_cast<std::ptrdiff_t>(blocks.offset + blocks.stored_size));
  EXPECT_EQ(crc32c_hex(crc32c(diff)), blocks.crc32c);
  EXPECT_EQ(decode(diff).blocks.size(), 1u);
  EXPECT_EQ(plain.size(), blocks.stored_size + rel.size() + 2 * conf.size());
  // What the server sent, for its manifest: raw sizes and checksums.
  EXPECT_EQ(crc32c_hex(r.raw[0].crc32c), parent_entry("", rel).crc32c);
  EXPECT_EQ(r.raw[0].size, rel.size());
}

// The parent's files by (tablespace, path), whatever their order in the manifest; a CRC-32C counts only
// in crc32c_hex() form, as the text comparison it replaces.
TEST(StoredForm, ParentFilesLookup) {
  const Bytes conf = bytes_of("a = 1\n");
  std::vector<ManifestFile> files;
  for (const char* p : {"z", "base/5/16384", "m", "a"}) files.push_back(parent_entry(p, conf));
  files.push_back(parent_entry("zz", conf));  // a tablespace's file, after every path of the data directory
  files.back().tablespace = 16400;
  files.push_back(parent_entry("upper", conf));
  for (auto& c : files.back().crc32c) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  files.push_back(parent_entry("none", conf));
  files.back().crc32c.clear();
  const ParentFiles parent(files);
  for (const char* p : {"z", "base/5/16384", "m", "a"}) {
    const ParentFile* f = parent.find(0, p);
    ASSERT_NE(f, nullptr) << p;
    EXPECT_EQ(f->path, p);
    EXPECT_EQ(f->size, conf.size());
    EXPECT_EQ(f->crc32c, crc32c(conf));
  }
  EXPECT_EQ(parent.find(0, "b"), nullptr);
  EXPECT_EQ(parent.find(0, "zz"), nullptr);
  ASSERT_NE(parent.find(16400, "zz"), nullptr);
  EXPECT_EQ(parent.find(16400, "a"), nullptr);
  EXPECT_FALSE(parent.find(0, "upper")->crc32c.has_value());
  EXPECT_FALSE(parent.find(0, "none")->crc32c.has_value());
  // So a file of the parent's size and content whose parent entry has no usable CRC-32C is stored whole.
  IncrementalBase inc;
  inc.parent_files = ParentFiles(files);
  Received r;
  receive(r, &inc, {{"upper", conf}, {"m", conf}});
  EXPECT_EQ(r.m.files[0].kind, FileKind::Full);
  EXPECT_EQ(r.m.files[1].kind, FileKind::Unchanged);
}

TEST(StoredForm, ServerModeConvertsIncrementalFiles) {
  IncrementalBase inc;
  inc.server_mode = true;
  Bytes incr = incremental_file({2}, 3), whole = concat({page(1)});
  Received r;
  receive(r, &inc, {{"base/5/INCREMENTAL.16384", incr}, {"base/5/16390", whole}});
  ASSERT_EQ(r.m.files.size(), 2u);
  EXPECT_EQ(r.m.files[0].path, "base/5/16384");
  EXPECT_EQ(r.m.files[0].kind, FileKind::Blocks);
  EXPECT_EQ(r.m.files[0].size, 3u * kBs);
  EXPECT_EQ(r.m.files[1].kind, FileKind::Full);
  EXPECT_EQ(r.raw[0].path, "base/5/INCREMENTAL.16384");
  EXPECT_EQ(r.raw[0].size, incr.size());
  EXPECT_EQ(r.raw[0].crc32c, crc32c(incr));
  Received bad;
  EXPECT_THROW_KIND(receive(bad, &inc, {{"INCREMENTAL.pg_control", incr}}), ErrorKind::Corruption);
}

// ---- the parent --------------------------------------------------------------------------------------

BackupManifest backup(const std::string& label, std::uint32_t tl, std::uint64_t stop, const std::string& parent = "") {
  BackupManifest b;
  b.label = label;
  b.timeline = tl;
  b.start_lsn = stop - 0x100;
  b.stop_lsn = stop;
  b.pg_version = 17;
  b.system_identifier = 42;
  if (!parent.empty()) {
    b.type = "incremental";
    b.parent = parent;
  }
  return b;
}

ServerFacts server17() {
  ServerFacts s;
  s.version = 170002;
  s.system.system_identifier = 42;
  s.segment_size = 16u << 20;
  return s;
}

TEST(Parent, NewestUsableBackupOfTheHistory) {
  Inventory inv;
  inv.backups = {backup("A-F", 1, 0x3000000), backup("B-I", 1, 0x5000000, "A-F"), backup("C-F", 2, 0x9000000)};
  TimelineHistory h2;
  h2.timeline = 2;
  h2.entries = {{1, 0x6000000, ""}};
  inv.histories[2] = h2;
  EXPECT_EQ(choose_parent(inv, server17(), 2).parent->label, "C-F");
  EXPECT_EQ(choose_parent(inv, server17(), 1).parent->label, "B-I");  // C-F is on timeline 2
  inv.backups.pop_back();
  EXPECT_EQ(choose_parent(inv, server17(), 2).parent->label, "B-I");  // timeline 1 left at 0x6000000 > B's stop
  inv.histories[2].entries[0].switchpoint = 0x4000000;                // left before B's stop: not followable
  auto c = choose_parent(inv, server17(), 2);
  EXPECT_EQ(c.parent->label, "A-F");
  inv.histories.clear();
  c = choose_parent(inv, server17(), 2);
  EXPECT_FALSE(c.parent);
  EXPECT_NE(c.why_none.find("history file of timeline 2"), std::string::npos) << c.why_none;
}

// --type diff: the newest usable FULL backup, past newer incrementals; none usable: says "full".
TEST(Parent, ADifferentialsParentIsTheNewestFullBackup) {
  Inventory inv;
  inv.backups = {backup("A-F", 1, 0x3000000), backup("B-I", 1, 0x5000000, "A-F"), backup("C-I", 1, 0x7000000, "B-I")};
  EXPECT_EQ(choose_parent(inv, server17(), 1).parent->label, "C-I");
  EXPECT_EQ(choose_parent(inv, server17(), 1, true).parent->label, "A-F");
  inv.backups[0].system_identifier = 7;  // the only full backup is of another system
  auto c = choose_parent(inv, server17(), 1, true);
  EXPECT_FALSE(c.parent);
  EXPECT_NE(c.why_none.find("A-F cannot be a parent: it is of another database system"), std::string::npos) << c.why_none;
  inv.backups.erase(inv.backups.begin());
  EXPECT_NE(choose_parent(inv, server17(), 1, true).why_none.find("no complete full backup"), std::string::npos);
}

TEST(Parent, OtherSystemsVersionsAndBrokenChainsAreSkipped) {
  Inventory inv;
  EXPECT_NE(choose_parent(inv, server17(), 1).why_none.find("no complete backup"), std::string::npos);
  inv.backups = {backup("A-F", 1, 0x3000000), backup("B-I", 1, 0x5000000, "GONE-F")};
  EXPECT_EQ(choose_parent(inv, server17(), 1).parent->label, "A-F");
  inv.backups[0].system_identifier = 7;
  auto c = choose_parent(inv, server17(), 1);
  EXPECT_FALSE(c.parent);
  EXPECT_NE(c.why_none.find("GONE-F is missing"), std::string::npos) << c.why_none;
  inv.backups = {backup("A-F", 1, 0x3000000)};
  inv.backups[0].pg_version = 16;
  EXPECT_FALSE(choose_parent(inv, server17(), 1).parent);
}

}  // namespace
}  // namespace pgvault
