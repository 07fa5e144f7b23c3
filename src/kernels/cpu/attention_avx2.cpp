// AVX2 flash-style attention: the algorithm of attention_avx512.cpp with 8-lane vectors and tiles sized for
// 16 ymm registers (QK: 6 rows x 16 keys = 12 accumulators; PV: 12 accumulators, 4 rows x 24 head dims, 6 x 16
// or 12 x 8). The QK tiles also find each row's maximum, and the softmax's exp knows its argument is <= 0.
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
constexpr int kPvVecs = 3;    // head dims per PV pass: up to 24
constexpr int kPvAccs = 12;   // accumulators per PV tile: rows = kPvAccs / vectors (4 x 3, 6 x 2, 12 x 1)
constexpr int kExpVecs = 8;   // softmax vectors whose exps run interleaved (see avx2::exp_nonpositive)

// S[0:R, 0:NV*8] = qs · kt, and each row's maximum over its first `valid` columns folded into rmax[8r:8r+8] (8
// lanes of running maxima per row, reduced once per key block), so that the softmax needs no pass of its own to find it.
template <int R, int NV>
void qk_tile(const float* qs, int64_t D, const float* kt, int64_t kt_stride, float* s, int64_t s_stride, int valid,
             float* rmax) {
    __m256 acc[R][NV];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; ++d) {
        __m256 kv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) kv[v] = _mm256_loadu_ps(kt + d * kt_stride + v * 8);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m256 qb = _mm256_broadcast_ss(qs + r * D + d);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(qb, kv[v], acc[r][v]);
        }
    }
    const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        __m256 m = _mm256_loadu_ps(rmax + 8 * r);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            _mm256_storeu_ps(s + r * s_stride + v * 8, acc[r][v]);
            const __m256 x = valid >= (v + 1) * 8
                                 ? acc[r][v]
                                 : _mm256_blendv_ps(neg_inf, acc[r][v],
                                                    _mm256_castsi256_ps(avx2::tail_mask(size_t(std::max(0, valid - v * 8)))));
            m = _mm256_max_ps(m, x);
        }
        _mm256_storeu_ps(rmax + 8 * r, m);
    }
}

template <int R>
void qk_rows(const float* qs, int64_t D, const float* kt, int64_t kt_stride, int64_t keys, float* s,
             int64_t s_stride, float* rmax) {
    const int64_t nvec = (keys + 7) / 8;
    int64_t v = 0;
    for (; v + kQkVecs <= nvec; v += kQkVecs)
        qk_tile<R, kQkVecs>(qs, D, kt + v * 8, kt_stride, s + v * 8, s_stride, int(std::min<int64_t>(16, keys - v * 8)), rmax);
    if (v < nvec) qk_tile<R, 1>(qs, D, kt + v * 8, kt_stride, s + v * 8, s_stride, int(keys - v * 8), rmax);
}

void qk_block(const float* qs, int64_t rows, int64_t D, const float* kt, int64_t kt_stride, int64_t keys, float* s,
              int64_t s_stride, float* rmax) {
    int64_t r = 0;
    for (; r + kQkRows <= rows; r += kQkRows)
        qk_rows<kQkRows>(qs + r * D, D, kt, kt_stride, keys, s + r * s_stride, s_stride, rmax + 8 * r);
    const float* q = qs + r * D;
    float* sr = s + r * s_stride;
    switch (rows - r) {
        case 5: qk_rows<5>(q, D, kt, kt_stride, keys, sr, s_stride, rmax + 8 * r); break;
        case 4: qk_rows<4>(q, D, kt, kt_stride, keys, sr, s_stride, rmax + 8 * r); break;
        case 3: qk_rows<3>(q, D, kt, kt_stride, keys, sr, s_stride, rmax + 8 * r); break;
        case 2: qk_rows<2>(q, D, kt, kt_stride, keys, sr, s_stride, rmax + 8 * r); break;
        case 1: qk_rows<1>(q, D, kt, kt_stride, keys, sr, s_stride, rmax + 8 * r); break;
        default: break;
    }
}

// O[0:R, 0:dlen] += P[0:R, 0:keys] · V[0:keys, 0:dlen], dlen <= NV * 8. Tail: the last vector holds fewer than
// 8 head dims and is loaded and stored masked. Only that one mask is kept in a register: a mask per vector (as
// before) took 3 of the 16 ymm registers beside 12 accumulators, 3 V vectors and a broadcast, and the compiler
// spilled accumulators to the stack in the inner loop (11.6% of an SD 1.5 self-attention's samples on one spill
// store, Zen 3).
template <int R, int NV, bool Tail>
void pv_tile(const float* p, int64_t p_stride, const float* v, int64_t v_stride, int64_t keys, float* o,
             int64_t o_stride, int64_t dlen) {
    const __m256i mk = avx2::tail_mask(size_t(std::max<int64_t>(0, dlen - (NV - 1) * 8)));
    auto load = [&](const float* src, int u) {
        return Tail && u == NV - 1 ? _mm256_maskload_ps(src + u * 8, mk) : _mm256_loadu_ps(src + u * 8);
    };
    __m256 acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int u = 0; u < NV; ++u) acc[r][u] = load(o + r * o_stride, u);
    for (int64_t j = 0; j < keys; ++j) {
        __m256 vv[NV];
        const float* vj = v + j * v_stride;
#pragma GCC unroll 8
        for (int u = 0; u < NV; ++u) vv[u] = load(vj, u);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m256 pb = _mm256_broadcast_ss(p + r * p_stride + j);
#pragma GCC unroll 8
            for (int u = 0; u < NV; ++u) acc[r][u] = _mm256_fmadd_ps(pb, vv[u], acc[r][u]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int u = 0; u < NV; ++u) {
            if (Tail && u == NV - 1) _mm256_maskstore_ps(o + r * o_stride + u * 8, mk, acc[r][u]);
            else _mm256_storeu_ps(o + r * o_stride + u * 8, acc[r][u]);
        }
}

template <int R, int NV>
void pv_tile_any(const float* p, int64_t p_stride, const float* v, int64_t v_stride, int64_t keys, float* o,
                 int64_t o_stride, int64_t dlen) {
    if (dlen == NV * 8) pv_tile<R, NV, false>(p, p_stride, v, v_stride, keys, o, o_stride, dlen);
    else pv_tile<R, NV, true>(p, p_stride, v, v_stride, keys, o, o_stride, dlen);
}

// All rows of one head-dim chunk of NV vectors: tiles of kPvAccs / NV rows (12 accumulators whatever the chunk's
// width: a 2-vector chunk in 4-row tiles had 8, too few to hide the FMA latency), then the remaining rows.
template <int NV, int R = kPvAccs / NV>
void pv_rows(int64_t rows, const float* p, int64_t p_stride, const float* v, int64_t v_stride, int64_t keys,
             float* o, int64_t o_stride, int64_t dlen) {
    int64_t r = 0;
    for (; r + R <= rows; r += R) pv_tile_any<R, NV>(p + r * p_stride, p_stride, v, v_stride, keys, o + r * o_stride, o_stride, dlen);
    if constexpr (R > 1) {
        if (rows - r > 0) pv_rows<NV, R - 1>(rows - r, p + r * p_stride, p_stride, v, v_stride, keys, o + r * o_stride, o_stride, dlen);
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
        switch (nv) {
            case 3: pv_rows<3>(rows, p, p_stride, v + d0, v_stride, keys, o + d0, D, dlen); break;
            case 2: pv_rows<2>(rows, p, p_stride, v + d0, v_stride, keys, o + d0, D, dlen); break;
            default: pv_rows<1>(rows, p, p_stride, v + d0, v_stride, keys, o + d0, D, dlen); break;
        }
        d0 += dlen;
    }
}

struct Scratch {
    std::vector<float> q, s, o, m, l;
    std::vector<float> rmax;  // 8 per row: the key block's running maxima
    Scratch(int64_t bq, int64_t bk, int64_t D)
        : q(size_t(bq * D)), s(size_t(bq * bk)), o(size_t(bq * D)), m(size_t(bq)), l(size_t(bq)), rmax(size_t(bq * 8)) {}
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
        const int64_t full = keys / 8;  // whole vectors of keys; a partial one follows when keys % 8 != 0
        std::fill(w.rmax.begin(), w.rmax.begin() + rows * 8, neg_inf);
        qk_block(w.q.data(), rows, D, packed_k_block(kt, s, bl, b, h, blk), BK, keys, w.s.data(), BK, w.rmax.data());

        for (int64_t r = 0; r < rows; ++r) {
            float* sr = w.s.data() + r * BK;
            const float m_old = w.m[size_t(r)];
            const float m_new = std::max(m_old, avx2::hmax(_mm256_loadu_ps(w.rmax.data() + 8 * r)));
            const float alpha = std::exp(m_old - m_new);  // 0 on the first block (m_old = -inf)
            const __m256 vm = _mm256_set1_ps(m_new);
            __m256 sum = _mm256_setzero_ps();
            int64_t u = 0;
            for (; u + kExpVecs <= full; u += kExpVecs) {
                __m256 e[kExpVecs];
#pragma GCC unroll 8
                for (int i = 0; i < kExpVecs; ++i) e[i] = _mm256_sub_ps(_mm256_loadu_ps(sr + (u + i) * 8), vm);
                avx2::exp_nonpositive(e);
#pragma GCC unroll 8
                for (int i = 0; i < kExpVecs; ++i) {
                    _mm256_storeu_ps(sr + (u + i) * 8, e[i]);
                    sum = _mm256_add_ps(sum, e[i]);
                }
            }
            for (; u * 8 < keys; ++u) {  // the rest one vector at a time; lanes past `keys` kept out of the sum
                const __m256 mk = _mm256_castsi256_ps(avx2::tail_mask(size_t(keys - u * 8)));
                __m256 e[1] = {_mm256_sub_ps(_mm256_loadu_ps(sr + u * 8), vm)};
                avx2::exp_nonpositive(e);
                e[0] = _mm256_and_ps(mk, e[0]);
                _mm256_storeu_ps(sr + u * 8, e[0]);
                sum = _mm256_add_ps(sum, e[0]);
            }
            w.l[size_t(r)] = w.l[size_t(r)] * alpha + avx2::hsum(sum);
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
