// First touch of fresh anonymous memory: what every page of a newly allocated tensor costs the
// kernel that writes it first (a page fault, the kernel zeroing the page and, in a virtual
// machine, often a fault in the host too). Large tensors come from mmap and go back to the
// system when freed, so a framework pays this on every call that allocates its output; on a
// shared VM the cost per page moves by several times within minutes, so it is measured beside
// every timing rather than once.
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <vector>

#include "probe/probe.h"

namespace dlcb::probe {

FirstTouchTiming first_touch(int threads, int64_t bytes, int repeats) {
  const int64_t page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
  const int64_t pages = std::max<int64_t>(1, bytes / page);
  const size_t length = static_cast<size_t>(pages * page);
  std::vector<double> seconds;
  int team = 1;
  for (int r = 0; r < repeats; ++r) {
    void* region = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) throw std::bad_alloc();
    auto* bytes_at = static_cast<volatile char*>(region);
    const auto start = std::chrono::steady_clock::now();
    // Static schedule: each thread faults in its own contiguous share, as a parallel kernel
    // writing its part of an output does.
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < pages; ++i) {
      if (i == 0) team = omp_get_num_threads();
      bytes_at[i * page] = 1;
    }
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    munmap(region, length);
  }
  std::sort(seconds.begin(), seconds.end());
  return {team, pages, page, seconds[seconds.size() / 2]};
}

}  // namespace dlcb::probe
