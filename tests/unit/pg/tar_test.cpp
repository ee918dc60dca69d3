#include "common/pg/tar.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/base/errors.h"

namespace pgvault {
namespace {

struct Recorder : TarHandler {
  struct Item {
    TarEntry entry;
    std::string data;
    bool ended = false;
  };
  std::vector<Item> items;
  void begin_entry(const TarEntry& e) override { items.push_back({e, "", false}); }
  void entry_data(ByteView d) override { items.back().data.append(reinterpret_cast<const char*>(d.data()), d.size()); }
  void end_entry() override { items.back().ended = true; }
};

void put_octal(std::uint8_t* p, std::size_t n, std::uint64_t v) {
  std::snprintf(reinterpret_cast<char*>(p), n, "%0*llo", static_cast<int>(n - 1), static_cast<unsigned long long>(v));
}

void set_checksum(std::uint8_t* h) {
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += h[i];
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum);
  h[155] = ' ';
}

// One ustar entry (header + content + padding).
std::string entry(const std::string& name, char type, const std::string& content = "", const std::string& link = "",
                  const std::string& prefix = "", std::uint32_t mode = 0600) {
  std::uint8_t h[512] = {};
  std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
  put_octal(h + 100, 8, mode);
  put_octal(h + 108, 8, 26);
  put_octal(h + 116, 8, 26);
  put_octal(h + 124, 12, content.size());
  put_octal(h + 136, 12, 1700000000);
  h[156] = static_cast<std::uint8_t>(type);
  std::memcpy(h + 157, link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(h + 257, "ustar\0" "00", 8);
  std::memcpy(h + 345, prefix.data(), std::min<std::size_t>(prefix.size(), 155));
  set_checksum(h);
  std::string out(reinterpret_cast<char*>(h), 512);
  out += content;
  out.append((512 - content.size() % 512) % 512, '\0');
  return out;
}

Recorder parse(const std::string& archive, std::size_t piece = 0) {
  Recorder r;
  TarParser p(r, "test.tar");
  if (piece == 0) piece = archive.size();
  for (std::size_t i = 0; i < archive.size(); i += piece) {
    p.feed(as_bytes(std::string_view(archive).substr(i, piece)));
  }
  p.finish();
  return r;
}

TEST(Tar, FilesDirectoriesLinksAnySplit) {
  std::string big(70000, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::string a = entry("backup_label", '0', "START WAL LOCATION: 0/2000028\n") + entry("base/", '5', "", "", "", 0700) +
                  entry("base/1/1259", '0', big) + entry("empty", '0') +
                  entry("pg_tblspc/16384", '2', "", "/srv/ts") + entry("./global/pg_control", '0', "ctl");
  for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{511}, std::size_t{4096}}) {
    Recorder r = parse(a, piece);
    ASSERT_EQ(r.items.size(), 6u);
    EXPECT_EQ(r.items[0].entry.path, "backup_label");
    EXPECT_EQ(r.items[0].data, "START WAL LOCATION: 0/2000028\n");
    EXPECT_EQ(r.items[1].entry.type, TarEntry::Type::Directory);
    EXPECT_EQ(r.items[1].entry.path, "base");
    EXPECT_EQ(r.items[1].entry.mode, 0700u);
    EXPECT_EQ(r.items[2].data, big);
    EXPECT_EQ(r.items[2].entry.size, big.size());
    EXPECT_EQ(r.items[2].entry.mtime, 1700000000);
    EXPECT_EQ(r.items[3].entry.size, 0u);
    EXPECT_EQ(r.items[4].entry.type, TarEntry::Type::Symlink);
    EXPECT_EQ(r.items[4].entry.link_target, "/srv/ts");
    EXPECT_EQ(r.items[5].entry.path, "global/pg_control");
    for (const auto& it : r.items) EXPECT_TRUE(it.ended);
  }
}

TEST(Tar, EndMarkerIsOptional) {
  std::string a = entry("f", '0', "abc");
  EXPECT_EQ(parse(a).items.size(), 1u);
  EXPECT_EQ(parse(a + std::string(1024, '\0')).items.size(), 1u);
  Recorder r;
  TarParser p(r, "t");
  EXPECT_THROW(p.feed(as_bytes(a + std::string(1024, '\0') + "junk")), Error);
}

TEST(Tar, PrefixGnuLongNameAndPax) {
  std::string longname(150, 'n');
  std::string a = entry("file", '0', "1", "", "some/prefix") + entry("././@LongLink", 'L', longname + '\0') +
                  entry("truncated", '0', "2") + entry("PaxHeader", 'x', "22 path=pax/long/name\n") +
                  entry("short", '0', "3");
  Recorder r = parse(a, 7);
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].entry.path, "some/prefix/file");
  EXPECT_EQ(r.items[1].entry.path, longname);
  EXPECT_EQ(r.items[1].data, "2");
  EXPECT_EQ(r.items[2].entry.path, "pax/long/name");
}

TEST(Tar, BadChecksumIsCorruption) {
  std::string a = entry("f", '0', "abc");
  a[10] ^= 1;
  try {
    parse(a);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find("test.tar"), std::string::npos);
  }
}

TEST(Tar, TruncatedArchiveIsCorruption) {
  std::string a = entry("f", '0', std::string(1000, 'z'));
  for (std::size_t cut : {std::size_t{100}, std::size_t{600}, a.size() - 10}) {
    Recorder r;
    TarParser p(r, "t");
    p.feed(as_bytes(std::string_view(a).substr(0, cut)));
    try {
      p.finish();
      FAIL() << cut;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    }
  }
}

// Member names that would leave the directory the archive is restored into are corruption, named, and
// the handler never sees them (nothing is stored under such a name); entries before them are intact.
TEST(Tar, UnsafeMemberNamesAreCorruption) {
  const std::string longname = "base/" + std::string(120, 'x') + "/../../../../etc/passwd";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {entry("/etc/passwd", '0', "x"), "/etc/passwd"},
      {entry("../outside", '0', "x"), "../outside"},
      {entry("base/../../outside", '5'), "base/../../outside"},
      {entry("base//1", '0', "x"), "base//1"},
      {entry("base/./1", '0', "x"), "base/./1"},
      {entry("passwd", '0', "x", "", "/etc"), "/etc/passwd"},
      {entry("x", 'x', "22 path=../pax/escape\n") + entry("short", '0', "y"), "../pax/escape"},
      {entry("././@LongLink", 'L', longname + '\0') + entry("truncated", '0', "y"), longname},
  };
  for (const auto& [bad, name] : cases) {
    Recorder r;
    TarParser p(r, "base.tar");
    try {
      p.feed(as_bytes(entry("ok", '0', "fine") + bad));
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << name;
      EXPECT_NE(std::string(e.what()).find("base.tar: tar member \"" + name + "\""), std::string::npos) << e.what();
    }
    ASSERT_EQ(r.items.size(), 1u) << name;
    EXPECT_EQ(r.items[0].entry.path, "ok");
    EXPECT_TRUE(r.items[0].ended);
  }
  // What PostgreSQL sends is accepted: relative names, a leading "./" and a trailing '/' are cleaned.
  Recorder r = parse(entry("./global/", '5') + entry("base/1/1259", '0', "z") + entry("pg_tblspc/16384", '2', "", "/abs"));
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[0].entry.path, "global");
  EXPECT_EQ(r.items[2].entry.link_target, "/abs");
  EXPECT_EQ(unsafe_member_reason("a/b"), "");
  EXPECT_EQ(unsafe_member_reason("a/../b"), "a \"..\" component");
  EXPECT_EQ(unsafe_member_reason(std::string_view("a\0b", 3)), "a NUL byte in the name");
}

TEST(Tar, Base256Size) {
  std::string a = entry("f", '0', "hello");
  // Rewrite the size field as base-256 (GNU) and fix the checksum.
  std::uint8_t* h = reinterpret_cast<std::uint8_t*>(a.data());
  std::memset(h + 124, 0, 12);
  h[124] = 0x80;
  h[135] = 5;
  set_checksum(h);
  Recorder r = parse(a);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].data, "hello");
}

// Rewrites the size field of the header at `at` (octal) and fixes its checksum.
void set_size(std::string& archive, std::size_t at, std::uint64_t size) {
  std::uint8_t* h = reinterpret_cast<std::uint8_t*>(archive.data() + at);
  put_octal(h + 124, 12, size);
  set_checksum(h);
}

// Extension headers (pax path/size/mtime, GNU long name and long link) apply to the next entry only.
TEST(Tar, ExtensionHeadersApplyToTheNextEntryOnly) {
  std::string sized = entry("sized", '0', "hello");
  set_size(sized, 0, 0);  // the pax size is the one that counts
  std::string a = entry("PaxHeader", 'x', "10 size=5\n22 mtime=1234567890.5\n22 path=pax/long/name\n") + sized +
                  entry("plain", '0', "p") + entry("././@LongLink", 'K', std::string(120, 't') + '\0') +
                  entry("lnk", '2', "", "short") + entry("lnk2", '2', "", "short");
  Recorder r = parse(a, 3);
  ASSERT_EQ(r.items.size(), 4u);
  EXPECT_EQ(r.items[0].entry.path, "pax/long/name");
  EXPECT_EQ(r.items[0].data, "hello");
  EXPECT_EQ(r.items[0].entry.size, 5u);
  EXPECT_EQ(r.items[0].entry.mtime, 1234567890);
  EXPECT_EQ(r.items[1].entry.path, "plain");
  EXPECT_EQ(r.items[1].entry.mtime, 1700000000);
  EXPECT_EQ(r.items[1].data, "p");
  EXPECT_EQ(r.items[2].entry.link_target, std::string(120, 't'));
  EXPECT_EQ(r.items[3].entry.link_target, "short");
}

// Directories, symlinks and hard links carry no content whatever size their header records.
TEST(Tar, LinksAndDirectoriesHaveNoContent) {
  std::string dir = entry("d", '5'), hard = entry("h", '1', "", "f"), other = entry("fifo", '6');
  set_size(dir, 0, 700);
  set_size(hard, 0, 3);
  Recorder r = parse(dir + hard + other + entry("f", '0', "x"));
  ASSERT_EQ(r.items.size(), 4u);
  EXPECT_EQ(r.items[0].entry.size, 0u);
  EXPECT_EQ(r.items[1].entry.size, 0u);
  EXPECT_EQ(r.items[1].entry.type, TarEntry::Type::Other);
  EXPECT_EQ(r.items[1].entry.typeflag, '1');
  EXPECT_EQ(r.items[2].entry.type, TarEntry::Type::Other);
  EXPECT_EQ(r.items[3].data, "x");
}

TEST(Tar, HeaderErrorsNameTheArchiveAndOffset) {
  auto message = [](const std::string& archive) -> std::string {
    try {
      parse(archive);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
      return e.what();
    }
    return "no error";
  };
  std::string damaged = entry("a", '0', "abc") + entry("b", '0', "def");
  damaged[1024 + 3] ^= 1;  // the second header
  EXPECT_EQ(message(damaged), "test.tar: tar header checksum mismatch at offset 1024 (damaged stream)");
  std::string huge = entry("PaxHeader", 'x', "10 size=5\n");
  set_size(huge, 0, 2u << 20);
  EXPECT_EQ(message(huge), "test.tar: oversized tar extension header at offset 0");
  std::string nameless = entry("", '0', "z");
  EXPECT_EQ(message(entry("a", '0') + nameless), "test.tar: tar entry without a name at offset 512");
  std::string bad_number = entry("a", '0', "z");
  bad_number[100] = '9';
  set_checksum(reinterpret_cast<std::uint8_t*>(bad_number.data()));
  EXPECT_EQ(message(bad_number), "test.tar: malformed number in tar header at offset 0");
}

}  // namespace
}  // namespace pgvault
