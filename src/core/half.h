// Scalar fp16 and bf16 conversions; the definition every SIMD conversion is tested against.
// Rounding is round-to-nearest-even, as torch's .half() and .bfloat16() do; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>

namespace easel {

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN, keep sign
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return f32_from_bits(sign);
        // subnormal: value = mant * 2^-24
        float v = float(mant) * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

inline uint16_t f32_to_f16(float f) {
    const uint32_t u = f32_bits(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);          // NaN
    if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);         // rounds to >= 65520: inf
    if (a < 0x38800000u) {                                           // below 2^-14: subnormal or zero
        // value / 2^-24, rounded to nearest even
        const float v = f32_from_bits(a) * 16777216.0f;
        float r = __builtin_rintf(v);  // default rounding mode is nearest-even
        return uint16_t(sign | uint16_t(r));
    }
    uint32_t m = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);      // rebias and round to 10 mantissa bits
    return uint16_t(sign | uint16_t(m >> 13));
}

}  // namespace easel
