#pragma once
// How conv shares threads: whole images per thread, or every GEMM split over all threads.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace dlcb::conv {

// Whole images per thread when they divide evenly (or are many): the GEMMs then run without a
// barrier between packing and multiplying, and each thread's packed panels stay in its own
// core's cache. Otherwise (fewer images than threads, or a remainder that would idle a thread
// for a long image) each GEMM is split over all threads by the driver.
enum class Parallel { kAuto, kImages, kGemm, kPixels };

// DLCB_CONV_PARALLEL=images|gemm|pixels forces a way of sharing threads where it applies (read
// once), for tuning; kAuto otherwise.
inline Parallel forced_parallel() {
  static const Parallel forced = [] {
    const char* e = std::getenv("DLCB_CONV_PARALLEL");
    if (e == nullptr) return Parallel::kAuto;
    if (std::strcmp(e, "images") == 0) return Parallel::kImages;
    if (std::strcmp(e, "gemm") == 0) return Parallel::kGemm;
    if (std::strcmp(e, "pixels") == 0) return Parallel::kPixels;
    return Parallel::kAuto;
  }();
  return forced;
}

inline bool split_images(int64_t images, int threads) {
  if (threads <= 1 || images < threads) return false;
  if (forced_parallel() != Parallel::kAuto) return forced_parallel() == Parallel::kImages;
  return images % threads == 0 || images >= 4 * threads;
}

// The first image of slot `slot` when `images` are cut into `slots` contiguous blocks.
inline int64_t slot_begin(int64_t images, int slot, int slots) { return images * slot / slots; }

// Runs body(image, slot) for every image: the images are cut into `slots` contiguous blocks and
// each block runs on one thread, in order (a slot is never shared, even if OpenMP grants fewer
// threads than asked). The GEMM driver may allocate its per-thread scratch on a worker's first
// call, so exceptions are caught inside the region (none may leave an OpenMP region) and the
// first is rethrown after it.
// for_each_slot passes each slot's whole block at once: body(first, end, slot).
template <class Body>
void for_each_slot(int64_t images, int slots, Body body) {
  std::exception_ptr error;
#pragma omp parallel num_threads(slots)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    try {
      for (int slot = t; slot < slots; slot += nt)
        body(slot_begin(images, slot, slots), slot_begin(images, slot + 1, slots), slot);
    } catch (...) {
#pragma omp critical(dlcb_conv_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

template <class Body>
void for_each_image(int64_t images, int slots, Body body) {
  for_each_slot(images, slots, [&](int64_t first, int64_t end, int slot) {
    for (int64_t i = first; i < end; ++i) body(i, slot);
  });
}

}  // namespace dlcb::conv
