// Measured peak arithmetic rate of this machine, the yardstick for the kernel benchmarks' peak_fraction.
//
//   const double peak = measured_peak_gflops(Precision::BF16);   // all num_threads() threads, measured once
//   state.counters["peak_fraction"] = achieved_gflops / peak;
//
// Each peak_<isa>.cpp runs a loop of independent multiply-adds on registers only (16 zmm or 12 ymm accumulator chains, more
// than FMA latency x pipes), so it measures the FMA pipes and nothing else. fp32: vfmadd231ps (2 FLOP per lane);
// bf16: vdpbf16ps (4 FLOP per f32 lane), or on AMX TDPBF16PS (16,384 FLOP per tile product, 4 C tiles). A kernel
// is compared with the peak of the precision it computes in.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace easel::bench {

// One thread: runs `iters` loop trips and returns the FLOPs done.
double peak_loop_fp32_avx2(int64_t iters);
double peak_loop_fp32_avx512(int64_t iters);
double peak_loop_bf16_avx512bf16(int64_t iters);
double peak_loop_bf16_amx(int64_t iters);

// GFLOP/s on num_threads() threads with the best ISA allowed (EASEL_CPU_ISA caps it, as for the kernels);
// measured on first use and cached. 0 if the precision has no SIMD loop here.
double measured_peak_gflops(Precision precision);

}  // namespace easel::bench
