// Runs the peak loops on all threads (see peak.h). Plain C++: the ISA loops live in peak_<isa>.cpp.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "peak.h"

namespace easel::bench {
namespace {

double run_on_all_threads(double (*loop)(int64_t), int64_t iters = 20'000'000) {
    // ~0.2 s per thread at a few hundred GFLOP/s; the best of three runs filters out a preempted one.
    double best = 0.0;
    for (int rep = 0; rep < 3; ++rep) {
        std::atomic<double> flops{0.0};
        const auto t0 = std::chrono::steady_clock::now();
        parallel_run([&](int, int) {
            const double f = loop(iters);
            double cur = flops.load();
            while (!flops.compare_exchange_weak(cur, cur + f)) {
            }
        });
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, flops.load() / s * 1e-9);
    }
    return best;
}

}  // namespace

double measured_peak_gflops(Precision precision) {
    static std::once_flag once;
    static double fp32 = 0.0, bf16 = 0.0;
    std::call_once(once, [] {
        if (isa_usable(Isa::Avx512)) {
            fp32 = run_on_all_threads(peak_loop_fp32_avx512);
        } else if (isa_usable(Isa::Avx2)) {
            fp32 = run_on_all_threads(peak_loop_fp32_avx2);
        }
        // Without bf16 hardware, BF16 mode multiplies in f32: its peak is the fp32 one.
        // AMX: 65,536 FLOP per trip; at about 1,000 FLOP per cycle per core, 5 million trips take about 0.15 s
        // at 2 GHz.
        if (isa_usable(Isa::Amx)) {
            bf16 = run_on_all_threads(peak_loop_bf16_amx, 5'000'000);
        } else {
            bf16 = isa_usable(Isa::Avx512Bf16) ? run_on_all_threads(peak_loop_bf16_avx512bf16) : fp32;
        }
    });
    return precision == Precision::BF16 ? bf16 : fp32;
}

}  // namespace easel::bench
