// Attention: every SIMD variant against the double-precision reference (full score rows), on odd sizes,
// SD's real shapes (self-attention at 4096 tokens, cross-attention 4096 x 77, the 1024- and 256-token
// levels), q/k/v as slices of one fused projection, and scores large enough that the running max changes.
//
// The reference is O(Lq * Lk * D) in double; for the 4096-token self-attention it checks every 37th query
// row (a strided view of q and out), which still exercises every key block.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/attention.h"
#include "kernels/ops_test_util.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct AttnCase {
    int64_t batch, q_len, kv_len, heads, head_dim;
    bool fused = false;      // q, k, v are slices of one [B, L, 3*H*D] buffer (self-attention only)
    float qk_range = 1.0f;   // q and k uniform in [-r, r): r = 4 gives scores of O(10) to O(100)
    int64_t check_every = 1;  // reference on every n-th query row only
};

std::string case_label(const AttnCase& c) {
    return fmt::format("attention(f32,q=[{},{},{}],kv=[{},{},{}],h={}x{}{}{}{})", c.batch, c.q_len,
                       c.heads * c.head_dim, c.batch, c.kv_len, c.heads * c.head_dim, c.heads, c.head_dim,
                       c.fused ? ",fused_qkv" : "", c.qk_range != 1.0f ? fmt::format(",qk~U(-{:g},{:g})", c.qk_range, c.qk_range) : "",
                       c.check_every > 1 ? fmt::format(",rows%{}", c.check_every) : "");
}

class AttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionTest, MatchesReference) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const AttnCase& c = GetParam();
    const int64_t width = c.heads * c.head_dim;
    AttentionShape s = AttentionShape::contiguous(c.batch, c.q_len, c.kv_len, c.heads, c.head_dim);
    std::vector<float> qbuf, kbuf, vbuf;
    const float *q, *k, *v;
    if (c.fused) {
        ASSERT_EQ(c.q_len, c.kv_len) << "a fused QKV buffer means self-attention";
        // One [B, L, 3*width] buffer holding q | k | v per token, as a fused QKV Linear produces.
        qbuf = random_floats(size_t(c.batch * c.q_len * 3 * width), 41, -c.qk_range, c.qk_range);
        // v is the third slice; give it the usual [-1, 1) range.
        for (int64_t t = 0; t < c.batch * c.q_len; ++t)
            for (int64_t j = 0; j < width; ++j) qbuf[size_t(t * 3 * width + 2 * width + j)] /= c.qk_range;
        q = qbuf.data();
        k = qbuf.data() + width;
        v = qbuf.data() + 2 * width;
        s.q_row_stride = s.k_row_stride = s.v_row_stride = 3 * width;
        s.q_batch_stride = s.k_batch_stride = s.v_batch_stride = c.q_len * 3 * width;
    } else {
        qbuf = random_floats(size_t(c.batch * c.q_len * width), 42, -c.qk_range, c.qk_range);
        kbuf = random_floats(size_t(c.batch * c.kv_len * width), 43, -c.qk_range, c.qk_range);
        vbuf = random_floats(size_t(c.batch * c.kv_len * width), 44, -1.0f, 1.0f);
        q = qbuf.data();
        k = kbuf.data();
        v = vbuf.data();
    }
    // The reference on the checked rows: q and out viewed with row stride * check_every.
    const int64_t rows = (c.q_len + c.check_every - 1) / c.check_every;
    AttentionShape rs = s;
    rs.q_len = rows;
    rs.q_row_stride = s.q_row_stride * c.check_every;
    rs.out_row_stride = width;
    rs.out_batch_stride = rows * width;
    std::vector<float> expect(size_t(c.batch * rows * width));
    attention_f32_ref(q, k, v, expect.data(), rs);

    // Outputs are convex combinations of v in [-1, 1): O(1/sqrt(Lk)) to O(1). The fast paths accumulate
    // q.k over D and p.v over Lk in float (exp ~1 ulp, running-max rescaling). Measured max_abs: 1.8e-7
    // (cross 4096 x 77), 2.3e-7 (self 4096 x 4096), 2.6e-6 with q, k ~ U(-4, 4), where scores reach ~+-30 and
    // a float score's rounding (|s| * 6e-8) moves its softmax weight by as much, relative. So atol scales with
    // the score range: 2e-6 per unit of qk_range^2 / 4, at least 2e-6.
    const double atol = 2e-6 * std::max(1.0, double(c.qk_range) * c.qk_range / 4.0);
    const Tolerance tol{.atol = atol, .rtol = 1e-5};
    const std::string name = case_label(c);
    std::vector<float> out(size_t(c.batch * c.q_len * width));
    for (const OpsVariant& var : ops_variants()) {
        std::fill(out.begin(), out.end(), std::nanf(""));
        if (var.dispatched) attention_f32(q, k, v, out.data(), s);
        else attention_f32_variant(var.isa)(q, k, v, out.data(), s);
        std::vector<float> got(expect.size());
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t j = 0; j < width; ++j)
                    got[size_t((b * rows + r) * width + j)] = out[size_t((b * c.q_len + r * c.check_every) * width + j)];
        report(name, var, compare(got.data(), expect.data(), got.size(), tol, {c.batch, rows, width}));
    }
}

std::string attn_case_name(const ::testing::TestParamInfo<AttnCase>& info) {
    const AttnCase& c = info.param;
    return fmt::format("b{}_q{}_kv{}_h{}_d{}{}{}", c.batch, c.q_len, c.kv_len, c.heads, c.head_dim,
                       c.fused ? "_fused" : "", c.qk_range != 1.0f ? "_bigscores" : "");
}

INSTANTIATE_TEST_SUITE_P(
    Ops, AttentionTest,
    ::testing::Values(AttnCase{1, 1, 1, 1, 1}, AttnCase{1, 7, 15, 2, 17}, AttnCase{2, 17, 7, 3, 15},
                      AttnCase{1, 15, 4097, 1, 8},            // many key blocks plus a 1-key tail
                      AttnCase{1, 130, 300, 2, 64},           // SD2.x head dim, 2 full key blocks + tail
                      AttnCase{2, 77, 77, 12, 64},            // CLIP ViT-L text self-attention
                      AttnCase{2, 4096, 77, 8, 40},           // SD1.x cross-attention at 64x64
                      AttnCase{2, 1024, 1024, 8, 80, false, 1.0f, 5},  // SD1.x self-attention at 32x32
                      AttnCase{2, 256, 77, 8, 160},           // SD1.x cross-attention at 16x16
                      AttnCase{2, 256, 256, 8, 160, true},    // fused QKV, 16x16
                      AttnCase{1, 300, 500, 2, 40, false, 4.0f},  // scores up to ~100: the running max moves
                      AttnCase{1, 300, 300, 2, 40, true, 4.0f},
                      AttnCase{2, 4096, 4096, 8, 40, false, 1.0f, 37}),  // SD1.x self-attention at 64x64
    attn_case_name);

// Writing into a slice of a wider buffer (out_row_stride > H*D) gives the same bits as a dense output and
// leaves the rest of the buffer alone.
TEST(Attention, StridedOutputMatchesDenseAndKeepsGaps) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const int64_t B = 2, Lq = 37, Lk = 50, H = 3, D = 24, width = H * D;
    const std::vector<float> q = random_floats(size_t(B * Lq * width), 91), k = random_floats(size_t(B * Lk * width), 92),
                             v = random_floats(size_t(B * Lk * width), 93);
    const AttentionShape dense = AttentionShape::contiguous(B, Lq, Lk, H, D);
    AttentionShape wide = dense;
    wide.out_row_stride = 2 * width + 5;
    wide.out_batch_stride = Lq * wide.out_row_stride + 3;
    const float sentinel = -7.25f;
    for (const OpsVariant& var : ops_variants()) {
        std::vector<float> a(size_t(B * Lq * width)), w(size_t(B * wide.out_batch_stride), sentinel);
        const AttentionF32Fn fn = var.dispatched ? attention_f32 : attention_f32_variant(var.isa);
        fn(q.data(), k.data(), v.data(), a.data(), dense);
        fn(q.data(), k.data(), v.data(), w.data(), wide);
        size_t mismatches = 0, touched_gaps = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < Lq; ++i)
                for (int64_t j = 0; j < wide.out_row_stride; ++j) {
                    const float got = w[size_t(b * wide.out_batch_stride + i * wide.out_row_stride + j)];
                    if (j < width) mismatches += got != a[size_t((b * Lq + i) * width + j)];
                    else touched_gaps += got != sentinel;
                }
        EXPECT_EQ(mismatches, 0u) << var.name;
        EXPECT_EQ(touched_gaps, 0u) << var.name;
    }
}

// The reference's own properties: one key gives exactly v; identical keys give the mean of v.
TEST(AttentionRef, Properties) {
    AttentionShape s = AttentionShape::contiguous(1, 3, 1, 2, 4);
    const std::vector<float> q = random_floats(24, 1), k = random_floats(8, 2), v = random_floats(8, 3);
    std::vector<float> out(24);
    attention_f32_ref(q.data(), k.data(), v.data(), out.data(), s);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 8; ++j) EXPECT_EQ(out[size_t(i * 8 + j)], v[size_t(j)]);

    s = AttentionShape::contiguous(1, 2, 4, 1, 3);
    const std::vector<float> kk(12, 0.5f), vv = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    std::vector<float> o2(6);
    attention_f32_ref(q.data(), kk.data(), vv.data(), o2.data(), s);
    for (int i = 0; i < 2; ++i) {
        EXPECT_FLOAT_EQ(o2[size_t(i * 3 + 0)], 5.5f);  // mean of 1, 4, 7, 10
        EXPECT_FLOAT_EQ(o2[size_t(i * 3 + 1)], 6.5f);
        EXPECT_FLOAT_EQ(o2[size_t(i * 3 + 2)], 7.5f);
    }
}

}  // namespace
