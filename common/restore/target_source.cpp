// The WAL index source of a real repository: the index objects (read_wal_index), read several at a time
// ahead of the resolver's walk, and the segments themselves for exact events.
#include <spdlog/spdlog.h>

#include <map>

#include "common/base/errors.h"
#include "common/base/task_group.h"
#include "common/restore/target_resolve.h"

namespace pgvault {

namespace {

class RepositoryIndexSource final : public WalIndexSource {
 public:
  RepositoryIndexSource(Repository& repo, int parallel) : repo_(repo), parallel_(parallel) {}

  std::optional<WalIndex> index(const WalObject& segment) override {
    auto it = ready_.find(segment.name);
    if (it == ready_.end()) return read_wal_index(repo_, name_of(segment));
    Slot slot = std::move(it->second);
    ready_.erase(it);
    if (slot.error) throw *slot.error;
    return std::move(slot.index);
  }

  // Reads the indexes on `parallel` threads (0: one per core) (read_key() and identity() are cached first, in this thread,
  // as repo.h asks of workers sharing a Repository); each result or error waits for index().
  void prefetch(const std::vector<const WalObject*>& segments) override {
    if (parallel_ == 1 || segments.size() < 2) return;
    repo_.read_key();
    repo_.identity();
    std::vector<Slot> slots(segments.size());
    TaskGroup group(parallel_);
    group.run(segments.size(), [&](std::size_t i) {
      try {
        slots[i].index = read_wal_index(repo_, name_of(*segments[i]));
      } catch (const Error& e) {
        slots[i].error = e;
      }
    });
    for (std::size_t i = 0; i < segments.size(); ++i) ready_.insert_or_assign(segments[i]->name, std::move(slots[i]));
  }

  std::vector<WalEvent> events(const std::vector<const WalObject*>& segments, std::uint32_t segment_size) override {
    std::vector<Bytes> data;
    for (const WalObject* s : segments) {
      spdlog::debug("reading WAL segment {} to place the recovery target exactly", s->name);
      data.push_back(repo_.get_bytes(s->key));
    }
    std::vector<ByteView> views(data.begin(), data.end());
    const WalObject& first = *segments.front();
    return read_wal_events(views, segment_size, first.segno * segment_size, repo_.describe() + "/" + first.key);
  }

 private:
  struct Slot {
    std::optional<WalIndex> index;
    std::optional<Error> error;
  };
  static WalFileName name_of(const WalObject& segment) {
    auto n = WalFileName::parse(segment.name);
    if (!n) throw Error(ErrorKind::Internal, "not a WAL segment name: " + segment.name);
    return *n;
  }

  Repository& repo_;
  int parallel_;
  std::map<std::string, Slot> ready_;
};

}  // namespace

std::unique_ptr<WalIndexSource> repository_wal_index_source(Repository& repo, int parallel) {
  return std::make_unique<RepositoryIndexSource>(repo, parallel);
}

}  // namespace pgvault
