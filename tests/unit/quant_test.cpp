// Quantized formats (core/quant.h) and quantized Tensors (core/tensor.h): fp8 decoding at known codes, the
// quantizers' error on random weights, and the views that keep rows as stored.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "common/compare.h"
#include "core/quant.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "io/weights.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::random_floats;

namespace {

TEST(Quant, Fp8KnownCodes) {
    // e4m3fn: 1.0 = 0 0111 000; 448 = 0 1111 110 (largest); 2^-6 = smallest normal; 2^-9 smallest subnormal.
    EXPECT_EQ(f8_e4m3_to_f32(0x38), 1.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x7e), 448.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0xfe), -448.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
    EXPECT_EQ(f8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
    EXPECT_EQ(f8_e4m3_to_f32(0x3c), 1.5f);
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0x7f)));
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0xff)));
    // e5m2: 1.0 = 0 01111 00; 57344 largest; 0x7c infinity.
    EXPECT_EQ(f8_e5m2_to_f32(0x3c), 1.0f);
    EXPECT_EQ(f8_e5m2_to_f32(0x7b), 57344.0f);
    EXPECT_TRUE(std::isinf(f8_e5m2_to_f32(0x7c)));
    EXPECT_TRUE(std::isnan(f8_e5m2_to_f32(0x7d)));
    EXPECT_EQ(f8_e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
    // The table-driven dequantize() agrees with the scalar function on every code.
    std::vector<uint8_t> codes(256);
    for (int i = 0; i < 256; ++i) codes[size_t(i)] = uint8_t(i);
    std::vector<float> got(256);
    dequantize(QuantType::F8_E4M3, codes.data(), got.data(), 256);
    for (int i = 0; i < 256; ++i) {
        const float want = f8_e4m3_to_f32(uint8_t(i));
        if (std::isnan(want)) EXPECT_TRUE(std::isnan(got[size_t(i)]));
        else EXPECT_EQ(got[size_t(i)], want) << i;
    }
}

// Relative rms error of quantize -> dequantize on uniform [-1, 1) weights, against the bound the format's step
// gives (uniform rounding error is step / sqrt(12); values rms 1/sqrt(3)): q8_0 0.4%, q6_K ~1.6%, 5-bit ~3%,
// 4-bit ~6%. Bounds leave room for the scales' own rounding.
TEST(Quant, QuantizersRoundTrip) {
    struct Case {
        QuantType type;
        double bound;
    };
    for (const Case c : {Case{QuantType::Q8_0, 0.006}, Case{QuantType::Q6_K, 0.025}, Case{QuantType::Q5_0, 0.045},
                         Case{QuantType::Q5_1, 0.045}, Case{QuantType::Q5_K, 0.05}, Case{QuantType::Q4_0, 0.09},
                         Case{QuantType::Q4_1, 0.09}, Case{QuantType::Q4_K, 0.1}}) {
        const QuantInfo& q = quant_info(c.type);
        ASSERT_TRUE(q.can_quantize) << q.name;
        const size_t n = 256 * 64;
        const std::vector<float> x = random_floats(n, 11 + uint64_t(c.type));
        std::vector<uint8_t> blocks(quant_bytes(c.type, int64_t(n)));
        quantize(c.type, x.data(), blocks.data(), n / q.block_elems);
        std::vector<float> y(n);
        dequantize(c.type, blocks.data(), y.data(), n / q.block_elems);
        double err = 0, ref = 0;
        for (size_t i = 0; i < n; ++i) {
            err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
            ref += double(x[i]) * x[i];
        }
        const double rel = std::sqrt(err / ref);
        std::printf("  %s: relative rms error %.4f (bound %.3f)\n", std::string(q.name).c_str(), rel, c.bound);
        EXPECT_LT(rel, c.bound) << q.name;
        // A second pass over the decoded values changes nothing much (the grid is stable).
        std::vector<uint8_t> again(blocks.size());
        quantize(c.type, y.data(), again.data(), n / q.block_elems);
        std::vector<float> z(n);
        dequantize(c.type, again.data(), z.data(), n / q.block_elems);
        EXPECT_TRUE(compare(z, y, {.atol = 0.5 * c.bound, .rtol = 0}).passed()) << q.name;
    }
    // Zeros stay zeros (no division by a zero scale).
    std::vector<float> zeros(256, 0.0f);
    for (QuantType t : {QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1,
                        QuantType::Q4_K, QuantType::Q5_K, QuantType::Q6_K}) {
        std::vector<uint8_t> b(quant_bytes(t, 256));
        quantize(t, zeros.data(), b.data(), 256 / quant_info(t).block_elems);
        std::vector<float> y(256, 1.0f);
        dequantize(t, b.data(), y.data(), 256 / quant_info(t).block_elems);
        for (float v : y) ASSERT_EQ(v, 0.0f) << quant_info(t).name;
    }
    EXPECT_EQ(quant_from_name("Q4_K"), QuantType::Q4_K);
    EXPECT_EQ(quant_from_name("q8_0"), QuantType::Q8_0);
    EXPECT_FALSE(quant_from_name("q9_0"));
}

Tensor quantized_random(const Shape& shape, QuantType t, uint64_t seed) {
    const std::vector<float> x = random_floats(size_t(shape.numel()), seed);
    auto bytes = std::make_shared<std::vector<uint8_t>>(quant_bytes(t, shape.numel()));
    quantize(t, x.data(), bytes->data(), size_t(shape.numel()) / quant_info(t).block_elems);
    return Tensor::wrap_quantized(bytes->data(), shape, t, std::shared_ptr<void>(bytes, bytes->data()));
}

TEST(QuantTensor, RowViewsStayQuantized) {
    const Tensor q = quantized_random({6, 4, 64}, QuantType::Q8_0, 3);
    ASSERT_TRUE(q.quantized());
    EXPECT_EQ(q.nbytes(), size_t(6 * 4 * 2 * 34));
    const Tensor f = q.to(DType::F32);
    ASSERT_EQ(f.dtype(), DType::F32);

    const Tensor s = q.slice(0, 2, 5);  // rows 2..4: a view into the blocks
    EXPECT_TRUE(s.quantized());
    EXPECT_EQ(static_cast<const uint8_t*>(s.raw()), static_cast<const uint8_t*>(q.raw()) + 2 * 4 * 2 * 34);
    EXPECT_TRUE(compare(s.to(DType::F32), f.slice(0, 2, 5).contiguous(), {0, 0}).passed());

    const Tensor r = q.reshape({24, 64});  // innermost stays whole blocks
    EXPECT_TRUE(r.quantized());
    EXPECT_TRUE(compare(r.to(DType::F32), f.reshape({24, 64}), {0, 0}).passed());
    const Tensor r2 = q.reshape({6, 256, 1});  // innermost 1: decoded
    EXPECT_FALSE(r2.quantized());
    EXPECT_TRUE(compare(r2, f.reshape({6, 256, 1}), {0, 0}).passed());
    const Tensor u = q.unsqueeze(0);
    EXPECT_TRUE(u.quantized());
    EXPECT_EQ(u.shape(), Shape({1, 6, 4, 64}));

    const Tensor t = q.transpose(0, 1);  // not rows: decoded
    EXPECT_FALSE(t.quantized());
    EXPECT_TRUE(compare(t, f.transpose(0, 1), {0, 0}).passed());
    EXPECT_TRUE(compare(q.slice(2, 0, 32), f.slice(2, 0, 32), {0, 0}).passed());
    EXPECT_FLOAT_EQ(float(q.item({1, 2, 3})), f.data<float>()[1 * 256 + 2 * 64 + 3]);

    const Tensor c = q.clone();
    EXPECT_TRUE(c.quantized());
    EXPECT_NE(c.raw(), q.raw());
    EXPECT_TRUE(compare(c, f, {0, 0}).passed());
    EXPECT_EQ(q.contiguous().raw(), q.raw());
}

TEST(QuantTensor, SafetensorsFp8RoundTrip) {
    // A float8_e4m3fn tensor is read as stored (one byte per value) and written back as F8_E4M3.
    auto bytes = std::make_shared<std::vector<uint8_t>>(std::vector<uint8_t>{0x38, 0x7e, 0xb8, 0x08, 0x00, 0x40});
    WeightSet w;
    ASSERT_TRUE(w.add("w", Tensor::wrap_quantized(bytes->data(), {2, 3}, QuantType::F8_E4M3,
                                                  std::shared_ptr<void>(bytes, bytes->data()))));
    auto text = serialize_safetensors(w, {});
    ASSERT_TRUE(text) << text.error().to_string();
    EXPECT_NE(text->find("\"F8_E4M3\""), std::string::npos);
    auto owner = std::make_shared<std::string>(*text);
    auto r = read_safetensors_bytes(reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), owner, "mem");
    ASSERT_TRUE(r) << r.error().to_string();
    const Tensor* t = r->find("w");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->quant(), QuantType::F8_E4M3);
    EXPECT_EQ(t->to_floats(), (std::vector<float>{1.0f, 448.0f, -1.0f, 0.015625f, 0.0f, 2.0f}));
}

TEST(QuantTensor, SafetensorsWritesGgmlBlocksDecoded) {
    WeightSet w;
    const Tensor q = quantized_random({2, 32}, QuantType::Q4_0, 5);
    ASSERT_TRUE(w.add("w", q));
    auto text = serialize_safetensors(w, {});
    ASSERT_TRUE(text) << text.error().to_string();
    auto owner = std::make_shared<std::string>(*text);
    auto r = read_safetensors_bytes(reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), owner, "mem");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->find("w")->dtype(), DType::F32);
    EXPECT_TRUE(compare(*r->find("w"), q.to(DType::F32), {0, 0}).passed());
}

}  // namespace
