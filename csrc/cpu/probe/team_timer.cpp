// Times a probe run by every thread of an OpenMP team at once: wall time from the barrier the
// threads leave together to the barrier the last one reaches, so a figure for N threads is what
// N threads sustain side by side (shared clock and power limits included). Each thread also
// times its own run in CPU time, for per-core rates that a busy machine does not distort.
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

// Written after every run so the compiler must compute what the probe returns.
volatile float g_sink;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double run_once(ChainFn chain, int threads, int64_t iterations, int& team, std::vector<double>& own_seconds) {
  double start = 0.0, stop = 0.0;
  float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
#pragma omp master
    {
      team = omp_get_num_threads();
      own_seconds.assign(team, 0.0);
      start = now_seconds();
    }
#pragma omp barrier
    const double own_start = thread_cpu_seconds();
    sink += chain(iterations);
    own_seconds[omp_get_thread_num()] = thread_cpu_seconds() - own_start;
#pragma omp barrier
#pragma omp master
    stop = now_seconds();
  }
  g_sink = sink;
  return stop - start;
}

}  // namespace

TeamTiming time_on_team(ChainFn chain, int threads, double ms_per_repeat, int repeats) {
  const double target = ms_per_repeat * 1e-3;
  // Size the work on the calling thread alone: a team's first runs also pay for waking its
  // threads (milliseconds on a busy VM), which would make the work look far more expensive
  // than it is. Growing it to a measurable length also lets the clock ramp up.
  int64_t iterations = 256;
  double seconds = 0.0;
  for (;;) {
    const double start = now_seconds();
    g_sink = chain(iterations);
    seconds = now_seconds() - start;
    if (seconds >= target / 4 || iterations > std::numeric_limits<int64_t>::max() / 8) break;
    iterations *= 4;
  }
  iterations = std::max<int64_t>(1, std::llround(static_cast<double>(iterations) * target / seconds));

  int team = 0;
  std::vector<double> own;
  run_once(chain, threads, 1, team, own);  // wakes the team's threads before anything is timed
  TeamTiming best{team, iterations, std::numeric_limits<double>::infinity(),
                  std::vector<double>(team, std::numeric_limits<double>::infinity())};
  for (int r = 0; r < repeats; ++r) {
    best.seconds = std::min(best.seconds, run_once(chain, threads, iterations, team, own));
    for (int t = 0; t < team; ++t) best.thread_seconds[t] = std::min(best.thread_seconds[t], own[t]);
  }
  return best;
}

}  // namespace dlcb::probe
