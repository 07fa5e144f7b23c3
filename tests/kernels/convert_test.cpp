// f16 and bf16 to f32: every one of the 65,536 bit patterns, at every alignment and length a vector loop has a
// tail for, against the scalar definition (core/half.h) bit for bit; a NaN need only stay a NaN of the same sign
// (F16C quietens a signalling one).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/half.h"
#include "kernels/convert.h"
#include "kernels/ops_test_util.h"

using namespace easel;
using namespace easel::testing;

namespace {

// The first difference, or "" when the two agree under the rule above.
std::string first_mismatch(const uint16_t* in, const float* got, const float* expect, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t g = f32_bits(got[i]), e = f32_bits(expect[i]);
        if (g == e) continue;
        if (std::isnan(got[i]) && std::isnan(expect[i]) && (g >> 31) == (e >> 31)) continue;
        return fmt::format("element {} (input 0x{:04x}): got 0x{:08x}, expected 0x{:08x}", i, in[i], g, e);
    }
    return "";
}

class HalfToF32 : public ::testing::TestWithParam<bool> {};  // bf16?

TEST_P(HalfToF32, EveryValueAtEveryOffsetMatchesTheReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const bool bf16 = GetParam();
    const char* what = bf16 ? "bf16" : "f16";
    std::vector<uint16_t> in(65536 + 64);
    for (uint32_t h = 0; h < 65536; ++h) in[h] = uint16_t(h);
    for (size_t i = 65536; i < in.size(); ++i) in[i] = uint16_t(i * 40503u);
    std::vector<float> expect(in.size()), got(in.size() + 1);
    (bf16 ? bf16_to_f32_n_ref : f16_to_f32_n_ref)(in.data(), int64_t(in.size()), expect.data());
    for (const OpsVariant& v : ops_variants()) {
        const HalfToF32Fn fn = v.dispatched ? (bf16 ? bf16_to_f32_n : f16_to_f32_n)
                                            : (bf16 ? bf16_to_f32_n_variant(v.isa) : f16_to_f32_n_variant(v.isa));
        // Whole array; then every start offset 0..17 and lengths around the vector widths, into a guarded buffer.
        std::fill(got.begin(), got.end(), -7.0f);
        fn(in.data(), int64_t(in.size()), got.data());
        const std::string whole = first_mismatch(in.data(), got.data(), expect.data(), int64_t(in.size()));
        EXPECT_EQ(whole, "") << what << " [" << v.name << "] all 65,536 values";
        EXPECT_EQ(got[in.size()], -7.0f) << what << " [" << v.name << "] wrote past the end";
        int bad = 0;
        for (int64_t off = 0; off < 18; ++off)
            for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100}) {
                std::fill(got.begin(), got.begin() + n + 1, -7.0f);
                fn(in.data() + 1000 + off * 37, n, got.data());
                const std::string m = first_mismatch(in.data() + 1000 + off * 37, got.data(), expect.data() + 1000 + off * 37, n);
                if (!m.empty() || got[size_t(n)] != -7.0f) {
                    ADD_FAILURE() << what << " [" << v.name << "] offset " << off << ", n " << n << ": "
                                  << (m.empty() ? "wrote past the end" : m);
                    if (++bad > 5) return;
                }
            }
        if (whole.empty() && bad == 0)
            std::printf("%s to f32 [%-8s] 65,600 values and 234 short runs: bit-exact (NaN: NaN)\n", what, v.name.c_str());
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, HalfToF32, ::testing::Values(false, true),
                         [](const auto& i) { return std::string(i.param ? "bf16" : "f16"); });

}  // namespace
