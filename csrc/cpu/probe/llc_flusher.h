#pragma once
// Evicts a timed kernel's data from the caches between runs (cold-cache timing): one buffer,
// allocated once, written and then read in full by every thread that runs the kernel.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace dlcb::probe {

class LlcFlusher {
 public:
  explicit LlcFlusher(int64_t nbytes);

  // Writes the whole buffer, then reads it back, split over `threads` OpenMP threads so each
  // core's private caches are flushed too. Safe to call from several Python threads.
  void flush(int threads);

  int64_t nbytes() const { return words_ * static_cast<int64_t>(sizeof(uint64_t)); }

  // Twice the last-level cache (all its instances together).
  static int64_t default_nbytes();

 private:
  struct FreeDeleter {
    void operator()(uint64_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint64_t, FreeDeleter> buffer_;
  int64_t words_;
  uint64_t stamp_ = 0;
  std::mutex mutex_;
};

}  // namespace dlcb::probe
