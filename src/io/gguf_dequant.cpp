#include "io/gguf_dequant.h"

#include <cstring>

#include "core/half.h"

namespace easel {

namespace {

constexpr uint32_t kQK = 32;    // elements per block of the legacy types
constexpr uint32_t kQK_K = 256;  // elements per super-block of the K-quants

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, true, false},
    {GgmlType::F16, "f16", 1, 2, true, false},
    {GgmlType::Q4_0, "q4_0", kQK, 18, true, true},
    {GgmlType::Q4_1, "q4_1", kQK, 20, true, true},
    {GgmlType::Q5_0, "q5_0", kQK, 22, true, true},
    {GgmlType::Q5_1, "q5_1", kQK, 24, true, true},
    {GgmlType::Q8_0, "q8_0", kQK, 34, true, true},
    {GgmlType::Q8_1, "q8_1", kQK, 36, false, true},
    {GgmlType::Q2_K, "q2_K", kQK_K, 84, true, true},
    {GgmlType::Q3_K, "q3_K", kQK_K, 110, true, true},
    {GgmlType::Q4_K, "q4_K", kQK_K, 144, true, true},
    {GgmlType::Q5_K, "q5_K", kQK_K, 176, true, true},
    {GgmlType::Q6_K, "q6_K", kQK_K, 210, true, true},
    {GgmlType::Q8_K, "q8_K", kQK_K, 292, true, true},
    {GgmlType::IQ2_XXS, "iq2_xxs", kQK_K, 66, false, true},
    {GgmlType::IQ2_XS, "iq2_xs", kQK_K, 74, false, true},
    {GgmlType::IQ3_XXS, "iq3_xxs", kQK_K, 98, false, true},
    {GgmlType::IQ1_S, "iq1_s", kQK_K, 50, false, true},
    {GgmlType::IQ4_NL, "iq4_nl", kQK, 18, false, true},
    {GgmlType::IQ3_S, "iq3_s", kQK_K, 110, false, true},
    {GgmlType::IQ2_S, "iq2_s", kQK_K, 82, false, true},
    {GgmlType::IQ4_XS, "iq4_xs", kQK_K, 136, false, true},
    {GgmlType::I8, "i8", 1, 1, true, false},
    {GgmlType::I16, "i16", 1, 2, true, false},
    {GgmlType::I32, "i32", 1, 4, true, false},
    {GgmlType::I64, "i64", 1, 8, true, false},
    {GgmlType::F64, "f64", 1, 8, true, false},
    {GgmlType::IQ1_M, "iq1_m", kQK_K, 56, false, true},
    {GgmlType::BF16, "bf16", 1, 2, true, false},
    {GgmlType::TQ1_0, "tq1_0", kQK_K, 54, false, true},
    {GgmlType::TQ2_0, "tq2_0", kQK_K, 66, false, true},
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

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
    for (const auto& t : kTypes)
        if (uint32_t(t.type) == id) return &t;
    return nullptr;
}

// q4_0, 18 bytes / 32 elements: f16 d | u8 qs[16].
// Element i < 16 is the low nibble of qs[i], element i + 16 the high nibble; x = (q - 8) * d.
void dequantize_q4_0(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q4_1(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q5_0(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q5_1(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q8_0(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 34, dst += kQK) {
        const float d = load_f16(src);
        for (int i = 0; i < 32; ++i) dst[i] = float(int8_t(src[2 + i])) * d;
    }
}

// q2_K, 84 bytes / 256 elements: u8 scales[16] | u8 qs[64] | f16 d | f16 dmin.
// 16 sub-blocks of 16 elements; scales[s] holds sub-block s's scale (low nibble) and min (high nibble).
// Element e = 128*h + 32*j + l (h < 2, j < 4, l < 32) is the 2-bit field at bit 2*j of qs[32*h + l], in
// sub-block s = 8*h + 2*j + l/16; x = d * scale_s * q - dmin * min_s.
void dequantize_q2_K(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q3_K(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q4_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 144, dst += kQK_K) {
        const float d = load_f16(src), dmin = load_f16(src + 2);
        const uint8_t* sc = src + 4;
        const uint8_t* qs = src + 16;
        for (int p = 0; p < 4; ++p)
            for (int k = 0; k < 2; ++k) {
                int scale, min;
                k4_scale_min(sc, 2 * p + k, scale, min);
                const float dl = d * float(scale), ml = dmin * float(min);
                for (int l = 0; l < 32; ++l) {
                    const int q = k == 0 ? (qs[32 * p + l] & 15) : (qs[32 * p + l] >> 4);
                    dst[64 * p + 32 * k + l] = dl * float(q) - ml;
                }
            }
    }
}

// q5_K, 176 bytes / 256 elements: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128].
// As q4_K, plus a 5th bit (value 16): element 64*p + 32*k + l takes bit (2*p + k) of qh[l].
void dequantize_q5_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 176, dst += kQK_K) {
        const float d = load_f16(src), dmin = load_f16(src + 2);
        const uint8_t* sc = src + 4;
        const uint8_t* qh = src + 16;
        const uint8_t* qs = src + 48;
        for (int p = 0; p < 4; ++p)
            for (int k = 0; k < 2; ++k) {
                int scale, min;
                k4_scale_min(sc, 2 * p + k, scale, min);
                const float dl = d * float(scale), ml = dmin * float(min);
                for (int l = 0; l < 32; ++l) {
                    const int lo = k == 0 ? (qs[32 * p + l] & 15) : (qs[32 * p + l] >> 4);
                    const int q = lo | (((qh[l] >> (2 * p + k)) & 1) << 4);
                    dst[64 * p + 32 * k + l] = dl * float(q) - ml;
                }
            }
    }
}

// q6_K, 210 bytes / 256 elements: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d.
// Element e = 128*h + 32*r + l (h < 2, r < 4, l < 32): low 4 bits are the low (r even) or high (r odd)
// nibble of ql[64*h + 32*(r%2) + l]; top 2 bits are bits 2*r..2*r+1 of qh[32*h + l]; the 16 sub-blocks
// have 16 elements each, s = e / 16; x = d * scales[s] * (q - 32).
void dequantize_q6_K(const uint8_t* src, float* dst, size_t n_blocks) {
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
void dequantize_q8_K(const uint8_t* src, float* dst, size_t n_blocks) {
    for (size_t b = 0; b < n_blocks; ++b, src += 292, dst += kQK_K) {
        float d;
        std::memcpy(&d, src, 4);
        for (int i = 0; i < 256; ++i) dst[i] = float(int8_t(src[4 + i])) * d;
    }
}

bool dequantize_blocks(GgmlType type, const uint8_t* src, float* dst, size_t n_blocks) {
    switch (type) {
        case GgmlType::Q4_0: dequantize_q4_0(src, dst, n_blocks); return true;
        case GgmlType::Q4_1: dequantize_q4_1(src, dst, n_blocks); return true;
        case GgmlType::Q5_0: dequantize_q5_0(src, dst, n_blocks); return true;
        case GgmlType::Q5_1: dequantize_q5_1(src, dst, n_blocks); return true;
        case GgmlType::Q8_0: dequantize_q8_0(src, dst, n_blocks); return true;
        case GgmlType::Q2_K: dequantize_q2_K(src, dst, n_blocks); return true;
        case GgmlType::Q3_K: dequantize_q3_K(src, dst, n_blocks); return true;
        case GgmlType::Q4_K: dequantize_q4_K(src, dst, n_blocks); return true;
        case GgmlType::Q5_K: dequantize_q5_K(src, dst, n_blocks); return true;
        case GgmlType::Q6_K: dequantize_q6_K(src, dst, n_blocks); return true;
        case GgmlType::Q8_K: dequantize_q8_K(src, dst, n_blocks); return true;
        default: return false;
    }
}

}  // namespace easel
