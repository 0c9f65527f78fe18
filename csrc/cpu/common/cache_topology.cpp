// Cache sizes and how many copies of each the machine has, read from Linux sysfs
// (/sys/devices/system/cpu/cpu*/cache/index*), the same source lscpu uses. Where sysfs has no
// cache directories (some containers and non-Linux kernels), glibc's sysconf answers instead;
// it is asked second because it can be far off under a hypervisor (a 2-vCPU Zen4 KVM guest
// whose sysfs shows one 32 MiB L3 gets 320 MiB from _SC_LEVEL3_CACHE_SIZE).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "common/cache_topology.h"

namespace dlcb {
namespace {

namespace fs = std::filesystem;

std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// sysfs writes sizes as "32K", "1024K", "32768K" (and possibly "M").
int64_t parse_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return 0;
  const int64_t value = std::stoll(text.substr(0, digits));
  const char unit = digits < text.size() ? text[digits] : ' ';
  if (unit == 'K') return value << 10;
  if (unit == 'M') return value << 20;
  if (unit == 'G') return value << 30;
  return value;
}

int parse_int(const std::string& text) {
  return text.empty() || text[0] < '0' || text[0] > '9' ? 0 : std::stoi(text);
}

// Number of CPUs in a sysfs CPU list such as "0-3,8-11" (0 when it cannot be read).
int count_cpus(const std::string& list) {
  int count = 0;
  size_t pos = 0;
  while (pos < list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string range = list.substr(pos, comma - pos);
    const size_t dash = range.find('-');
    const int lo = parse_int(range.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : parse_int(range.substr(dash + 1));
    if (range.empty() || hi < lo) return 0;
    count += hi - lo + 1;
    pos = comma + 1;
  }
  return count;
}

std::vector<fs::path> online_cpu_dirs() {
  std::vector<fs::path> cpus;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/devices/system/cpu", ec)) {
    const std::string name = entry.path().filename().string();
    const bool numbered = name.size() > 3 && name.compare(0, 3, "cpu") == 0 &&
                          name.find_first_not_of("0123456789", 3) == std::string::npos;
    if (numbered && fs::exists(entry.path() / "cache", ec))
      cpus.push_back(entry.path());
  }
  return cpus;
}

std::vector<CacheLevel> from_sysfs() {
  std::vector<CacheLevel> levels;
  const std::vector<fs::path> cpus = online_cpu_dirs();
  if (cpus.empty()) return levels;
  const fs::path first = cpus.front();
  std::error_code ec;
  for (int index = 0; fs::exists(first / "cache" / ("index" + std::to_string(index)) / "size", ec); ++index) {
    const fs::path leaf = fs::path("cache") / ("index" + std::to_string(index));
    CacheLevel c;
    c.level = parse_int(first_line(first / leaf / "level"));
    c.type = first_line(first / leaf / "type");
    c.bytes = parse_size(first_line(first / leaf / "size"));
    c.line_bytes = parse_int(first_line(first / leaf / "coherency_line_size"));
    // Each distinct set of CPUs sharing this cache is one physical copy of it.
    std::set<std::string> sharing_sets;
    for (const fs::path& cpu : cpus) {
      const std::string shared = first_line(cpu / leaf / "shared_cpu_list");
      if (!shared.empty()) sharing_sets.insert(shared);
    }
    c.instances = static_cast<int>(sharing_sets.size());
    c.sharing_cpus = count_cpus(first_line(first / leaf / "shared_cpu_list"));
    if (c.bytes > 0) levels.push_back(c);
  }
  return levels;
}

std::vector<CacheLevel> from_sysconf() {
  std::vector<CacheLevel> levels;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  const struct {
    int level;
    const char* type;
    int size_name, line_name;
  } queries[] = {
      {1, "Data", _SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL1_DCACHE_LINESIZE},
      {2, "Unified", _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL2_CACHE_LINESIZE},
      {3, "Unified", _SC_LEVEL3_CACHE_SIZE, _SC_LEVEL3_CACHE_LINESIZE},
  };
  for (const auto& q : queries) {
    const long bytes = sysconf(q.size_name);
    const long line = sysconf(q.line_name);
    if (bytes > 0)
      levels.push_back(CacheLevel{q.level, q.type, bytes, 0, line > 0 ? static_cast<int>(line) : 0, 0});
  }
#endif
  return levels;
}

}  // namespace

CacheTopology cache_topology() {
  std::vector<CacheLevel> levels = from_sysfs();
  if (!levels.empty()) return CacheTopology{levels, "sysfs /sys/devices/system/cpu/cpu*/cache"};
  levels = from_sysconf();
  if (!levels.empty())
    return CacheTopology{levels, "sysconf _SC_LEVEL*_CACHE_SIZE (instance counts unknown)"};
  return CacheTopology{levels, "none: neither sysfs nor sysconf reports caches"};
}

LastLevelCache last_level_cache() {
  const CacheTopology topo = cache_topology();
  const CacheLevel* last = nullptr;
  for (const CacheLevel& c : topo.levels)
    if (c.type != "Instruction" && (last == nullptr || c.level >= last->level)) last = &c;
  if (last == nullptr) return LastLevelCache{int64_t{64} << 20, "fallback 64 MiB (" + topo.source + ")"};
  const int copies = last->instances > 0 ? last->instances : 1;
  return LastLevelCache{last->bytes * copies, "L" + std::to_string(last->level) + " " +
                                                  std::to_string(last->bytes >> 10) + " KiB x " +
                                                  std::to_string(copies) + " from " + topo.source};
}

}  // namespace dlcb
