#include "common/storage/storage_fs.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::TempDir;

namespace {
std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
int count_temp_files(const std::string& dir) {
  int n = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().rfind(kTempPrefix, 0) == 0) ++n;
  }
  return n;
}
}  // namespace

TEST(FsStorage, PutGetHeadListRemove) {
  TempDir dir;
  auto s = make_fs_storage(dir.path() + "/repo");
  write_all(*s, "wal/0000000100000000/000000010000000000000001", as_bytes("hello"));
  write_all(*s, "wal/00000002.history", as_bytes("hist"));
  write_all(*s, "pgvault.json", as_bytes("{}"));
  Bytes got = read_all(*s, "wal/0000000100000000/000000010000000000000001");
  EXPECT_EQ(std::string(got.begin(), got.end()), "hello");
  auto info = s->head("wal/00000002.history");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, 4u);
  EXPECT_FALSE(s->head("wal/nope"));
  auto all = s->list("wal/");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key, "wal/0000000100000000/000000010000000000000001");
  EXPECT_EQ(all[1].key, "wal/00000002.history");
  EXPECT_EQ(s->list("wal/0000000100000000/").size(), 1u);
  EXPECT_EQ(s->list("wal/00000002").size(), 1u);
  EXPECT_EQ(s->list("").size(), 3u);
  EXPECT_EQ(s->list("nothing/").size(), 0u);
  s->remove("wal/00000002.history");
  s->remove("wal/00000002.history");  // missing is fine
  EXPECT_FALSE(s->head("wal/00000002.history"));
}

TEST(FsStorage, GetMissingIsNotFound) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  try {
    s->get("wal/x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  }
}

TEST(FsStorage, UnreadableIsNotNotFound) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads everything";
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  write_all(*s, "a/b", as_bytes("x"));
  ::chmod((dir.path() + "/a").c_str(), 0);
  try {
    s->get("a/b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
}

TEST(FsStorage, RangedGet) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  write_all(*s, "k", as_bytes("0123456789"));
  auto src = s->get("k", ByteRange{7, 3});
  Bytes out;
  VectorSink sink(out);
  pump(*src, sink);
  EXPECT_EQ(std::string(out.begin(), out.end()), "789");
}

TEST(FsStorage, NothingVisibleBeforeCommitAndAbortLeavesNoTrace) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  {
    auto w = s->put("x/obj");
    w->write(as_bytes("partial"));
    EXPECT_FALSE(s->head("x/obj"));
    EXPECT_TRUE(s->list("").empty());  // temp files are never listed
    EXPECT_EQ(count_temp_files(dir.path()), 1);
  }  // destroyed without commit
  EXPECT_FALSE(s->head("x/obj"));
  EXPECT_EQ(count_temp_files(dir.path()), 0);
}

TEST(FsStorage, IfAbsentNeverOverwrites) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  write_all(*s, "k", as_bytes("first"), PutOptions{.if_absent = true, .size = {}});
  try {
    write_all(*s, "k", as_bytes("second"), PutOptions{.if_absent = true, .size = {}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Duplicate);
  }
  EXPECT_EQ(read_file(dir.path() + "/k"), "first");
  EXPECT_EQ(count_temp_files(dir.path()), 0);
  write_all(*s, "k", as_bytes("third"));  // a plain put replaces atomically
  EXPECT_EQ(read_file(dir.path() + "/k"), "third");
}

TEST(FsStorage, RelativeRootIsAConfigError) {
  try {
    make_fs_storage("relative/repo");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
  }
}

TEST(FsStorage, NotWritableRootIsAnIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes everywhere";
  TempDir dir;
  ::mkdir((dir.path() + "/ro").c_str(), 0500);
  auto s = make_fs_storage(dir.path() + "/ro");
  EXPECT_THROW(write_all(*s, "k", as_bytes("x")), Error);
}

TEST(FsStorage, LargeObjectStreams) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  Bytes big(5 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7 + (i >> 12));
  auto w = s->put("big");
  for (std::size_t off = 0; off < big.size(); off += 100003) {
    w->write(ByteView(big).subspan(off, std::min<std::size_t>(100003, big.size() - off)));
  }
  w->commit();
  EXPECT_EQ(read_all(*s, "big"), big);
}

namespace {
// The pid of a child that has exited and been reaped: a pid that provably does not run.
long dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}
void touch(const std::string& path, std::int64_t age_s = 0) {
  std::ofstream(path) << "leftover";
  if (age_s > 0) {
    struct timespec t[2];
    t[0].tv_sec = t[1].tv_sec = ::time(nullptr) - age_s;
    t[0].tv_nsec = t[1].tv_nsec = 0;
    ::utimensat(AT_FDCWD, path.c_str(), t, 0);
  }
}
std::string temp_of(const std::string& dir, const std::string& name, long pid, const std::string& tag) {
  return dir + "/" + kTempPrefix + name + "." + std::to_string(pid) + "@" + tag + ".0.0badf00d";
}
}  // namespace

TEST(FsStorage, TempNamesCarryPidAndHostTag) {
  TempDir dir;
  const std::string tmp = fs_temp_path(dir.path() + "/wal/000000010000000000000003.partial");
  const std::string name = base_name(tmp);
  ASSERT_EQ(name.rfind(std::string(kTempPrefix) + "000000010000000000000003.partial.", 0), 0u) << name;
  auto owner = parse_fs_temp_name(name);
  ASSERT_TRUE(owner) << name;
  EXPECT_EQ(owner->pid, static_cast<long>(::getpid()));
  EXPECT_EQ(owner->host_tag, fs_host_tag());
  EXPECT_EQ(fs_host_tag().size(), 16u);
  EXPECT_FALSE(parse_fs_temp_name(".pgvault-tmp.000000010000000000000003.1234.0.deadbeef"));  // older form
  EXPECT_FALSE(parse_fs_temp_name("000000010000000000000003"));
}

// Leftovers of a killed writer (this host, pid gone) are removed; a live writer's file, another host's
// recent file and an older-form recent file stay; another host's file idle for a day goes.
TEST(FsStorage, SweepRemovesOnlyProvablyDeadWritersTemporaries) {
  TempDir dir;
  const std::string d = dir.path();
  const std::string mine = fs_host_tag();
  const std::string dead = temp_of(d, "seg.a", dead_pid(), mine);
  const std::string live = temp_of(d, "seg.b", ::getpid(), mine);
  const std::string live_old = temp_of(d, "seg.c", ::getpid(), mine);
  const std::string other_host = temp_of(d, "seg.d", dead_pid(), "0123456789abcdef");
  const std::string other_host_old = temp_of(d, "seg.e", 1, "0123456789abcdef");
  const std::string old_form = d + "/" + kTempPrefix + "seg.f.1234.0.deadbeef";
  const std::string object = d + "/seg.g";
  touch(dead);
  touch(live);
  touch(live_old, 3 * 86400);
  touch(other_host);
  touch(other_host_old, 2 * 86400);
  touch(old_form);
  touch(object, 3 * 86400);
  EXPECT_EQ(sweep_dead_temporaries(d), 2u);
  namespace sfs = std::filesystem;
  EXPECT_FALSE(sfs::exists(dead));
  EXPECT_FALSE(sfs::exists(other_host_old));
  EXPECT_TRUE(sfs::exists(live));
  EXPECT_TRUE(sfs::exists(live_old));
  EXPECT_TRUE(sfs::exists(other_host));
  EXPECT_TRUE(sfs::exists(old_form));
  EXPECT_TRUE(sfs::exists(object));
}

// put() sweeps the directory it writes to now and then (about one call in 16), never listing it on
// every call: after 64 puts into one directory a dead writer's leftover there is gone, one in another
// directory stays.
TEST(FsStorage, PutSweepsItsDirectoryOccasionally) {
  TempDir dir;
  auto s = make_fs_storage(dir.path());
  write_all(*s, "wal/a/first", as_bytes("x"));
  write_all(*s, "wal/b/first", as_bytes("x"));
  const long pid = dead_pid();
  const std::string here = temp_of(dir.path() + "/wal/a", "000000010000000000000009", pid, fs_host_tag());
  const std::string elsewhere = temp_of(dir.path() + "/wal/b", "000000010000000000000009", pid, fs_host_tag());
  touch(here);
  touch(elsewhere);
  for (int i = 0; i < 64; ++i) write_all(*s, "wal/a/seg" + std::to_string(i), as_bytes("x"));
  EXPECT_FALSE(std::filesystem::exists(here));
  EXPECT_TRUE(std::filesystem::exists(elsewhere));
  EXPECT_EQ(s->list("wal/a/").size(), 65u);
}

// storage.h: a Storage may be used from several threads at once (base-push's uploaders, the lock
// heartbeat). Under ThreadSanitizer (scripts/test.sh tsan) a race in FsStorage fails this test.
TEST(FsStorage, SeveralThreadsPutAtOnce) {
  TempDir dir;
  auto s = make_fs_storage(dir / "repo");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, t] { write_all(*s, "dir" + std::to_string(t) + "/o", as_bytes("x")); });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(s->list("").size(), 4u);
}

// ---- optional capabilities (storage.h): temporary files and empty folders ----------------------------

// Temporary files are invisible to list() but found by list_temporaries(), anywhere under the root, with
// their path under the root, size and mtime.
TEST(FsStorage, ListTemporariesFindsLeftoversEverywhere) {
  TempDir dir;
  auto s = make_fs_storage(dir / "repo");
  write_all(*s, "wal/0000000100000000/000000010000000000000001", as_bytes("seg"));
  write_all(*s, "top", as_bytes("x"));
  const std::string deep = std::string(kTempPrefix) + "000000010000000000000002.1@0000000000000000.0.0badf00d";
  const std::string top = std::string(kTempPrefix) + "pgvault.json.2@0000000000000000.0.0badf00d";
  std::ofstream(dir / ("repo/wal/0000000100000000/" + deep)) << "12345";
  std::ofstream(dir / ("repo/" + top)) << "1";
  std::vector<ObjectInfo> temps = s->list_temporaries();
  std::sort(temps.begin(), temps.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  ASSERT_EQ(temps.size(), 2u);
  EXPECT_EQ(temps[0].key, top);
  EXPECT_EQ(temps[0].size, 1u);
  EXPECT_EQ(temps[1].key, "wal/0000000100000000/" + deep);
  EXPECT_EQ(temps[1].size, 5u);
  EXPECT_GT(temps[1].mtime, 0);
  EXPECT_EQ(s->list("").size(), 2u);  // still invisible to list()

  s->remove_temporary(temps[1].key);
  EXPECT_FALSE(std::filesystem::exists(dir / ("repo/wal/0000000100000000/" + deep)));
  s->remove_temporary(temps[1].key);  // missing is fine
  EXPECT_EQ(s->list_temporaries().size(), 1u);
  // A root that does not exist (yet) holds none.
  EXPECT_TRUE(make_fs_storage(dir / "nothing")->list_temporaries().empty());
}

// remove_temporary() deletes temporary files only: an object, a path out of the root or a bare prefix is
// refused and nothing is removed.
TEST(FsStorage, RemoveTemporaryRefusesAnythingElse) {
  TempDir dir;
  auto s = make_fs_storage(dir / "repo");
  write_all(*s, "wal/a/seg", as_bytes("x"));
  const std::string tmp = kTempPrefix;
  for (const std::string& bad : std::vector<std::string>{"wal/a/seg", "../repo/wal/a/seg", "/etc/passwd", tmp,
                                                         "wal/../" + tmp + "x", "/" + tmp + "x", ""}) {
    EXPECT_THROW_KIND(s->remove_temporary(bad), ErrorKind::Internal);
  }
  EXPECT_TRUE(s->head("wal/a/seg"));
}

// remove_empty_folder() removes an emptied folder, leaves one with objects (or temporary files) in place,
// and never touches the root or a malformed prefix.
TEST(FsStorage, RemoveEmptyFolderOnlyRemovesEmptyOnes) {
  TempDir dir;
  auto s = make_fs_storage(dir / "repo");
  write_all(*s, "backups/L/bundle-000000", as_bytes("x"));
  write_all(*s, "wal/a/seg", as_bytes("x"));
  s->remove("backups/L/bundle-000000");
  s->remove_empty_folder("backups/L/");
  EXPECT_FALSE(std::filesystem::exists(dir / "repo/backups/L"));
  EXPECT_TRUE(std::filesystem::exists(dir / "repo/backups"));  // only the folder named
  s->remove_empty_folder("wal/a/");
  EXPECT_TRUE(s->head("wal/a/seg"));
  s->remove_empty_folder("backups/missing/");  // gone already: fine
  std::filesystem::create_directories(dir / "repo/empty");
  for (const char* bad : {"", "/", "empty", "../repo/empty/", "./empty/"}) s->remove_empty_folder(bad);
  EXPECT_TRUE(std::filesystem::exists(dir / "repo/empty"));
  s->remove_empty_folder("empty/");
  EXPECT_FALSE(std::filesystem::exists(dir / "repo/empty"));
  EXPECT_TRUE(std::filesystem::exists(dir / "repo"));
}

// The defaults, for a store without files or directories: nothing to list, nothing to do.
TEST(StorageCapabilities, DefaultsDoNothing) {
  pgvault::testing::MemoryStorage mem;
  write_all(mem, "backups/L/x", as_bytes("x"));
  EXPECT_TRUE(mem.list_temporaries().empty());
  mem.remove_temporary(std::string(kTempPrefix) + "x");
  mem.remove_empty_folder("backups/L/");
  EXPECT_EQ(mem.list("").size(), 1u);
}
