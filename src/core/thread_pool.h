// ThreadPool: fork-join parallel loops over all cores (STYLE.md: the default uses every core; --threads
// changes it).
//
//   parallel_for(rows, [&](int64_t begin, int64_t end) { for (int64_t r = begin; r < end; ++r) work(r); });
//   set_num_threads(1);   // e.g. from --threads
//
// The calling thread takes part. A parallel_for inside another runs serially on the calling thread, so
// kernels may nest freely. Work is split into chunks of at least `grain` iterations and claimed dynamically.
#pragma once

#include <cstdint>
#include <functional>

namespace easel {

// Threads used by parallel_for; defaults to the number of cores the process may run on
// (or EASEL_NUM_THREADS if set).
int num_threads();
void set_num_threads(int n);

void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn, int64_t grain = 1);

// Runs fn(thread_index) once on each of num_threads() threads; thread_index in [0, num_threads()).
// For kernels that partition work themselves (e.g. per-thread packing buffers).
void parallel_run(const std::function<void(int thread_index, int num_threads)>& fn);

}  // namespace easel
