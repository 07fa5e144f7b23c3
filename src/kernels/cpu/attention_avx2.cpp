// AVX2 flash-style attention: the algorithm of attention_avx512.cpp with 8-lane vectors and tiles sized for
// 16 ymm registers (QK: 6 rows x 16 keys = 12 accumulators; PV: 4 rows x up to 24 head dims = 12).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_pack.h"
#include "kernels/cpu/vmath_avx2.h"

namespace easel {
namespace {

constexpr int kQkRows = 6;
constexpr int kQkVecs = 2;
constexpr int kPvRows = 4;
constexpr int kPvVecs = 3;

template <int R, int NV>
void qk_tile(const float* qs, int64_t D, const float* kt, int64_t kt_stride, float* s, int64_t s_stride) {
    __m256 acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; ++d) {
        __m256 kv[NV];
        for (int v = 0; v < NV; ++v) kv[v] = _mm256_loadu_ps(kt + d * kt_stride + v * 8);
        for (int r = 0; r < R; ++r) {
            const __m256 qb = _mm256_broadcast_ss(qs + r * D + d);
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(qb, kv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(s + r * s_stride + v * 8, acc[r][v]);
}

template <int R>
void qk_rows(const float* qs, int64_t D, const float* kt, int64_t kt_stride, int64_t nvec, float* s,
             int64_t s_stride) {
    int64_t v = 0;
    for (; v + kQkVecs <= nvec; v += kQkVecs) qk_tile<R, kQkVecs>(qs, D, kt + v * 8, kt_stride, s + v * 8, s_stride);
    if (v < nvec) qk_tile<R, 1>(qs, D, kt + v * 8, kt_stride, s + v * 8, s_stride);
}

void qk_block(const float* qs, int64_t rows, int64_t D, const float* kt, int64_t kt_stride, int64_t nvec, float* s,
              int64_t s_stride) {
    int64_t r = 0;
    for (; r + kQkRows <= rows; r += kQkRows)
        qk_rows<kQkRows>(qs + r * D, D, kt, kt_stride, nvec, s + r * s_stride, s_stride);
    const float* q = qs + r * D;
    float* sr = s + r * s_stride;
    switch (rows - r) {
        case 5: qk_rows<5>(q, D, kt, kt_stride, nvec, sr, s_stride); break;
        case 4: qk_rows<4>(q, D, kt, kt_stride, nvec, sr, s_stride); break;
        case 3: qk_rows<3>(q, D, kt, kt_stride, nvec, sr, s_stride); break;
        case 2: qk_rows<2>(q, D, kt, kt_stride, nvec, sr, s_stride); break;
        case 1: qk_rows<1>(q, D, kt, kt_stride, nvec, sr, s_stride); break;
        default: break;
    }
}

template <int R, int NV>
void pv_tile(const float* p, int64_t p_stride, const float* v, int64_t v_stride, int64_t keys, float* o,
             int64_t o_stride, int64_t dlen) {
    __m256i mk[NV];
    for (int u = 0; u < NV; ++u) mk[u] = avx2::tail_mask(size_t(std::max<int64_t>(0, dlen - u * 8)));
    __m256 acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < NV; ++u) acc[r][u] = _mm256_maskload_ps(o + r * o_stride + u * 8, mk[u]);
    for (int64_t j = 0; j < keys; ++j) {
        __m256 vv[NV];
        const float* vj = v + j * v_stride;
        for (int u = 0; u < NV; ++u) vv[u] = _mm256_maskload_ps(vj + u * 8, mk[u]);
        for (int r = 0; r < R; ++r) {
            const __m256 pb = _mm256_broadcast_ss(p + r * p_stride + j);
            for (int u = 0; u < NV; ++u) acc[r][u] = _mm256_fmadd_ps(pb, vv[u], acc[r][u]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int u = 0; u < NV; ++u) _mm256_maskstore_ps(o + r * o_stride + u * 8, mk[u], acc[r][u]);
}

template <int R>
void pv_rows_chunk(int nv, const float* p, int64_t p_stride, const float* v, int64_t v_stride, int64_t keys,
                   float* o, int64_t o_stride, int64_t dlen) {
    switch (nv) {
        case 3: pv_tile<R, 3>(p, p_stride, v, v_stride, keys, o, o_stride, dlen); break;
        case 2: pv_tile<R, 2>(p, p_stride, v, v_stride, keys, o, o_stride, dlen); break;
        default: pv_tile<R, 1>(p, p_stride, v, v_stride, keys, o, o_stride, dlen); break;
    }
}

void pv_block(const float* p, int64_t p_stride, int64_t rows, const float* v, int64_t v_stride, int64_t keys,
              float* o, int64_t D) {
    const int64_t nvec = (D + 7) / 8;
    const int64_t chunks = (nvec + kPvVecs - 1) / kPvVecs;
    int64_t d0 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
        const int nv = int(nvec / chunks + (c < nvec % chunks ? 1 : 0));
        const int64_t dlen = std::min<int64_t>(nv * 8, D - d0);
        int64_t r = 0;
        for (; r + kPvRows <= rows; r += kPvRows)
            pv_rows_chunk<kPvRows>(nv, p + r * p_stride, p_stride, v + d0, v_stride, keys, o + r * D + d0, D, dlen);
        switch (rows - r) {
            case 3: pv_rows_chunk<3>(nv, p + r * p_stride, p_stride, v + d0, v_stride, keys, o + r * D + d0, D, dlen); break;
            case 2: pv_rows_chunk<2>(nv, p + r * p_stride, p_stride, v + d0, v_stride, keys, o + r * D + d0, D, dlen); break;
            case 1: pv_rows_chunk<1>(nv, p + r * p_stride, p_stride, v + d0, v_stride, keys, o + r * D + d0, D, dlen); break;
            default: break;
        }
        d0 += dlen;
    }
}

struct Scratch {
    std::vector<float> q, s, o, m, l;
    Scratch(int64_t bq, int64_t bk, int64_t D)
        : q(size_t(bq * D)), s(size_t(bq * bk)), o(size_t(bq * D)), m(size_t(bq)), l(size_t(bq)) {}
};

void scale_row(float* row, int64_t D, float a) {
    const __m256 va = _mm256_set1_ps(a);
    for (int64_t d = 0; d < D; d += 8) {
        const __m256i mk = avx2::tail_mask(size_t(D - d));
        _mm256_maskstore_ps(row + d, mk, _mm256_mul_ps(_mm256_maskload_ps(row + d, mk), va));
    }
}

void attend_block(const float* q, const float* kt, const float* v, float* out, const AttentionShape& s,
                  const AttentionBlocking& bl, int64_t b, int64_t h, int64_t q0, Scratch& w) {
    const int64_t D = s.head_dim, BK = bl.block_k;
    const int64_t rows = std::min(bl.block_q, s.q_len - q0);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
        const float* src = q + b * s.q_batch_stride + (q0 + r) * s.q_row_stride + h * D;
        for (int64_t d = 0; d < D; ++d) w.q[size_t(r * D + d)] = src[d] * s.scale;
    }
    std::fill(w.o.begin(), w.o.begin() + rows * D, 0.0f);
    std::fill(w.m.begin(), w.m.begin() + rows, neg_inf);
    std::fill(w.l.begin(), w.l.begin() + rows, 0.0f);

    for (int64_t blk = 0; blk < bl.num_kv_blocks; ++blk) {
        const int64_t j0 = blk * BK;
        const int64_t keys = std::min(BK, s.kv_len - j0);
        const int64_t nvec = (keys + 7) / 8;
        qk_block(w.q.data(), rows, D, packed_k_block(kt, s, bl, b, h, blk), BK, nvec, w.s.data(), BK);

        for (int64_t r = 0; r < rows; ++r) {
            float* sr = w.s.data() + r * BK;
            __m256 vmax = _mm256_set1_ps(neg_inf);
            for (int64_t u = 0; u < nvec; ++u) {
                const __m256 mk = _mm256_castsi256_ps(avx2::tail_mask(size_t(keys - u * 8)));
                vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(neg_inf), _mm256_loadu_ps(sr + u * 8), mk));
            }
            const float m_old = w.m[size_t(r)];
            const float m_new = std::max(m_old, avx2::hmax(vmax));
            const float alpha = std::exp(m_old - m_new);  // 0 on the first block (m_old = -inf)
            const __m256 vm = _mm256_set1_ps(m_new);
            __m256 vsum = _mm256_setzero_ps();
            for (int64_t u = 0; u < nvec; ++u) {
                const __m256 mk = _mm256_castsi256_ps(avx2::tail_mask(size_t(keys - u * 8)));
                const __m256 e = _mm256_and_ps(mk, avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(sr + u * 8), vm)));
                _mm256_storeu_ps(sr + u * 8, e);
                vsum = _mm256_add_ps(vsum, e);
            }
            w.l[size_t(r)] = w.l[size_t(r)] * alpha + avx2::hsum(vsum);
            w.m[size_t(r)] = m_new;
            if (alpha != 1.0f) scale_row(w.o.data() + r * D, D, alpha);
        }
        const float* vblk = v + b * s.v_batch_stride + j0 * s.v_row_stride + h * D;
        pv_block(w.s.data(), BK, rows, vblk, s.v_row_stride, keys, w.o.data(), D);
    }

    for (int64_t r = 0; r < rows; ++r) {
        float* dst = out + b * s.out_batch_stride + (q0 + r) * s.out_row_stride + h * D;
        const float* orow = w.o.data() + r * D;
        const __m256 inv = _mm256_set1_ps(1.0f / w.l[size_t(r)]);
        for (int64_t d = 0; d < D; d += 8) {
            const __m256i mk = avx2::tail_mask(size_t(D - d));
            _mm256_maskstore_ps(dst + d, mk, _mm256_mul_ps(_mm256_maskload_ps(orow + d, mk), inv));
        }
    }
}

}  // namespace

void attention_f32_avx2(const float* q, const float* k, const float* v, float* out, const AttentionShape& s) {
    if (s.batch == 0 || s.q_len == 0) return;
    const AttentionBlocking bl = attention_blocking(s);
    const std::unique_ptr<float[]> kt = pack_k_transposed(k, s, bl);
    const int64_t q_blocks = (s.q_len + bl.block_q - 1) / bl.block_q;
    const int64_t tasks = s.batch * s.num_heads * q_blocks;
    std::atomic<int64_t> next{0};
    parallel_run([&](int, int) {
        Scratch w(bl.block_q, bl.block_k, s.head_dim);
        for (int64_t t; (t = next.fetch_add(1)) < tasks;) {
            const int64_t qb = t % q_blocks;
            const int64_t h = (t / q_blocks) % s.num_heads;
            const int64_t b = t / (q_blocks * s.num_heads);
            attend_block(q, kt.get(), v, out, s, bl, b, h, qb * bl.block_q, w);
        }
    });
}

}  // namespace easel
