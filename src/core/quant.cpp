#include "core/quant.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace easel {

namespace {

constexpr uint32_t kQK = 32;     // elements per block of the legacy types
constexpr uint32_t kQK_K = 256;  // elements per super-block of the K-quants

constexpr QuantInfo kInfos[] = {
    {QuantType::None, "none", 1, 0, false},
    {QuantType::Q4_0, "q4_0", kQK, 18, true},
    {QuantType::Q4_1, "q4_1", kQK, 20, true},
    {QuantType::Q5_0, "q5_0", kQK, 22, true},
    {QuantType::Q5_1, "q5_1", kQK, 24, true},
    {QuantType::Q8_0, "q8_0", kQK, 34, true},
    {QuantType::Q2_K, "q2_K", kQK_K, 84, false},
    {QuantType::Q3_K, "q3_K", kQK_K, 110, false},
    {QuantType::Q4_K, "q4_K", kQK_K, 144, true},
    {QuantType::Q5_K, "q5_K", kQK_K, 176, true},
    {QuantType::Q6_K, "q6_K", kQK_K, 210, true},
    {QuantType::Q8_K, "q8_K", kQK_K, 292, false},
    {QuantType::F8_E4M3, "f8_e4m3", 1, 1, false},
    {QuantType::F8_E5M2, "f8_e5m2", 1, 1, false},
};

float load_f16(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

// 6-bit scale and min of sub-block j (0..7) of q4_K / q5_K, packed in 12 bytes:
//   j < 4:  scale = s[j] & 63,                      min = s[j + 4] & 63
//   j >= 4: scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4,  min = (s[j + 4] >> 4) | (s[j] >> 6) << 4
// i.e. bytes 0..3 hold scales 0..3 in their low 6 bits, bytes 4..7 mins 0..3; bytes 8..11 hold the low 4 bits
// of scales 4..7 (low nibble) and mins 4..7 (high nibble), whose top 2 bits sit in the top bits of bytes 0..7.
void k4_scale_min(const uint8_t* s, int j, int& scale, int& min) {
    if (j < 4) {
        scale = s[j] & 63;
        min = s[j + 4] & 63;
    } else {
        scale = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// q4_0, 18 bytes / 32 elements: f16 d | u8 qs[16].
// Element i < 16 is the low nibble of qs[i], element i + 16 the high nibble; x = (q - 8) * d.
void dq_q4_0(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 18, dst += kQK) {
        const float d = load_f16(src);
        const uint8_t* qs = src + 2;
        for (int i = 0; i < 16; ++i) {
            dst[i] = float((qs[i] & 15) - 8) * d;
            dst[i + 16] = float((qs[i] >> 4) - 8) * d;
        }
    }
}

// q4_1, 20 bytes / 32 elements: f16 d | f16 m | u8 qs[16]. Nibbles as q4_0; x = q * d + m.
void dq_q4_1(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 20, dst += kQK) {
        const float d = load_f16(src), m = load_f16(src + 2);
        const uint8_t* qs = src + 4;
        for (int i = 0; i < 16; ++i) {
            dst[i] = float(qs[i] & 15) * d + m;
            dst[i + 16] = float(qs[i] >> 4) * d + m;
        }
    }
}

// q5_0, 22 bytes / 32 elements: f16 d | u8 qh[4] | u8 qs[16].
// qh is a little-endian u32 whose bit i is the 5th (value 16) bit of element i; low 4 bits as q4_0;
// x = (q - 16) * d.
void dq_q5_0(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 22, dst += kQK) {
        const float d = load_f16(src);
        uint32_t qh;
        std::memcpy(&qh, src + 2, 4);
        const uint8_t* qs = src + 6;
        for (int i = 0; i < 16; ++i) {
            const int lo = (qs[i] & 15) | int(((qh >> i) & 1) << 4);
            const int hi = (qs[i] >> 4) | int(((qh >> (i + 16)) & 1) << 4);
            dst[i] = float(lo - 16) * d;
            dst[i + 16] = float(hi - 16) * d;
        }
    }
}

// q5_1, 24 bytes / 32 elements: f16 d | f16 m | u8 qh[4] | u8 qs[16]. Bits as q5_0; x = q * d + m.
void dq_q5_1(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 24, dst += kQK) {
        const float d = load_f16(src), m = load_f16(src + 2);
        uint32_t qh;
        std::memcpy(&qh, src + 4, 4);
        const uint8_t* qs = src + 8;
        for (int i = 0; i < 16; ++i) {
            const int lo = (qs[i] & 15) | int(((qh >> i) & 1) << 4);
            const int hi = (qs[i] >> 4) | int(((qh >> (i + 16)) & 1) << 4);
            dst[i] = float(lo) * d + m;
            dst[i + 16] = float(hi) * d + m;
        }
    }
}

// q8_0, 34 bytes / 32 elements: f16 d | i8 qs[32]; x = q * d.
void dq_q8_0(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 34, dst += kQK) {
        const float d = load_f16(src);
        for (int i = 0; i < 32; ++i) dst[i] = float(int8_t(src[2 + i])) * d;
    }
}

// q2_K, 84 bytes / 256 elements: u8 scales[16] | u8 qs[64] | f16 d | f16 dmin.
// 16 sub-blocks of 16 elements; scales[s] holds sub-block s's scale (low nibble) and min (high nibble).
// Element e = 128*h + 32*j + l (h < 2, j < 4, l < 32) is the 2-bit field at bit 2*j of qs[32*h + l], in
// sub-block s = 8*h + 2*j + l/16; x = d * scale_s * q - dmin * min_s.
void dq_q2_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 84, dst += kQK_K) {
        const uint8_t* scales = src;
        const uint8_t* qs = src + 16;
        const float d = load_f16(src + 80), dmin = load_f16(src + 82);
        for (int h = 0; h < 2; ++h)
            for (int j = 0; j < 4; ++j)
                for (int l = 0; l < 32; ++l) {
                    const int s = 8 * h + 2 * j + l / 16;
                    const int q = (qs[32 * h + l] >> (2 * j)) & 3;
                    dst[128 * h + 32 * j + l] = d * float(scales[s] & 15) * float(q) - dmin * float(scales[s] >> 4);
                }
    }
}

// q3_K, 110 bytes / 256 elements: u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d.
// 16 sub-blocks of 16 elements with signed 6-bit scales (stored + 32). Scale s: low 4 bits are the low
// nibble of scales[s] for s < 8 and the high nibble of scales[s - 8] for s >= 8; the top 2 bits are bits
// 2*(s/4)..2*(s/4)+1 of scales[8 + s%4]. Element e = 128*h + 32*j + l: low 2 bits at bit 2*j of
// qs[32*h + l]; its 3rd bit is bit (e / 32) of hmask[l], and a clear bit means "subtract 4".
// x = d * (scale_s - 32) * (q - (hbit ? 0 : 4)), s = 8*h + 2*j + l/16.
void dq_q3_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 110, dst += kQK_K) {
        const uint8_t* hmask = src;
        const uint8_t* qs = src + 32;
        const uint8_t* sc = src + 96;
        const float d = load_f16(src + 108);
        int scale[16];
        for (int s = 0; s < 16; ++s) {
            const int lo = s < 8 ? (sc[s] & 15) : (sc[s - 8] >> 4);
            const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
            scale[s] = (lo | (hi << 4)) - 32;
        }
        for (int h = 0; h < 2; ++h)
            for (int j = 0; j < 4; ++j)
                for (int l = 0; l < 32; ++l) {
                    const int e = 128 * h + 32 * j + l;
                    const int low = (qs[32 * h + l] >> (2 * j)) & 3;
                    const bool high = (hmask[l] >> (e / 32)) & 1;
                    dst[e] = d * float(scale[8 * h + 2 * j + l / 16]) * float(low - (high ? 0 : 4));
                }
    }
}

// q4_K, 144 bytes / 256 elements: f16 d | f16 dmin | u8 scales[12] | u8 qs[128].
// 8 sub-blocks of 32 with 6-bit scale and min (k4_scale_min). Element e = 64*p + 32*k + l (p < 4, k < 2,
// l < 32) is the low (k = 0) or high (k = 1) nibble of qs[32*p + l], in sub-block 2*p + k;
// x = d * scale * q - dmin * min.
// q5_K, 176 bytes / 256 elements: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128].
// As q4_K, plus a 5th bit (value 16): element 64*p + 32*k + l takes bit (2*p + k) of qh[l].
void dq_k45(const uint8_t* src, float* dst, size_t n_blocks, bool five) {
    const size_t bytes = five ? 176 : 144;
    for (size_t b = 0; b < n_blocks; ++b, src += bytes, dst += kQK_K) {
        const float d = load_f16(src), dmin = load_f16(src + 2);
        const uint8_t* sc = src + 4;
        const uint8_t* qh = five ? src + 16 : nullptr;
        const uint8_t* qs = src + (five ? 48 : 16);
        for (int p = 0; p < 4; ++p)
            for (int k = 0; k < 2; ++k) {
                int scale, min;
                k4_scale_min(sc, 2 * p + k, scale, min);
                const float dl = d * float(scale), ml = dmin * float(min);
                for (int l = 0; l < 32; ++l) {
                    int q = k == 0 ? (qs[32 * p + l] & 15) : (qs[32 * p + l] >> 4);
                    if (qh) q |= ((qh[l] >> (2 * p + k)) & 1) << 4;
                    dst[64 * p + 32 * k + l] = dl * float(q) - ml;
                }
            }
    }
}

// q6_K, 210 bytes / 256 elements: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d.
// Element e = 128*h + 32*r + l (h < 2, r < 4, l < 32): low 4 bits are the low (r even) or high (r odd)
// nibble of ql[64*h + 32*(r%2) + l]; top 2 bits are bits 2*r..2*r+1 of qh[32*h + l]; the 16 sub-blocks
// have 16 elements each, s = e / 16; x = d * scales[s] * (q - 32).
void dq_q6_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 210, dst += kQK_K) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = load_f16(src + 208);
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 4; ++r)
                for (int l = 0; l < 32; ++l) {
                    const int e = 128 * h + 32 * r + l;
                    const uint8_t lbyte = ql[64 * h + 32 * (r % 2) + l];
                    const int lo = r < 2 ? (lbyte & 15) : (lbyte >> 4);
                    const int q = lo | (((qh[32 * h + l] >> (2 * r)) & 3) << 4);
                    dst[e] = d * float(sc[e / 16]) * float(q - 32);
                }
    }
}

// q8_K, 292 bytes / 256 elements: f32 d | i8 qs[256] | i16 bsums[16] (sums of groups of 16, unused here);
// x = q * d.
void dq_q8_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 292, dst += kQK_K) {
        float d;
        std::memcpy(&d, src, 4);
        for (int i = 0; i < 256; ++i) dst[i] = float(int8_t(src[4 + i])) * d;
    }
}

// --- quantizers -------------------------------------------------------------------------------------------

void store_f16(uint8_t* p, float v) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(p, &h, 2);
}

// The value a stored f16 reads back as: later steps quantize against what readers will see.
float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// ggml's legacy symmetric types: the element of largest magnitude, with its sign, maps to -2^(bits-1).
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    return max;
}

void q_q4_0(const float* x, uint8_t* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, x += kQK, dst += 18) {
        const float d = signed_absmax(x, kQK) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(dst, d);
        for (int i = 0; i < 16; ++i) {
            const int lo = std::min(15, int(int8_t(x[i] * id + 8.5f)));
            const int hi = std::min(15, int(int8_t(x[i + 16] * id + 8.5f)));
            dst[2 + i] = uint8_t(lo | (hi << 4));
        }
    }
}

void q_q4_1(const float* x, uint8_t* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, x += kQK, dst += 20) {
        const float mn = *std::min_element(x, x + kQK), mx = *std::max_element(x, x + kQK);
        const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(dst, d);
        store_f16(dst + 2, mn);
        for (int i = 0; i < 16; ++i) {
            const int lo = std::min(15, int(int8_t((x[i] - mn) * id + 0.5f)));
            const int hi = std::min(15, int(int8_t((x[i + 16] - mn) * id + 0.5f)));
            dst[4 + i] = uint8_t(lo | (hi << 4));
        }
    }
}

void q_q5(const float* x, uint8_t* dst, size_t n_blocks, bool with_min) {
    const size_t bytes = with_min ? 24 : 22;
    for (size_t b = 0; b < n_blocks; ++b, x += kQK, dst += bytes) {
        float d, mn = 0.0f, bias;
        if (with_min) {
            mn = *std::min_element(x, x + kQK);
            d = (*std::max_element(x, x + kQK) - mn) / 31.0f;
            bias = 0.5f;
            store_f16(dst, d);
            store_f16(dst + 2, mn);
        } else {
            d = signed_absmax(x, kQK) / -16.0f;
            bias = 16.5f;
            store_f16(dst, d);
        }
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        uint8_t* qs = dst + (with_min ? 8 : 6);
        for (int i = 0; i < 16; ++i) {
            const int lo = std::min(31, int(int8_t((x[i] - mn) * id + bias)));
            const int hi = std::min(31, int(int8_t((x[i + 16] - mn) * id + bias)));
            qs[i] = uint8_t((lo & 15) | ((hi & 15) << 4));
            qh |= uint32_t((lo >> 4) & 1) << i;
            qh |= uint32_t((hi >> 4) & 1) << (i + 16);
        }
        std::memcpy(dst + (with_min ? 4 : 2), &qh, 4);
    }
}

void q_q8_0(const float* x, uint8_t* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, x += kQK, dst += 34) {
        float amax = 0.0f;
        for (uint32_t i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        store_f16(dst, d);
        for (uint32_t i = 0; i < kQK; ++i) dst[2 + i] = uint8_t(int8_t(std::lround(x[i] * id)));
    }
}

// q4_K (levels 15) and q5_K (31): eight sub-blocks of 32, each x ~ d*scale*q - dmin*min with 6-bit scale and
// min; the sub-block's range [min(0, lowest), highest] is spread over the levels.
void q_k45(const float* x, uint8_t* dst, size_t n_blocks, int levels) {
    const bool five = levels == 31;
    const size_t bytes = five ? 176 : 144;
    for (size_t b = 0; b < n_blocks; ++b, x += kQK_K, dst += bytes) {
        float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; ++j) {
            const float* s = x + 32 * j;
            const float lo = std::min(0.0f, *std::min_element(s, s + 32)), hi = *std::max_element(s, s + 32);
            scale[j] = (hi - lo) / float(levels);
            minv[j] = -lo;
            max_scale = std::max(max_scale, scale[j]);
            max_min = std::max(max_min, minv[j]);
        }
        const float d = round_f16(max_scale / 63.0f), dmin = round_f16(max_min / 63.0f);
        store_f16(dst, d);
        store_f16(dst + 2, dmin);
        int ls[8], lm[8];
        for (int j = 0; j < 8; ++j) {
            ls[j] = d > 0.0f ? std::min(63, int(std::lround(scale[j] / d))) : 0;
            lm[j] = dmin > 0.0f ? std::min(63, int(std::lround(minv[j] / dmin))) : 0;
        }
        uint8_t* sc = dst + 4;
        std::memset(sc, 0, 12);
        for (int j = 0; j < 8; ++j) {
            if (j < 4) {
                sc[j] = uint8_t(ls[j]);
                sc[j + 4] = uint8_t(lm[j]);
            } else {
                sc[j + 4] = uint8_t((ls[j] & 15) | ((lm[j] & 15) << 4));
                sc[j - 4] |= uint8_t((ls[j] >> 4) << 6);
                sc[j] |= uint8_t((lm[j] >> 4) << 6);
            }
        }
        uint8_t* qh = five ? dst + 16 : nullptr;
        uint8_t* qs = dst + (five ? 48 : 16);
        if (qh) std::memset(qh, 0, 32);
        std::memset(qs, 0, 128);
        for (int p = 0; p < 4; ++p)
            for (int k = 0; k < 2; ++k) {
                const int j = 2 * p + k;
                const float dl = d * float(ls[j]), ml = dmin * float(lm[j]);
                for (int l = 0; l < 32; ++l) {
                    const float v = x[64 * p + 32 * k + l];
                    const int q = dl > 0.0f ? std::clamp(int(std::lround((v + ml) / dl)), 0, levels) : 0;
                    qs[32 * p + l] |= uint8_t((q & 15) << (4 * k));
                    if (qh) qh[l] |= uint8_t(((q >> 4) & 1) << j);
                }
            }
    }
}

// q6_K: sixteen sub-blocks of 16 with signed 8-bit scales; q in [-32, 31].
void q_q6_K(const float* x, uint8_t* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, x += kQK_K, dst += 210) {
        float scale[16], max_scale = 0.0f;
        for (int s = 0; s < 16; ++s) {
            float amax = 0.0f;
            for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * s + i]));
            scale[s] = amax / 31.0f;
            max_scale = std::max(max_scale, scale[s]);
        }
        const float d = round_f16(max_scale / 127.0f);
        uint8_t* ql = dst;
        uint8_t* qh = dst + 128;
        int8_t* sc = reinterpret_cast<int8_t*>(dst + 192);
        std::memset(dst, 0, 192);
        for (int s = 0; s < 16; ++s) sc[s] = int8_t(d > 0.0f ? std::min(127, int(std::lround(scale[s] / d))) : 0);
        store_f16(dst + 208, d);
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 4; ++r)
                for (int l = 0; l < 32; ++l) {
                    const int e = 128 * h + 32 * r + l;
                    const float dl = d * float(sc[e / 16]);
                    const int q = (dl > 0.0f ? std::clamp(int(std::lround(x[e] / dl)), -32, 31) : 0) + 32;
                    ql[64 * h + 32 * (r % 2) + l] |= uint8_t((q & 15) << (r < 2 ? 0 : 4));
                    qh[32 * h + l] |= uint8_t((q >> 4) << (2 * r));
                }
    }
}

}  // namespace

float f8_e4m3_to_f32(uint8_t v) {
    const int e = (v >> 3) & 15, m = v & 7;
    float x;
    if (e == 15 && m == 7) x = std::numeric_limits<float>::quiet_NaN();
    else if (e == 0) x = std::ldexp(float(m), -9);
    else x = std::ldexp(1.0f + float(m) / 8.0f, e - 7);
    return (v & 0x80) ? -x : x;
}

float f8_e5m2_to_f32(uint8_t v) {
    const int e = (v >> 2) & 31, m = v & 3;
    float x;
    if (e == 31) x = m == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
    else if (e == 0) x = std::ldexp(float(m), -16);
    else x = std::ldexp(1.0f + float(m) / 4.0f, e - 15);
    return (v & 0x80) ? -x : x;
}

const QuantInfo& quant_info(QuantType t) {
    for (const QuantInfo& q : kInfos)
        if (q.type == t) return q;
    return kInfos[0];
}

std::optional<QuantType> quant_from_name(std::string_view name) {
    for (const QuantInfo& q : kInfos) {
        if (q.type == QuantType::None || q.name.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size() && same; ++i)
            same = std::tolower(static_cast<unsigned char>(name[i])) == std::tolower(static_cast<unsigned char>(q.name[i]));
        if (same) return q.type;
    }
    return std::nullopt;
}

std::string_view quantizable_names() { return "q4_0 q4_1 q5_0 q5_1 q8_0 q4_K q5_K q6_K"; }

void dequantize(QuantType t, const uint8_t* src, float* dst, size_t n_blocks) {
    switch (t) {
        case QuantType::None: return;
        case QuantType::Q4_0: dq_q4_0(src, dst, n_blocks); return;
        case QuantType::Q4_1: dq_q4_1(src, dst, n_blocks); return;
        case QuantType::Q5_0: dq_q5_0(src, dst, n_blocks); return;
        case QuantType::Q5_1: dq_q5_1(src, dst, n_blocks); return;
        case QuantType::Q8_0: dq_q8_0(src, dst, n_blocks); return;
        case QuantType::Q2_K: dq_q2_K(src, dst, n_blocks); return;
        case QuantType::Q3_K: dq_q3_K(src, dst, n_blocks); return;
        case QuantType::Q4_K: dq_k45(src, dst, n_blocks, false); return;
        case QuantType::Q5_K: dq_k45(src, dst, n_blocks, true); return;
        case QuantType::Q6_K: dq_q6_K(src, dst, n_blocks); return;
        case QuantType::Q8_K: dq_q8_K(src, dst, n_blocks); return;
        case QuantType::F8_E4M3: {
            static const auto table = [] {
                std::array<float, 256> a{};
                for (int i = 0; i < 256; ++i) a[size_t(i)] = f8_e4m3_to_f32(uint8_t(i));
                return a;
            }();
            for (size_t i = 0; i < n_blocks; ++i) dst[i] = table[src[i]];
            return;
        }
        case QuantType::F8_E5M2: {
            static const auto table = [] {
                std::array<float, 256> a{};
                for (int i = 0; i < 256; ++i) a[size_t(i)] = f8_e5m2_to_f32(uint8_t(i));
                return a;
            }();
            for (size_t i = 0; i < n_blocks; ++i) dst[i] = table[src[i]];
            return;
        }
    }
}

void quantize(QuantType t, const float* src, uint8_t* dst, size_t n_blocks) {
    switch (t) {
        case QuantType::Q4_0: q_q4_0(src, dst, n_blocks); return;
        case QuantType::Q4_1: q_q4_1(src, dst, n_blocks); return;
        case QuantType::Q5_0: q_q5(src, dst, n_blocks, false); return;
        case QuantType::Q5_1: q_q5(src, dst, n_blocks, true); return;
        case QuantType::Q8_0: q_q8_0(src, dst, n_blocks); return;
        case QuantType::Q4_K: q_k45(src, dst, n_blocks, 15); return;
        case QuantType::Q5_K: q_k45(src, dst, n_blocks, 31); return;
        case QuantType::Q6_K: q_q6_K(src, dst, n_blocks); return;
        default: return;
    }
}

}  // namespace easel
