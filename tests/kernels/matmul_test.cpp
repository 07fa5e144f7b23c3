// linear() and matmul_f32(): every variant this CPU supports against the double-accumulating reference
// (kernels/ref/matmul_ref.cpp), on odd sizes (tails of the 6-row / 16- and 64-column register blocks and of the
// 256-word k blocks) and on SD 1.5's Linear shapes with M scaled down (K and N kept).
//
// Tolerances. A fast path sums K products in f32 (in blocks, in another order than the reference). For terms of
// random sign the accumulated rounding error grows like sqrt(K) * eps * (size of the partial sums), so both
// bounds are scaled by sqrt(K) * eps_f32 and atol by the rms of the reference output:
//     atol = 2 * sqrt(K) * eps * rms(ref),  rtol = 2 * sqrt(K) * eps
// (measured worst: 45% of it, f32 weights M=13 N=4097 K=65 with bias and residual, Zen 5 avx2 and avx512;
// BF16 vs exact below: 68%, M=17 N=65 K=7; one machine so far).
// BF16 mode is compared against the reference run on the same bf16-rounded operands (so only the f32
// accumulation differs, same bound), and separately against the exact f32 reference with a bound set by the
// bf16 rounding of both operands (relative 2^-9 each): atol = 2^-6 * rms(ref), rtol = 2^-6.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "common/gemm_tolerance.h"
#include "core/half.h"
#include "kernels/matmul.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;
using easel::testing::random_floats;
using easel::testing::Tolerance;

namespace {

std::string short_name(DType t) { return t == DType::F32 ? "f32w" : t == DType::F16 ? "f16w" : "bf16w"; }

// Weights stored in `dtype` (as a model file would hold them) and their exact f32 values.
struct Weights {
    std::vector<uint16_t> half;
    std::vector<float> f32;  // the stored values, widened
    const void* data(DType t) const { return t == DType::F32 ? static_cast<const void*>(f32.data()) : half.data(); }
};

Weights make_weights(DType t, int64_t n, int64_t k, uint64_t seed) {
    Weights w;
    w.f32 = random_floats(size_t(n * k), seed);
    if (t != DType::F32) {
        w.half.resize(w.f32.size());
        for (size_t i = 0; i < w.f32.size(); ++i) {
            w.half[i] = t == DType::F16 ? f32_to_f16(w.f32[i]) : f32_to_bf16(w.f32[i]);
            w.f32[i] = t == DType::F16 ? f16_to_f32(w.half[i]) : bf16_to_f32(w.half[i]);
        }
    }
    return w;
}

Tolerance f32_tolerance(int64_t k, const std::vector<float>& ref) { return easel::testing::f32_accumulation_tolerance(k, ref); }
using easel::testing::bf16_vs_exact_tolerance;

struct LinearCase {
    DType wdtype;
    Precision precision;
    int64_t m, n, k;
    bool bias, residual;
    Isa isa;
};

std::string case_name(const LinearCase& c) {
    return fmt::format("{}_{}_M{}_N{}_K{}{}{}_{}", short_name(c.wdtype), precision_name(c.precision), c.m, c.n, c.k,
                       c.bias ? "_bias" : "", c.residual ? "_res" : "", isa_name(c.isa));
}

class Linear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(Linear, MatchesReference) {
    const LinearCase c = GetParam();
    const std::string label = fmt::format("linear({},{},M={},N={},K={}{}{},{})", short_name(c.wdtype),
                                          precision_name(c.precision), c.m, c.n, c.k, c.bias ? ",bias" : "",
                                          c.residual ? ",residual" : "", isa_name(c.isa));
    const uint64_t seed = uint64_t(c.m * 1000003 + c.n * 1009 + c.k);
    const Weights w = make_weights(c.wdtype, c.n, c.k, seed);
    const std::vector<float> x = random_floats(size_t(c.m * c.k), seed + 1);
    const std::vector<float> bias = random_floats(size_t(c.n), seed + 2);
    const std::vector<float> res = random_floats(size_t(c.m * c.n), seed + 3);
    LinearOptions opt;
    if (c.bias) opt.bias = bias.data();
    if (c.residual) opt.residual = res.data();

    // The reference is computed once per shape and shared by the variants (it dominates the test's time).
    static std::map<std::string, std::vector<float>> ref_cache;
    auto reference = [&](Precision p) -> const std::vector<float>& {
        LinearCase key = c;
        key.precision = p;
        key.isa = Isa::Ref;
        std::vector<float>& r = ref_cache[case_name(key)];
        if (r.empty()) {
            r.resize(size_t(c.m * c.n));
            linear_f32_ref(x.data(), c.m, w.f32.data(), c.n, c.k, r.data(), opt, p);
        }
        return r;
    };
    const std::vector<float>& ref = reference(c.precision);

    auto packed = pack_linear_weight(w.data(c.wdtype), c.wdtype, c.n, c.k, c.precision, c.isa);
    ASSERT_TRUE(packed) << packed.error().to_string();
    std::vector<float> got(size_t(c.m * c.n), NAN);
    linear(x.data(), c.m, *packed, got.data(), opt);

    const CompareReport r = compare(got.data(), ref.data(), got.size(), f32_tolerance(c.k, ref), {c.m, c.n});
    std::printf("%s: %s\n", label.c_str(), r.summary().c_str());
    EXPECT_TRUE(r.passed()) << label << ": " << r.summary();

    if (c.precision == Precision::BF16) {
        const std::vector<float>& exact = reference(Precision::F32);
        const CompareReport e = compare(got.data(), exact.data(), got.size(), bf16_vs_exact_tolerance(exact), {c.m, c.n});
        std::printf("%s vs exact f32: %s\n", label.c_str(), e.summary().c_str());
        EXPECT_TRUE(e.passed()) << label << " vs exact f32: " << e.summary();
    }
}

std::vector<LinearCase> linear_cases() {
    std::vector<LinearCase> out;
    auto add = [&](DType t, Precision p, int64_t m, int64_t n, int64_t k, bool bias, bool res) {
        for (Isa isa : gemm_supported_isas(p))
            // The Ref variant (pack + dispatch into the reference) only on small shapes: on big ones it would
            // just recompute the reference.
            if (isa != Isa::Ref || m * n * k <= 100'000) out.push_back({t, p, m, n, k, bias, res, isa});
    };
    for (Precision p : {Precision::F32, Precision::BF16}) {
        // Odd sizes: every row tail (mod 6), column tail (mod 16 and 64) and an odd k for the bf16 pairs.
        for (int64_t m : {1, 7, 17, 33})
            for (int64_t n : {1, 7, 17, 33, 65})
                for (int64_t k : {1, 7, 17, 33}) add(DType::F32, p, m, n, k, false, false);
        for (DType t : {DType::F32, DType::F16, DType::BF16}) {
            add(t, p, 7, 33, 17, true, true);
            // Several k blocks (256 words), with a tail; and large M / N with tails.
            add(t, p, 37, 70, 4097, true, false);
            add(t, p, 4097, 65, 33, false, true);
            add(t, p, 13, 4097, 65, true, true);
        }
        // SD 1.5 shapes (fp16 checkpoints), M scaled down from 4096/1024 to keep the double reference quick:
        // attention projections, FF in/out (GEGLU 1280 -> 10240), CLIP context projection, time embedding.
        const DType t = DType::F16;
        add(t, p, 512, 320, 320, true, false);
        add(t, p, 512, 1280, 320, true, false);
        add(t, p, 512, 320, 1280, true, true);
        add(t, p, 256, 640, 640, true, false);
        add(t, p, 77, 320, 768, false, false);
        add(t, p, 16, 10240, 1280, true, false);
        add(t, p, 2, 1280, 320, true, false);
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Kernels, Linear, ::testing::ValuesIn(linear_cases()),
                         [](const ::testing::TestParamInfo<LinearCase>& i) { return case_name(i.param); });

// Strides, and the residual aliasing the output (y += x·Wᵀ), through the dispatcher's default variant.
TEST(LinearEpilogue, StridedAndAccumulateInPlace) {
    const int64_t m = 19, n = 70, k = 45, ldx = 50, ldy = 75;
    const Weights w = make_weights(DType::F16, n, k, 7);
    const std::vector<float> x = random_floats(size_t(m * ldx), 8);
    std::vector<float> y = random_floats(size_t(m * ldy), 9);
    std::vector<float> ref = y;
    LinearOptions opt{.bias = nullptr, .residual = y.data(), .ld_residual = ldy, .ldx = ldx, .ldy = ldy};
    LinearOptions ref_opt = opt;
    ref_opt.residual = ref.data();
    linear_f32_ref(x.data(), m, w.f32.data(), n, k, ref.data(), ref_opt, Precision::F32);
    for (Isa isa : gemm_supported_isas(Precision::F32)) {
        std::vector<float> got = y;
        opt.residual = got.data();
        auto packed = pack_linear_weight(w.half.data(), DType::F16, n, k, Precision::F32, isa);
        ASSERT_TRUE(packed);
        linear(x.data(), m, *packed, got.data(), opt);
        // Columns past n in each row must be untouched: compare whole rows of ldy.
        const CompareReport r = compare(got.data(), ref.data(), got.size(), f32_tolerance(k, ref), {m, ldy});
        std::printf("linear(f16w,M=%lld,N=%lld,K=%lld,ldx=%lld,ldy=%lld,y+=,%s): %s\n", (long long)m, (long long)n,
                    (long long)k, (long long)ldx, (long long)ldy, std::string(isa_name(isa)).c_str(),
                    r.summary().c_str());
        EXPECT_TRUE(r.passed()) << isa_name(isa) << ": " << r.summary();
    }
}

// The dispatcher's own choice: EASEL_CPU_ISA caps it, and ctest runs this file once per cap.
TEST(LinearDispatch, DefaultVariantMatchesReference) {
    const int64_t m = 33, n = 70, k = 300;
    const Weights w = make_weights(DType::F16, n, k, 21);
    const std::vector<float> x = random_floats(size_t(m * k), 22);
    for (Precision p : {Precision::F32, Precision::BF16}) {
        auto packed = pack_linear_weight(w.half.data(), DType::F16, n, k, p);
        ASSERT_TRUE(packed) << packed.error().to_string();
        const Isa expect = p == Precision::F32 && int(active_isa()) >= int(Isa::Avx512Bf16) ? Isa::Avx512 : active_isa();
        EXPECT_EQ(packed->isa, expect);
        std::vector<float> ref(size_t(m * n)), got(size_t(m * n));
        linear_f32_ref(x.data(), m, w.f32.data(), n, k, ref.data(), {}, p);
        linear(x.data(), m, *packed, got.data());
        const CompareReport r = compare(got.data(), ref.data(), got.size(), f32_tolerance(k, ref), {m, n});
        std::printf("linear(f16w,%s,M=%lld,N=%lld,K=%lld,default=%s): %s\n", std::string(precision_name(p)).c_str(),
                    (long long)m, (long long)n, (long long)k, std::string(isa_name(packed->isa)).c_str(),
                    r.summary().c_str());
        EXPECT_TRUE(r.passed()) << r.summary();
    }
}

TEST(LinearPack, RejectsBadInput) {
    const float w[4] = {1, 2, 3, 4};
    EXPECT_FALSE(pack_linear_weight(w, DType::I32, 2, 2, Precision::F32));
    EXPECT_FALSE(pack_linear_weight(w, DType::F32, 0, 2, Precision::F32));
    EXPECT_FALSE(pack_linear_weight(w, DType::F32, 2, -1, Precision::F32));
    EXPECT_FALSE(pack_linear_weight(w, DType::F32, int64_t(1) << 40, int64_t(1) << 30, Precision::F32));
    EXPECT_FALSE(pack_linear_weight(nullptr, DType::F32, 2, 2, Precision::F32));
    auto e = pack_linear_weight(w, DType::I8, 2, 2, Precision::F32);
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message().find("int8"), std::string::npos) << e.error().to_string();
}

// pack_linear_rows_into: a weight packed block by block (what a LoRA's row-blocked merge writes) is byte for byte
// the weight packed whole, on every variant, precision and source dtype, with a ragged last panel.
TEST(LinearPack, RowBlocksEqualTheWholeWeight) {
    const int64_t n = 77, k = 131;
    for (DType t : {DType::F32, DType::F16, DType::BF16})
        for (Precision p : {Precision::F32, Precision::BF16})
            for (Isa isa : gemm_supported_isas(p)) {
                const Weights w = make_weights(t, n, k, 17);
                auto whole = pack_linear_weight(w.data(t), t, n, k, p, isa);
                ASSERT_TRUE(whole) << whole.error().to_string();
                const size_t bytes = whole->isa == Isa::Ref ? size_t(n * k) * 4 : whole->layout_bytes();
                std::vector<uint8_t> blocks(bytes, 0);
                const int64_t step = std::max(1, whole->nr) * 2;
                const size_t elem = t == DType::F32 ? 4 : 2;
                for (int64_t r0 = 0; r0 < n; r0 += step) {
                    const int64_t rows = std::min(step, n - r0);
                    const auto* src = static_cast<const uint8_t*>(w.data(t)) + size_t(r0 * k) * elem;
                    ASSERT_TRUE(pack_linear_rows_into(src, t, *whole, r0, rows, blocks.data()));
                }
                EXPECT_EQ(std::memcmp(blocks.data(), whole->data.get(), bytes), 0)
                    << short_name(t) << " " << precision_name(p) << " " << isa_name(isa);
                if (whole->nr > 1) {  // a block that does not start on a panel
                    auto bad = pack_linear_rows_into(w.data(t), t, *whole, 1, 2, blocks.data());
                    ASSERT_FALSE(bad);
                    EXPECT_NE(bad.error().message().find("panel"), std::string::npos) << bad.error().to_string();
                }
                EXPECT_FALSE(pack_linear_rows_into(w.data(t), t, *whole, 0, n + 1, blocks.data()));
            }
}

// The f32 panel layout (kpack 1: the f32 kernels, and BF16 mode without a bf16 dot product, whose values are
// bf16-rounded f32) word by word, as its definition reads: panel p holds columns j < nr of rows p * nr + j, word
// (p, kk, j) = W[p * nr + j][kk], zero past the last row. Sizes with a ragged last panel and k % 8 != 0 (the
// 8x8 transposes' tails); every source dtype.
TEST(LinearPack, F32PanelsHoldTheTransposedWeight) {
    int checked = 0;
    for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{77, 131}, {16, 8}, {5, 3}, {130, 320}})
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (Precision p : {Precision::F32, Precision::BF16})
                for (Isa isa : gemm_supported_isas(p)) {
                    const Weights w = make_weights(t, n, k, 23 + uint64_t(n * k));
                    auto packed = pack_linear_weight(w.data(t), t, n, k, p, isa);
                    ASSERT_TRUE(packed) << packed.error().to_string();
                    if (packed->isa == Isa::Ref || packed->kpack != 1) continue;
                    const int64_t nr = packed->nr, panels = (n + nr - 1) / nr;
                    ASSERT_EQ(packed->layout_bytes(), size_t(panels * k * nr) * 4);
                    std::vector<uint32_t> expect(size_t(panels * k * nr), 0);
                    for (int64_t pi = 0; pi < panels; ++pi)
                        for (int64_t kk = 0; kk < k; ++kk)
                            for (int64_t j = 0; j < nr && pi * nr + j < n; ++j) {
                                const float v = w.f32[size_t((pi * nr + j) * k + kk)];
                                expect[size_t((pi * k + kk) * nr + j)] =
                                    p == Precision::BF16 ? uint32_t(f32_to_bf16(v)) << 16 : f32_bits(v);
                            }
                    const auto* got = static_cast<const uint32_t*>(packed->data.get());
                    size_t bad = 0, first = expect.size();
                    for (size_t i = 0; i < expect.size(); ++i)
                        if (got[i] != expect[i] && bad++ == 0) first = i;
                    EXPECT_EQ(bad, 0u) << short_name(t) << " " << precision_name(p) << " " << isa_name(isa) << " n "
                                       << n << " k " << k << ": " << bad << " words differ, the first at " << first;
                    ++checked;
                }
    std::printf("%d packed f32 layouts checked word by word\n", checked);
    if (checked == 0) GTEST_SKIP() << "no f32-panel GEMM kernel on this CPU";
}

// matmul_f32: batched, both operands in either orientation, alpha, accumulate.
struct MatmulCase {
    int64_t batch, m, n, k;
    bool trans_a, trans_b, accumulate;
    Precision precision;
    Isa isa;
};

class Matmul : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(Matmul, MatchesReference) {
    const MatmulCase c = GetParam();
    const std::string label =
        fmt::format("matmul({},B={},M={},N={},K={}{}{}{},{})", precision_name(c.precision), c.batch, c.m, c.n, c.k,
                    c.trans_a ? ",At" : "", c.trans_b ? ",Bt" : "", c.accumulate ? ",acc" : "", isa_name(c.isa));
    const std::vector<float> a = random_floats(size_t(c.batch * c.m * c.k), 11);
    const std::vector<float> b = random_floats(size_t(c.batch * c.k * c.n), 12);
    const std::vector<float> c0 = random_floats(size_t(c.batch * c.m * c.n), 13);
    MatmulArgs g;
    g.batch = c.batch;
    g.m = c.m;
    g.n = c.n;
    g.k = c.k;
    g.a = a.data();
    g.a_batch_stride = c.m * c.k;
    g.a_row_stride = c.trans_a ? 1 : c.k;  // A stored as [k, m] when transposed
    g.a_col_stride = c.trans_a ? c.m : 1;
    g.b = b.data();
    g.b_batch_stride = c.k * c.n;
    g.b_row_stride = c.trans_b ? 1 : c.n;  // B stored as [n, k] when transposed (attention's K)
    g.b_col_stride = c.trans_b ? c.k : 1;
    g.alpha = 0.375f;
    g.accumulate = c.accumulate;
    g.precision = c.precision;

    std::vector<float> ref = c0, got = c0;
    g.c = ref.data();
    matmul_f32_ref(g);
    g.c = got.data();
    matmul_f32(g, c.isa);
    const CompareReport r = compare(got.data(), ref.data(), got.size(), f32_tolerance(c.k, ref), {c.batch, c.m, c.n});
    std::printf("%s: %s\n", label.c_str(), r.summary().c_str());
    EXPECT_TRUE(r.passed()) << label << ": " << r.summary();
}

std::vector<MatmulCase> matmul_cases() {
    std::vector<MatmulCase> out;
    auto add = [&](int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb, bool acc) {
        for (Precision p : {Precision::F32, Precision::BF16})
            for (Isa isa : gemm_supported_isas(p))
                if (isa != Isa::Ref) out.push_back({batch, m, n, k, ta, tb, acc, p, isa});
    };
    add(1, 7, 17, 33, false, false, false);
    add(3, 17, 33, 7, true, false, true);
    add(2, 33, 7, 17, false, true, false);
    add(2, 13, 70, 301, true, true, true);
    add(1, 1, 1, 1, false, false, true);
    // SD attention per head (8 heads of 40 at 64x64, scaled to 256 tokens): scores and scores x values.
    add(8, 256, 256, 40, false, true, false);
    add(8, 256, 40, 256, false, false, false);
    // Cross-attention against 77 CLIP tokens.
    add(8, 256, 77, 40, false, true, false);
    return out;
}

INSTANTIATE_TEST_SUITE_P(Kernels, Matmul, ::testing::ValuesIn(matmul_cases()),
                         [](const ::testing::TestParamInfo<MatmulCase>& i) {
                             const MatmulCase& c = i.param;
                             return fmt::format("{}_B{}_M{}_N{}_K{}{}{}{}_{}", precision_name(c.precision), c.batch,
                                                c.m, c.n, c.k, c.trans_a ? "_At" : "", c.trans_b ? "_Bt" : "",
                                                c.accumulate ? "_acc" : "", isa_name(c.isa));
                         });

}  // namespace

// "fast" precision is chosen by measurement: f32 wherever the active ISA has no bf16 dot product (this binary runs
// once per EASEL_CPU_ISA cap), and either kind where it has one, with a line saying why.
TEST(FastPrecision, F32WithoutABf16DotProduct) {
    if (std::getenv("EASEL_FAST_PRECISION")) GTEST_SKIP() << "EASEL_FAST_PRECISION is set";
    std::string why;
    const Precision p = fast_precision(&why);
    std::printf("fast precision on %s: %s\n", std::string(isa_name(active_isa())).c_str(), why.c_str());
    EXPECT_FALSE(why.empty());
    if (int(active_isa()) < int(Isa::Avx512Bf16)) {
        EXPECT_EQ(p, Precision::F32) << why;
        EXPECT_NE(why.find("no bf16 dot product"), std::string::npos) << why;
    } else {
        EXPECT_NE(why.find("GFLOP/s"), std::string::npos) << why;  // it measured
    }
    EXPECT_EQ(fast_precision(), p);  // once per process
}
