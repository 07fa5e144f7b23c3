// GGUF reader and dequantizers: the Python fixtures (tools/reference/make_io_fixtures.py), hand-built blocks
// for every quantized type whose expected values follow from the layout described in
// src/io/gguf_dequant.cpp, and one malformed file per validation rule.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "common/compare.h"
#include "core/half.h"
#include "io/gguf.h"
#include "io/gguf_dequant.h"

using namespace easel;
using easel::testing::compare;

namespace {

const std::string kData = std::string(EASEL_TEST_DATA_DIR) + "/gguf/";

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class T>
void put(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& s, const std::string& v) {
    put<uint64_t>(s, v.size());
    s += v;
}
void put_f16(std::string& s, float v) { put<uint16_t>(s, f32_to_f16(v)); }

// Builds GGUF files field by field, so that tests can break any one field.
struct GgufBuilder {
    struct T {
        std::string name;
        std::vector<uint64_t> ne;  // innermost first, as stored
        uint32_t type;
        std::string data;
        std::optional<uint64_t> offset;  // default: next aligned position
    };
    uint32_t version = 3;
    uint64_t alignment = 32;
    std::string kvs;
    uint64_t n_kv = 0;
    std::vector<T> tensors;
    std::optional<uint64_t> n_tensors_override, n_kv_override;

    void kv(const std::string& key, uint32_t type, const std::string& value_bytes) {
        put_str(kvs, key);
        put<uint32_t>(kvs, type);
        kvs += value_bytes;
        ++n_kv;
    }
    void kv_u32(const std::string& key, uint32_t v) {
        std::string b;
        put<uint32_t>(b, v);
        kv(key, 4, b);
    }
    void kv_str(const std::string& key, const std::string& v) {
        std::string b;
        put_str(b, v);
        kv(key, 8, b);
    }
    void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data,
                std::optional<uint64_t> offset = std::nullopt) {
        tensors.push_back({name, std::move(ne), type, std::move(data), offset});
    }

    std::string build() const {
        std::string s = "GGUF";
        put<uint32_t>(s, version);
        put<uint64_t>(s, n_tensors_override.value_or(tensors.size()));
        put<uint64_t>(s, n_kv_override.value_or(n_kv));
        s += kvs;
        std::string data;
        for (const T& t : tensors) {
            uint64_t off = (data.size() + alignment - 1) / alignment * alignment;
            if (t.offset) off = *t.offset;
            if (!t.data.empty()) {  // an empty tensor may claim any offset without growing the file
                if (data.size() < off + t.data.size()) data.resize(off + t.data.size(), '\0');
                std::memcpy(data.data() + off, t.data.data(), t.data.size());
            }
            put_str(s, t.name);
            put<uint32_t>(s, uint32_t(t.ne.size()));
            for (uint64_t n : t.ne) put<uint64_t>(s, n);
            put<uint32_t>(s, t.type);
            put<uint64_t>(s, off);
        }
        s.append((alignment - s.size() % alignment) % alignment, '\0');
        return s + data;
    }
};

std::string f32_data(std::vector<float> v) { return {reinterpret_cast<const char*>(v.data()), v.size() * 4}; }

// The views share ownership of a copy of `bytes`, so callers may pass a temporary.
Result<WeightSet> parse(const std::string& bytes) {
    auto owned = std::make_shared<const std::string>(bytes);
    return read_gguf_bytes(reinterpret_cast<const uint8_t*>(owned->data()), owned->size(), owned, "t.gguf");
}

void expect_error(const std::string& bytes, ErrorCode code, std::vector<std::string> needles) {
    auto r = parse(bytes);
    ASSERT_FALSE(r) << "a malformed file was accepted";
    const std::string msg = r.error().to_string();
    EXPECT_EQ(r.error().code(), code) << msg;
    EXPECT_EQ(msg.rfind("t.gguf: ", 0), 0u) << "message must start with the file name: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' missing from: " << msg;
}

// Dequantizes `block` (n_blocks blocks) and compares with `expect` over the whole output.
void check_dequant(GgmlType type, const std::string& blocks, const std::vector<float>& expect) {
    std::vector<float> got(expect.size(), -12345.0f);
    const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(blocks.size() % info->block_bytes, 0u);
    const size_t n_blocks = blocks.size() / info->block_bytes;
    ASSERT_EQ(n_blocks * info->block_elems, expect.size());
    ASSERT_TRUE(dequantize_blocks(type, reinterpret_cast<const uint8_t*>(blocks.data()), got.data(), n_blocks));
    // Scales are small integers times an exactly representable d: the products are exact in f32.
    auto rep = compare(got, expect, {.atol = 1e-6, .rtol = 1e-6});
    EXPECT_TRUE(rep.passed()) << info->name << ": " << rep.summary();
    std::printf("  %s: %s\n", std::string(info->name).c_str(), rep.summary().c_str());
}

}  // namespace

// --- fixtures written by Python ----------------------------------------------------------------------------

TEST(Gguf, ReadsPlainFixture) {
    const std::string path = kData + "plain.gguf";
    auto r = read_gguf(path);
    ASSERT_TRUE(r) << r.error().to_string();
    const WeightSet& w = *r;
    const auto& m = w.metadata;
    EXPECT_EQ(m.at("gguf.version"), "3");
    EXPECT_EQ(m.at("general.architecture"), "easel-test");
    EXPECT_EQ(m.at("test.u8"), "200");
    EXPECT_EQ(m.at("test.i8"), "-100");
    EXPECT_EQ(m.at("test.u16"), "60000");
    EXPECT_EQ(m.at("test.i16"), "-30000");
    EXPECT_EQ(m.at("test.u32"), "4000000000");
    EXPECT_EQ(m.at("test.i32"), "-2000000000");
    EXPECT_EQ(m.at("test.f32"), "0.5");
    EXPECT_EQ(m.at("test.bool"), "true");
    EXPECT_EQ(m.at("test.u64"), "18446744073709551615");
    EXPECT_EQ(m.at("test.i64"), "-9223372036854775808");
    EXPECT_EQ(m.at("test.f64"), "-1.25");
    EXPECT_EQ(m.at("test.array_i32"), "[1, -2, 3]");
    EXPECT_EQ(m.at("test.array_str"), R"(["a", "q\"uote", "back\\slash"])");
    EXPECT_EQ(m.at("test.empty_array"), "[]");

    ASSERT_EQ(w.names(), (std::vector<std::string>{"f32", "f16", "bf16", "i32", "f64", "i8"}));
    const Tensor& f32 = *w.find("f32");  // stored ne = [3, 2]: PyTorch order [2, 3]
    EXPECT_EQ(f32.shape(), Shape({2, 3}));
    ASSERT_EQ(f32.dtype(), DType::F32);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(f32.data<float>()[i], (float(i) - 2.5f) * 0.5f);
    const Tensor& f16 = *w.find("f16");
    ASSERT_EQ(f16.dtype(), DType::F16);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(f16_to_f32(f16.data<uint16_t>()[i]), float(i) * 1.5f - 1.0f);
    const Tensor& bf16 = *w.find("bf16");  // ne = [2, 1, 1]
    EXPECT_EQ(bf16.shape(), Shape({1, 1, 2}));
    ASSERT_EQ(bf16.dtype(), DType::BF16);
    EXPECT_EQ(bf16_to_f32(bf16.data<uint16_t>()[1]), -2.5f);
    EXPECT_EQ(w.find("i32")->data<int32_t>()[1], -8);
    EXPECT_EQ(w.find("f64")->data<double>()[1], -0.2);
    EXPECT_EQ(w.find("i8")->data<int8_t>()[0], -5);
}

TEST(Gguf, PlainTensorsAreZeroCopy) {
    auto owner = std::make_shared<std::string>(read_bytes(kData + "plain.gguf"));
    const uint8_t* base = reinterpret_cast<const uint8_t*>(owner->data());
    auto r = read_gguf_bytes(base, owner->size(), owner, "mem");
    ASSERT_TRUE(r) << r.error().to_string();
    const uint8_t* p = static_cast<const uint8_t*>(r->find("f16")->raw());
    EXPECT_GE(p, base);
    EXPECT_LT(p, base + owner->size());
}

TEST(Gguf, QuantFixtureMatchesPythonExpectation) {
    // Every quantized type, 2 rows each; "X.expected" holds the values the Python packer encoded.
    auto r = read_gguf(kData + "quant.gguf");
    ASSERT_TRUE(r) << r.error().to_string();
    int checked = 0;
    for (const char* name : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K"}) {
        const Tensor* got = r->find(name);
        const Tensor* expect = r->find(std::string(name) + ".expected");
        ASSERT_NE(got, nullptr) << name;
        ASSERT_NE(expect, nullptr) << name;
        EXPECT_TRUE(got->quantized()) << name << ": kept as stored";
        EXPECT_EQ(quant_info(got->quant()).name, name);
        EXPECT_EQ(got->size(0), 2) << name;
        auto rep = compare(*got, *expect, {.atol = 1e-6, .rtol = 1e-6});
        EXPECT_TRUE(rep.passed()) << name << ": " << rep.summary();
        std::printf("  %s: %s\n", name, rep.summary().c_str());
        ++checked;
    }
    EXPECT_EQ(checked, 11);
}

TEST(Gguf, Version2WithCustomAlignment) {
    auto r = read_gguf(kData + "v2_align64.gguf");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->metadata.at("gguf.version"), "2");
    EXPECT_EQ(r->metadata.at("general.alignment"), "64");
    EXPECT_EQ(r->find("f32")->data<float>()[5], 1.25f);
}

TEST(Gguf, BuilderFileRoundTrips) {
    // Guards the builder the error tests rely on: unbroken, it makes a file the reader accepts.
    GgufBuilder b;
    b.kv_str("general.name", "x");
    b.tensor("a", {2}, 0, f32_data({1.0f, 2.0f}));
    b.tensor("b", {3}, 0, f32_data({3.0f, 4.0f, 5.0f}));
    auto r = parse(b.build());
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->find("b")->data<float>()[2], 5.0f);
}

// --- dequantizers on hand-built blocks ----------------------------------------------------------------------
// Each test picks integer codes and scales, packs them as the layout comment in gguf_dequant.cpp describes
// (the expected value of element e is written next to the packing), and checks the whole decoded block(s).

TEST(GgufDequant, Q4_0) {
    // Two blocks: d = 0.5 then -2; element i has code (i + 3b) % 16, value (code - 8) * d.
    std::string blocks;
    std::vector<float> expect;
    for (int b = 0; b < 2; ++b) {
        const float d = b == 0 ? 0.5f : -2.0f;
        int q[32];
        for (int i = 0; i < 32; ++i) q[i] = (i + 3 * b) % 16;
        put_f16(blocks, d);
        for (int i = 0; i < 16; ++i) put<uint8_t>(blocks, uint8_t(q[i] | q[i + 16] << 4));
        for (int i = 0; i < 32; ++i) expect.push_back(float(q[i] - 8) * d);
    }
    check_dequant(GgmlType::Q4_0, blocks, expect);
}

TEST(GgufDequant, Q4_1) {
    std::string blocks;
    std::vector<float> expect;
    const float d = 0.25f, m = -1.5f;
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = (31 - i) % 16;
    put_f16(blocks, d);
    put_f16(blocks, m);
    for (int i = 0; i < 16; ++i) put<uint8_t>(blocks, uint8_t(q[i] | q[i + 16] << 4));
    for (int i = 0; i < 32; ++i) expect.push_back(float(q[i]) * d + m);
    check_dequant(GgmlType::Q4_1, blocks, expect);
}

TEST(GgufDequant, Q5_0AndQ5_1) {
    // 5-bit codes (7i + 5) % 32: the high bit varies in both halves. Bit i of the u32 qh is code i's bit 4.
    int q[32];
    for (int i = 0; i < 32; ++i) q[i] = (7 * i + 5) % 32;
    uint32_t qh = 0;
    for (int i = 0; i < 32; ++i) qh |= uint32_t((q[i] >> 4) & 1) << i;
    std::string lows;
    for (int i = 0; i < 16; ++i) lows += char(uint8_t((q[i] & 15) | (q[i + 16] & 15) << 4));

    std::string b0;
    put_f16(b0, 0.125f);
    put<uint32_t>(b0, qh);
    b0 += lows;
    std::vector<float> e0;
    for (int i = 0; i < 32; ++i) e0.push_back(float(q[i] - 16) * 0.125f);
    check_dequant(GgmlType::Q5_0, b0, e0);

    std::string b1;
    put_f16(b1, 0.5f);
    put_f16(b1, 3.0f);
    put<uint32_t>(b1, qh);
    b1 += lows;
    std::vector<float> e1;
    for (int i = 0; i < 32; ++i) e1.push_back(float(q[i]) * 0.5f + 3.0f);
    check_dequant(GgmlType::Q5_1, b1, e1);
}

TEST(GgufDequant, Q8_0) {
    std::string blocks;
    std::vector<float> expect;
    put_f16(blocks, 0.0625f);
    for (int i = 0; i < 32; ++i) {
        const int q = i * 8 - 128;  // -128 .. 120
        put<int8_t>(blocks, int8_t(q));
        expect.push_back(float(q) * 0.0625f);
    }
    check_dequant(GgmlType::Q8_0, blocks, expect);
}

TEST(GgufDequant, Q2_K) {
    // Sub-block s (16 elements) has scale s and min 15 - s; element e has 2-bit code (e * 5 + e / 7) % 4.
    // Packing: element e = 128h + 32j + l sits at bits 2j of qs[32h + l]. value = d*scale*q - dmin*min.
    const float d = 0.5f, dmin = 0.25f;
    std::string blk;
    for (int s = 0; s < 16; ++s) put<uint8_t>(blk, uint8_t(s | (15 - s) << 4));
    uint8_t qs[64] = {};
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        const int q = (e * 5 + e / 7) % 4, h = e / 128, j = (e % 128) / 32, l = e % 32, s = e / 16;
        qs[32 * h + l] |= uint8_t(q << (2 * j));
        expect[size_t(e)] = d * float(s) * float(q) - dmin * float(15 - s);
    }
    blk.append(reinterpret_cast<const char*>(qs), 64);
    put_f16(blk, d);
    put_f16(blk, dmin);
    check_dequant(GgmlType::Q2_K, blk, expect);
}

TEST(GgufDequant, Q3_K) {
    // 16 signed 6-bit scales covering -32..31: scale s = 4s - 32 (+3 for s = 15, reaching 31).
    // Stored u = scale + 32: low nibble in byte s (s < 8) or the high nibble of byte s - 8; bits 4-5 at bits
    // 2*(s/4) of byte 8 + s%4. Codes q = (e % 8) - 4 in -4..3, stored L = q + 4: bits 0-1 at bits 2j of
    // qs[32h + l] (e = 128h + 32j + l), bit 2 at bit e/32 of hmask[l]. value = d * scale * q.
    const float d = 0.25f;
    int scale[16];
    for (int s = 0; s < 16; ++s) scale[s] = 4 * s - 32 + (s == 15 ? 3 : 0);
    uint8_t hmask[32] = {}, qs[64] = {}, sc[12] = {};
    for (int s = 0; s < 16; ++s) {
        const int u = scale[s] + 32;
        if (s < 8) sc[s] |= uint8_t(u & 15);
        else sc[s - 8] |= uint8_t((u & 15) << 4);
        sc[8 + s % 4] |= uint8_t((u >> 4) << (2 * (s / 4)));
    }
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        const int q = (e % 8) - 4, L = q + 4, h = e / 128, j = (e % 128) / 32, l = e % 32;
        qs[32 * h + l] |= uint8_t((L & 3) << (2 * j));
        hmask[l] |= uint8_t((L >> 2) << (e / 32));
        expect[size_t(e)] = d * float(scale[e / 16]) * float(q);
    }
    std::string blk(reinterpret_cast<const char*>(hmask), 32);
    blk.append(reinterpret_cast<const char*>(qs), 64);
    blk.append(reinterpret_cast<const char*>(sc), 12);
    put_f16(blk, d);
    check_dequant(GgmlType::Q3_K, blk, expect);
}

namespace {

// Packs 8 six-bit scales and mins as q4_K/q5_K store them (see k4_scale_min in gguf_dequant.cpp).
std::string pack_k4_scales(const int* sc, const int* mn) {
    uint8_t b[12] = {};
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            b[j] |= uint8_t(sc[j]);
            b[j + 4] |= uint8_t(mn[j]);
        } else {
            b[j + 4] |= uint8_t((sc[j] & 15) | (mn[j] & 15) << 4);
            b[j - 4] |= uint8_t((sc[j] >> 4) << 6);
            b[j] |= uint8_t((mn[j] >> 4) << 6);
        }
    }
    return {reinterpret_cast<const char*>(b), 12};
}

// Scales 63, 58, ..., 28 and mins 0, 9, ..., 63: every sub-block's 6-bit fields use their top bits.
constexpr int kK4Scales[8] = {63, 58, 53, 48, 43, 38, 33, 28};
constexpr int kK4Mins[8] = {0, 9, 18, 27, 36, 45, 54, 63};

}  // namespace

TEST(GgufDequant, Q4_K) {
    // Sub-block e/32; code (3e) % 16 as nibble k of qs[32p + l], e = 64p + 32k + l.
    // value = d * scale * q - dmin * min.
    const float d = 0.125f, dmin = 0.0625f;
    uint8_t qs[128] = {};
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        const int q = (3 * e) % 16, p = e / 64, k = (e % 64) / 32, l = e % 32, s = e / 32;
        qs[32 * p + l] |= uint8_t(q << (4 * k));
        expect[size_t(e)] = d * float(kK4Scales[s]) * float(q) - dmin * float(kK4Mins[s]);
    }
    std::string blk;
    put_f16(blk, d);
    put_f16(blk, dmin);
    blk += pack_k4_scales(kK4Scales, kK4Mins);
    blk.append(reinterpret_cast<const char*>(qs), 128);
    check_dequant(GgmlType::Q4_K, blk, expect);
}

TEST(GgufDequant, Q5_K) {
    // As q4_K with 5-bit codes (7e + 1) % 32; bit 4 of element e is bit e/32 of qh[e % 32].
    const float d = 0.125f, dmin = 0.5f;
    uint8_t qh[32] = {}, qs[128] = {};
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        const int q = (7 * e + 1) % 32, p = e / 64, k = (e % 64) / 32, l = e % 32, s = e / 32;
        qs[32 * p + l] |= uint8_t((q & 15) << (4 * k));
        qh[l] |= uint8_t((q >> 4) << (e / 32));
        expect[size_t(e)] = d * float(kK4Scales[s]) * float(q) - dmin * float(kK4Mins[s]);
    }
    std::string blk;
    put_f16(blk, d);
    put_f16(blk, dmin);
    blk += pack_k4_scales(kK4Scales, kK4Mins);
    blk.append(reinterpret_cast<const char*>(qh), 32);
    blk.append(reinterpret_cast<const char*>(qs), 128);
    check_dequant(GgmlType::Q5_K, blk, expect);
}

TEST(GgufDequant, Q6_K) {
    // Signed 8-bit scale per 16 elements: (17s % 256) - 128. Codes q = (e % 64) - 32, stored L = q + 32:
    // e = 128h + 32r + l; low nibble into ql[64h + 32(r%2) + l] (low half for r < 2, high for r >= 2);
    // bits 4-5 into bits 2r of qh[32h + l]. value = d * scale * q.
    const float d = 0.03125f;
    uint8_t ql[128] = {}, qh[64] = {};
    int8_t sc[16];
    for (int s = 0; s < 16; ++s) sc[s] = int8_t((17 * s) % 256 - 128);
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        const int q = (e % 64) - 32, L = q + 32, h = e / 128, r = (e % 128) / 32, l = e % 32;
        ql[64 * h + 32 * (r % 2) + l] |= uint8_t((L & 15) << (r < 2 ? 0 : 4));
        qh[32 * h + l] |= uint8_t((L >> 4) << (2 * r));
        expect[size_t(e)] = d * float(sc[e / 16]) * float(q);
    }
    std::string blk(reinterpret_cast<const char*>(ql), 128);
    blk.append(reinterpret_cast<const char*>(qh), 64);
    blk.append(reinterpret_cast<const char*>(sc), 16);
    put_f16(blk, d);
    check_dequant(GgmlType::Q6_K, blk, expect);
}

TEST(GgufDequant, Q8_K) {
    const float d = 0.25f;
    std::string blk;
    put<float>(blk, d);
    std::vector<float> expect(256);
    for (int e = 0; e < 256; ++e) {
        put<int8_t>(blk, int8_t(e - 128));
        expect[size_t(e)] = float(e - 128) * d;
    }
    for (int g = 0; g < 16; ++g) put<int16_t>(blk, 0);  // bsums: not used by dequantization
    check_dequant(GgmlType::Q8_K, blk, expect);
}

TEST(GgufDequant, TypeTableSizes) {
    // Block sizes from the layouts: a wrong entry would misplace every following tensor.
    const std::pair<GgmlType, uint32_t> sizes[] = {
        {GgmlType::Q4_0, 18}, {GgmlType::Q4_1, 20}, {GgmlType::Q5_0, 22}, {GgmlType::Q5_1, 24},
        {GgmlType::Q8_0, 34}, {GgmlType::Q2_K, 84}, {GgmlType::Q3_K, 110}, {GgmlType::Q4_K, 144},
        {GgmlType::Q5_K, 176}, {GgmlType::Q6_K, 210}, {GgmlType::Q8_K, 292}};
    for (auto [t, bytes] : sizes) {
        const GgmlTypeInfo* info = ggml_type_info(uint32_t(t));
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->block_bytes, bytes) << info->name;
        EXPECT_TRUE(info->readable && info->quantized) << info->name;
    }
    EXPECT_EQ(ggml_type_info(4), nullptr);  // removed upstream
    EXPECT_EQ(ggml_type_info(99), nullptr);
    EXPECT_FALSE(ggml_type_info(16)->readable);  // iq2_xxs
    float out[256];
    EXPECT_FALSE(dequantize_blocks(GgmlType::F32, nullptr, out, 0));
}

// --- malformed files -------------------------------------------------------------------------------------

TEST(GgufErrors, BadMagic) { expect_error("GGML\x03\0\0\0", ErrorCode::BadFile, {"magic"}); }

TEST(GgufErrors, UnsupportedVersions) {
    GgufBuilder b;
    b.version = 1;
    expect_error(b.build(), ErrorCode::Unsupported, {"version 1"});
    b.version = 4;
    expect_error(b.build(), ErrorCode::Unsupported, {"version 4", "expected 2 or 3"});
    b.version = 0x03000000;  // a big-endian file read as little-endian
    expect_error(b.build(), ErrorCode::Unsupported, {"big-endian"});
}

TEST(GgufErrors, TruncatedHeader) {
    expect_error(std::string("GGUF\x03\0\0\0\x01\0\0", 11), ErrorCode::BadFile, {"at byte 8", "tensor count"});
}

TEST(GgufErrors, CountsBeyondFile) {
    GgufBuilder b;
    b.n_kv_override = uint64_t(1) << 62;
    expect_error(b.build(), ErrorCode::BadFile, {"4611686018427387904 key/values"});
    GgufBuilder c;
    c.n_tensors_override = 1000;
    expect_error(c.build(), ErrorCode::BadFile, {"1000 tensors"});
}

TEST(GgufErrors, StringLengthBeyondFile) {
    GgufBuilder b;
    std::string v;
    put<uint64_t>(v, 1'000'000);  // a string value claiming 1 MB
    v += "abc";
    b.kv("general.name", 8, v);
    expect_error(b.build(), ErrorCode::BadFile, {"string value length is 1000000 bytes", "at byte"});
}

TEST(GgufErrors, UnknownValueType) {
    GgufBuilder b;
    b.kv("k", 13, "xxxx");
    expect_error(b.build(), ErrorCode::BadFile, {"'k'", "unknown value type 13"});
}

TEST(GgufErrors, ArrayCountBeyondFile) {
    GgufBuilder b;
    std::string v;
    put<uint32_t>(v, 6);               // f32 elements
    put<uint64_t>(v, uint64_t(1) << 40);
    b.kv("tokenizer.scores", 9, v);
    expect_error(b.build(), ErrorCode::BadFile, {"'tokenizer.scores'", "1099511627776 elements"});
}

TEST(Gguf, HugeArrayIsSummarisedNotExpanded) {
    // 8M u8 elements would be 24 MB of text ("7, " each); the reader shows a summary and still finds the next key.
    GgufBuilder b;
    std::string v;
    put<uint32_t>(v, 0);
    put<uint64_t>(v, 8u << 20);
    v.append(8u << 20, '\x07');
    b.kv("big", 9, v);
    b.kv_str("after", "ok");
    auto r = parse(b.build());
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->metadata.at("after"), "ok");
    EXPECT_NE(r->metadata.at("big").find("8388608 elements"), std::string::npos) << r->metadata.at("big").substr(0, 80);
    EXPECT_LT(r->metadata.at("big").size(), 200u);
}

TEST(GgufErrors, NestedArray) {
    GgufBuilder b;
    std::string v;
    put<uint32_t>(v, 9);
    put<uint64_t>(v, 1);
    b.kv("nested", 9, v + std::string(16, '\0'));
    expect_error(b.build(), ErrorCode::BadFile, {"'nested'", "arrays of arrays"});
}

TEST(GgufErrors, DuplicateKey) {
    GgufBuilder b;
    b.kv_str("general.name", "a");
    b.kv_str("general.name", "b");
    expect_error(b.build(), ErrorCode::BadFile, {"'general.name'", "more than once"});
}

TEST(GgufErrors, BadAlignment) {
    GgufBuilder b;
    b.kv_u32("general.alignment", 24);
    expect_error(b.build(), ErrorCode::BadFile, {"general.alignment is 24", "power of two"});
    GgufBuilder c;
    c.kv_str("general.alignment", "32");
    expect_error(c.build(), ErrorCode::BadFile, {"general.alignment", "expected u32"});
}

TEST(GgufErrors, BadRank) {
    GgufBuilder b;
    b.tensor("blk.w", {}, 0, "");
    expect_error(b.build(), ErrorCode::BadFile, {"'blk.w'", "0 dimensions"});
    GgufBuilder c;
    c.tensor("blk.w", {1, 1, 1, 1, 1}, 0, f32_data({1}));
    expect_error(c.build(), ErrorCode::BadFile, {"'blk.w'", "5 dimensions", "1 to 4"});
}

TEST(GgufErrors, DimensionsOverflow) {
    GgufBuilder b;
    b.tensor("w", {uint64_t(1) << 33, uint64_t(1) << 33}, 0, "");
    expect_error(b.build(), ErrorCode::BadFile, {"'w'", "overflow"});
    GgufBuilder c;  // the element count fits, the byte count (8 per f64 element) does not
    c.tensor("w", {uint64_t(1) << 62}, 28, "");
    expect_error(c.build(), ErrorCode::BadFile, {"'w'", "f64 overflow"});
    // GGUF lists dims innermost first: the zero made the reader's product 0, while the Shape (outermost first)
    // multiplied 2^33 by 2^33 (signed overflow, found by fuzz_gguf under UBSan).
    GgufBuilder d;
    d.tensor("w", {0, uint64_t(1) << 33, uint64_t(1) << 33}, 0, "");
    expect_error(d.build(), ErrorCode::BadFile, {"'w'", "overflow"});
}

TEST(GgufErrors, UnknownType) {
    GgufBuilder b;
    b.tensor("w", {4}, 99, f32_data({1, 2, 3, 4}));
    expect_error(b.build(), ErrorCode::BadFile, {"'w'", "unknown ggml type id 99"});
}

TEST(GgufErrors, UnsupportedTypeNamesTensor) {
    GgufBuilder b;
    b.tensor("unet.w", {256}, 16, std::string(66, '\0'));  // iq2_xxs
    expect_error(b.build(), ErrorCode::Unsupported, {"'unet.w'", "iq2_xxs"});
}

TEST(GgufErrors, RowNotMultipleOfBlock) {
    GgufBuilder b;
    b.tensor("w", {48}, 2, std::string(36, '\0'));  // q4_0 blocks hold 32
    expect_error(b.build(), ErrorCode::BadFile, {"'w'", "48", "q4_0", "32"});
}

TEST(GgufErrors, OffsetNotAligned) {
    GgufBuilder b;
    b.tensor("w", {1}, 0, f32_data({1}), 4);
    expect_error(b.build(), ErrorCode::BadFile, {"'w'", "offset 4", "alignment 32"});
}

TEST(GgufErrors, DataPastEndOfFile) {
    GgufBuilder b;
    b.tensor("w", {4}, 0, f32_data({1, 2, 3, 4}));
    std::string f = b.build();
    f.resize(f.size() - 4);
    expect_error(f, ErrorCode::BadFile, {"'w'", "16 bytes at data offset 0", "past the end"});
    GgufBuilder c;
    c.tensor("far", {1}, 0, "", uint64_t(1) << 40);
    expect_error(c.build(), ErrorCode::BadFile, {"'far'", "data offset 1099511627776"});
}

TEST(GgufErrors, OverlappingTensors) {
    GgufBuilder b;
    b.tensor("a", {16}, 0, f32_data(std::vector<float>(16, 1.0f)), 0);
    b.tensor("b", {8}, 0, f32_data(std::vector<float>(8, 2.0f)), 32);
    expect_error(b.build(), ErrorCode::BadFile, {"'b'", "data offset 32", "overlaps", "'a'", "[0, 64)"});
}

TEST(GgufErrors, DuplicateTensorName) {
    GgufBuilder b;
    b.tensor("w", {1}, 0, f32_data({1}));
    b.tensor("w", {1}, 0, f32_data({2}));
    expect_error(b.build(), ErrorCode::BadFile, {"'w'", "more than once"});
}

TEST(GgufErrors, MissingFileIsIoError) {
    auto r = read_gguf("/nonexistent/model.gguf");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::Io);
}
