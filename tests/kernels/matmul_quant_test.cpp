// linear() with quantized weights (quantized_linear_weight: GGUF block types and fp8, multiplied as stored) on
// every variant this CPU supports, against the reference: the weight decoded whole by the scalar dequantizer
// (core/quant.h) and multiplied by linear_f32_ref in the same precision. The decoded values are the same on
// both sides, so only the f32 accumulation order differs: the tolerance is matmul_test's,
//     atol = 2 * sqrt(K) * eps * rms(ref),  rtol = 2 * sqrt(K) * eps.
// Shapes: N with a tail of the 16-column panels, K with several k blocks, and K blocks that do not start on a
// quantization block (K = 640: blocks of 216 words against q8_0's 32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "common/gemm_tolerance.h"
#include "core/half.h"
#include "core/quant.h"
#include "kernels/matmul.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;
using easel::testing::random_floats;
using easel::testing::Tolerance;

namespace {

uint64_t next(uint64_t& s) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
}

// n rows of k elements stored as `type`. Types easel can write are quantized from random values; the others get
// random bytes with their scales set to a small f16 (q2_K, q3_K), f32 (q8_K) or no NaN/Inf codes (fp8).
std::vector<uint8_t> random_blocks(QuantType type, int64_t n, int64_t k, uint64_t seed) {
    const QuantInfo& q = quant_info(type);
    const size_t blocks = size_t(n * k) / q.block_elems;
    std::vector<uint8_t> out(blocks * q.block_bytes);
    if (q.can_quantize) {
        const std::vector<float> v = random_floats(size_t(n * k), seed);
        quantize(type, v.data(), out.data(), blocks);
        return out;
    }
    uint64_t s = seed;
    for (uint8_t& b : out) b = uint8_t(next(s));
    for (size_t b = 0; b < blocks; ++b) {
        uint8_t* p = out.data() + b * q.block_bytes;
        const uint16_t d = f32_to_f16(0.01f), dmin = f32_to_f16(0.004f);
        switch (type) {
            case QuantType::Q2_K: std::memcpy(p + 80, &d, 2); std::memcpy(p + 82, &dmin, 2); break;
            case QuantType::Q3_K: std::memcpy(p + 108, &d, 2); break;
            case QuantType::Q8_K: { const float f = 0.008f; std::memcpy(p, &f, 4); break; }
            case QuantType::F8_E4M3: if ((p[0] & 0x7f) == 0x7f) p[0] = 0x38; break;           // NaN -> 1.0
            case QuantType::F8_E5M2: if ((p[0] & 0x7c) == 0x7c) p[0] = 0x3c; break;           // Inf/NaN -> 1.0
            default: break;
        }
    }
    return out;
}

std::vector<float> decode(QuantType type, const std::vector<uint8_t>& blocks, int64_t numel) {
    std::vector<float> f(static_cast<size_t>(numel));
    dequantize(type, blocks.data(), f.data(), size_t(numel) / quant_info(type).block_elems);
    return f;
}

struct QuantCase {
    QuantType type;
    Precision precision;
    int64_t m, n, k;
    bool bias, residual;
};

std::string case_name(const QuantCase& c) {
    return fmt::format("{}_{}_M{}_N{}_K{}{}{}", quant_info(c.type).name, precision_name(c.precision), c.m, c.n, c.k,
                       c.bias ? "_bias" : "", c.residual ? "_res" : "");
}

class QuantLinear : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantLinear, MatchesDecodedReference) {
    const QuantCase c = GetParam();
    const uint64_t seed = uint64_t(c.m * 1000003 + c.n * 1009 + c.k + int(c.type));
    const std::vector<uint8_t> blocks = random_blocks(c.type, c.n, c.k, seed);
    const std::vector<float> w = decode(c.type, blocks, c.n * c.k);
    const std::vector<float> x = random_floats(size_t(c.m * c.k), seed + 1);
    const std::vector<float> bias = random_floats(size_t(c.n), seed + 2);
    const std::vector<float> res = random_floats(size_t(c.m * c.n), seed + 3);
    LinearOptions opt;
    if (c.bias) opt.bias = bias.data();
    if (c.residual) opt.residual = res.data();
    std::vector<float> ref(size_t(c.m * c.n));
    linear_f32_ref(x.data(), c.m, w.data(), c.n, c.k, ref.data(), opt, c.precision);
    const Tolerance tol = easel::testing::f32_accumulation_tolerance(c.k, ref);

    auto shared = std::make_shared<std::vector<uint8_t>>(blocks);
    const std::shared_ptr<const void> data(shared, shared->data());
    for (Isa isa : gemm_supported_isas(c.precision)) {
        auto pw = quantized_linear_weight(data, c.type, c.n, c.k, c.precision, isa);
        ASSERT_TRUE(pw) << pw.error().to_string();
        EXPECT_EQ(pw->bytes(), blocks.size());
        std::vector<float> got(size_t(c.m * c.n), NAN);
        linear(x.data(), c.m, *pw, got.data(), opt);
        const CompareReport rep = compare(got.data(), ref.data(), got.size(), tol, {c.m, c.n});
        const std::string label = fmt::format("{} {}", case_name(c), isa_name(isa));
        std::printf("%s: %s\n", label.c_str(), rep.summary().c_str());
        EXPECT_TRUE(rep.passed()) << label << ": " << rep.summary();
    }
}

std::vector<QuantCase> quant_cases() {
    std::vector<QuantCase> out;
    for (QuantType t : {QuantType::Q4_0, QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1, QuantType::Q8_0,
                        QuantType::Q2_K, QuantType::Q3_K, QuantType::Q4_K, QuantType::Q5_K, QuantType::Q6_K,
                        QuantType::Q8_K, QuantType::F8_E4M3, QuantType::F8_E5M2})
        for (Precision p : {Precision::F32, Precision::BF16}) {
            const bool k_quant = quant_info(t).block_elems == 256;
            out.push_back({t, p, 7, 37, k_quant ? 256 : 96, false, false});
            out.push_back({t, p, 70, 150, k_quant ? 1280 : 640, true, true});
            out.push_back({t, p, 1, 33, 512, true, false});
        }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Kernels, QuantLinear, ::testing::ValuesIn(quant_cases()),
                         [](const ::testing::TestParamInfo<QuantCase>& i) { return case_name(i.param); });

TEST(QuantLinear, RejectsRowsOfPartialBlocks) {
    auto data = std::make_shared<std::vector<uint8_t>>(1000);
    const std::shared_ptr<const void> p(data, data->data());
    auto pw = quantized_linear_weight(p, QuantType::Q4_K, 2, 300, Precision::F32);
    ASSERT_FALSE(pw);
    EXPECT_NE(pw.error().message().find("whole blocks of 256"), std::string::npos) << pw.error().message();
    EXPECT_FALSE(quantized_linear_weight(p, QuantType::None, 2, 256, Precision::F32));
    EXPECT_FALSE(quantized_linear_weight(nullptr, QuantType::Q8_0, 2, 32, Precision::F32));
}

// f16/bf16 weights kept as stored (stored_linear_weight) give what the same rows packed at load give, bit for
// bit: both run one kernel on the same widened values in the same order. Every variant, both precisions, shapes
// with a panel tail, several k blocks and an odd K.
TEST(StoredLinear, SameAsPackedBitForBit) {
    struct Shape {
        int64_t m, n, k;
    };
    for (DType dt : {DType::F16, DType::BF16})
        for (Precision p : {Precision::F32, Precision::BF16})
            for (Shape sh : {Shape{7, 37, 96}, Shape{70, 150, 1283}, Shape{1, 33, 512}, Shape{300, 64, 640}}) {
                const uint64_t seed = uint64_t(sh.m * 1000003 + sh.n * 1009 + sh.k) + (dt == DType::F16 ? 0 : 7);
                const std::vector<float> wf = random_floats(size_t(sh.n * sh.k), seed);
                auto rows = std::make_shared<std::vector<uint16_t>>(wf.size());
                for (size_t i = 0; i < wf.size(); ++i) (*rows)[i] = dt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
                const std::vector<float> x = random_floats(size_t(sh.m * sh.k), seed + 1);
                const std::vector<float> bias = random_floats(size_t(sh.n), seed + 2);
                std::vector<float> widened(wf.size());
                for (size_t i = 0; i < wf.size(); ++i)
                    widened[i] = dt == DType::F16 ? f16_to_f32((*rows)[i]) : bf16_to_f32((*rows)[i]);
                std::vector<float> ref(size_t(sh.m * sh.n));
                linear_f32_ref(x.data(), sh.m, widened.data(), sh.n, sh.k, ref.data(), {.bias = bias.data()}, p);
                const Tolerance tol = easel::testing::f32_accumulation_tolerance(sh.k, ref);
                for (Isa isa : gemm_supported_isas(p)) {
                    const std::string label = fmt::format("{} {} {} M{} N{} K{}", dtype_name(dt), precision_name(p),
                                                          isa_name(isa), sh.m, sh.n, sh.k);
                    auto stored = stored_linear_weight(std::shared_ptr<const void>(rows, rows->data()), dt, sh.n, sh.k, p, isa);
                    auto packed = pack_linear_weight(rows->data(), dt, sh.n, sh.k, p, isa);
                    ASSERT_TRUE(stored) << stored.error().to_string();
                    ASSERT_TRUE(packed) << packed.error().to_string();
                    EXPECT_EQ(stored->bytes(), rows->size() * 2) << label;
                    std::vector<float> a(ref.size(), NAN), b(ref.size(), NAN);
                    linear(x.data(), sh.m, *stored, a.data(), {.bias = bias.data()});
                    linear(x.data(), sh.m, *packed, b.data(), {.bias = bias.data()});
                    const CompareReport rep = compare(a.data(), ref.data(), a.size(), tol, {sh.m, sh.n});
                    std::printf("%s: %s\n", label.c_str(), rep.summary().c_str());
                    EXPECT_TRUE(rep.passed()) << label << ": " << rep.summary();
                    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
                        << label << ": stored and packed weights differ";
                }
            }
}

TEST(StoredLinear, RejectsOtherDtypes) {
    auto data = std::make_shared<std::vector<uint16_t>>(64);
    const std::shared_ptr<const void> p(data, data->data());
    auto pw = stored_linear_weight(p, DType::F32, 2, 16, Precision::F32);
    ASSERT_FALSE(pw);
    EXPECT_NE(pw.error().message().find("expected f16 or bf16"), std::string::npos) << pw.error().message();
    EXPECT_FALSE(stored_linear_weight(nullptr, DType::F16, 2, 16, Precision::F32));
    EXPECT_FALSE(stored_linear_weight(p, DType::F16, 0, 16, Precision::F32));
}

}  // namespace
