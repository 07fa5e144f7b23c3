// The AMX-BF16 GEMM microkernel (src/kernels/cpu/amx_kernel.h) against a double-accumulating reference on the
// same bf16-rounded operands, through the blocked driver (gemm_run) as linear(), matmul_f32() and conv2d() call
// it: A as f32 rows (converted per block) or as words already (a conv weight), B packed whole (a Linear weight) or
// built per block (activations, im2col).
//
// On every CPU the kernel runs on a plain C++ model of the tile unit (matmul_amx_emu.cpp), which asserts the
// shape rules the hardware faults on; on a CPU with AMX the same cases run on the tiles themselves, and the
// start-up check that guards the dispatcher must have passed. Shapes cover the kernel's tails: 1..33 rows (one or
// two tile rows, 32-row calls), 1..130 columns (one or two 32-column halves of a 64-column panel), k with and
// without a tail of fewer than 32 values, odd k, and k over several 512-value blocks.
//
// Tolerance: the f32 accumulation bound of tests/common/gemm_tolerance.h (2 sqrt(K) eps, relative to the output's
// rms and to each value).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "common/gemm_tolerance.h"
#include "core/half.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/matmul.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;
using easel::testing::random_floats;

namespace {

struct Case {
    int64_t m, n, k;
    bool epilogue;  // alpha, cin, both biases
    enum { APacked, AWords } a_form;
    enum { BPacked, BBuilt } b_form;
};

std::string name(const Case& c) {
    return fmt::format("amx_gemm(M={},N={},K={}{},{},{})", c.m, c.n, c.k, c.epilogue ? ",epilogue" : "",
                       c.a_form == Case::AWords ? "A words" : "A f32", c.b_form == Case::BPacked ? "B packed" : "B built");
}

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// Runs one case on `kern` and compares it with the reference; returns the report.
CompareReport run_case(const gemm::GemmKernel& kern, const Case& c) {
    const int64_t m = c.m, n = c.n, k = c.k, kw = (k + 1) / 2, nr = kern.nr;
    const std::vector<float> a = random_floats(size_t(m * k), 100 + uint64_t(m * 7 + k));
    const std::vector<float> b = random_floats(size_t(k * n), 200 + uint64_t(n * 5 + k));  // [k, n]
    const std::vector<float> cin = random_floats(size_t(m * n), 300);
    const std::vector<float> bias_row = random_floats(size_t(m), 400), bias_col = random_floats(size_t(n), 500);
    const float alpha = c.epilogue ? 0.75f : 1.0f;
    const int64_t ldc = n + 3;

    // Reference: products of the bf16-rounded operands summed in double, then the epilogue.
    std::vector<float> ref(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t kk = 0; kk < k; ++kk) s += double(round_bf16(a[size_t(i * k + kk)])) * round_bf16(b[size_t(kk * n + j)]);
            double v = s * alpha;
            if (c.epilogue) v += double(bias_row[size_t(i)]) + cin[size_t(i * n + j)] + bias_col[size_t(j)];
            ref[size_t(i * n + j)] = float(v);
        }

    // B: one row pair at a time into panels of nr words (zero padding), whole or per block.
    auto fill_panels = [&](int64_t k0, int64_t kc, int64_t n0, int64_t nc, uint32_t* dst) {
        const int64_t kwb = (kc + 1) / 2;
        std::vector<float> r0(static_cast<size_t>(nc)), r1(static_cast<size_t>(nc));
        for (int64_t kk = 0; kk < kc; kk += 2) {
            const bool two = kk + 1 < kc;
            for (int64_t j = 0; j < nc; ++j) {
                r0[size_t(j)] = b[size_t((k0 + kk) * n + n0 + j)];
                if (two) r1[size_t(j)] = b[size_t((k0 + kk + 1) * n + n0 + j)];
            }
            gemm::pack_b_row(kern, r0.data(), two ? r1.data() : nullptr, nc, dst + (kk / 2) * nr, kwb * nr);
        }
    };
    const int64_t panels = (n + nr - 1) / nr;
    std::vector<uint32_t> packed;
    gemm::GemmB gb;
    if (c.b_form == Case::BPacked) {
        packed.assign(size_t(panels * kw * nr), 0u);
        fill_panels(0, k, 0, n, packed.data());
        gb.packed = packed.data();
        gb.panel_stride = kw * nr;
    } else {
        gb.build = fill_panels;
    }

    std::vector<uint32_t> words;
    gemm::GemmA ga;
    if (c.a_form == Case::AWords) {
        const int64_t ld = kw + 5;  // an odd row stride, as no tile row is 64-byte aligned then
        words.assign(size_t(m * ld), 0xdeadbeefu);
        kern.convert_rows(a.data(), k, m, k, words.data(), ld);
        ga.words = words.data();
        ga.ld_words = ld;
    } else {
        ga.f32 = a.data();
        ga.row_stride = k;
    }

    gemm::GemmEpilogue ep;
    std::vector<float> got(size_t(m * ldc), 12345.0f);
    if (c.epilogue) {
        ep.alpha = alpha;
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) got[size_t(i * ldc + j)] = cin[size_t(i * n + j)];
        ep.cin = got.data();  // in place, as linear() adds a residual held in y
        ep.ldcin = ldc;
        ep.bias_row = bias_row.data();
        ep.bias_col = bias_col.data();
    }
    gemm::gemm_run(kern, m, n, k, ga, gb, got.data(), ldc, ep);

    // The padding columns past n are never written.
    size_t touched = 0;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = n; j < ldc; ++j) touched += got[size_t(i * ldc + j)] != 12345.0f;
    EXPECT_EQ(touched, 0u) << name(c) << ": wrote past column n";
    std::vector<float> dense(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) dense[size_t(i * n + j)] = got[size_t(i * ldc + j)];
    return compare(dense.data(), ref.data(), ref.size(), easel::testing::f32_accumulation_tolerance(k, ref), {m, n});
}

std::vector<Case> cases() {
    std::vector<Case> out;
    for (int64_t m : {1, 7, 16, 17, 32, 33, 70})
        for (int64_t n : {1, 31, 32, 33, 64, 65, 130})
            for (int64_t k : {1, 2, 31, 32, 33, 64, 96, 600, 1300}) {
                const int idx = int(out.size());
                Case c{m, n, k, idx % 3 != 0, idx % 2 ? Case::AWords : Case::APacked,
                       idx % 5 < 2 ? Case::BBuilt : Case::BPacked};
                out.push_back(c);
            }
    return out;
}

void run_all(const gemm::GemmKernel& kern, const char* where) {
    int failed = 0;
    double worst = 0;
    for (const Case& c : cases()) {
        const CompareReport r = run_case(kern, c);
        worst = std::max(worst, r.used);
        if (!r.passed()) {
            ++failed;
            ADD_FAILURE() << where << " " << name(c) << ": " << r.summary();
        }
    }
    std::printf("%s: %zu cases, %d failed, worst error %.2f of the tolerance\n", where, cases().size(), failed, worst);
}

}  // namespace

TEST(AmxGemm, ModelOfTheTileUnitMatchesReference) { run_all(gemm::gemm_kernel_amx_emulated(), "amx (tile model)"); }

// A deliberately wrong kernel must fail the same comparison: the model's answer with one product dropped.
TEST(AmxGemm, TheComparisonCatchesAWrongKernel) {
    gemm::GemmKernel wrong = gemm::gemm_kernel_amx_emulated();
    static gemm::UkernelFn inner = wrong.ukernel;
    wrong.ukernel = [](const gemm::UkernelArgs& p) {
        gemm::UkernelArgs q = p;
        if (q.kw > 16) q.kw -= 1;  // drops the last k pair
        inner(q);
    };
    const CompareReport r = run_case(wrong, Case{33, 65, 600, false, Case::APacked, Case::BPacked});
    std::printf("a kernel that drops one k pair: %s\n", r.summary().c_str());
    EXPECT_FALSE(r.passed());
}

TEST(AmxGemm, HardwareTilesMatchReference) {
    if (int(best_isa(cpu_features())) < int(Isa::Amx))
        GTEST_SKIP() << "this CPU (" << cpu_features().brand << ") has no AMX-BF16, or the OS did not grant its tile state";
    run_all(gemm::gemm_kernel_amx_unchecked(), "amx (hardware)");
    // The start-up check passed, so the dispatcher runs these tiles for Isa::Amx.
    EXPECT_EQ(gemm::gemm_kernel_for(Isa::Amx, Precision::BF16), &gemm::gemm_kernel_amx_unchecked());
}
