// conv2d(): every variant this CPU supports against the direct double-accumulating reference
// (kernels/ref/conv2d_ref.cpp): odd sizes (channel counts off the 6-row block, pixel counts off the 16/64-column
// panels, odd k for the bf16 pairs, stride 2, asymmetric padding) and the layer shapes of SD 1.5's UNet and VAE
// with the image scaled down (channels and kernel kept) so the reference stays quick.
//
// Tolerances as in matmul_test.cpp, with K = Cin*kh*kw the length of each dot product:
//     f32 path and BF16 vs its bf16-rounded reference: atol = 2*sqrt(K)*eps*rms(ref), rtol = 2*sqrt(K)*eps
//     (measured worst: 34% of it, conv_in-like 4->512 at 8x8, Zen 5 avx2/avx512);
//     BF16 vs the exact f32 reference: atol = rms(ref)/64, rtol = 1/64 (two bf16 roundings of 2^-9 each;
//     measured worst 55%, 320->320 at 16x16 batch 2; one machine so far).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "common/gemm_tolerance.h"
#include "core/half.h"
#include "kernels/conv2d.h"
#include "kernels/matmul.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;
using easel::testing::random_floats;
using easel::testing::Tolerance;

namespace {

using easel::testing::kEpsF32;
using easel::testing::rms;

struct ConvCase {
    int64_t batch, cin, cout, h, w, k;  // k x k kernel
    int64_t stride, padding, extra;      // extra: zero rows/cols added bottom/right
    bool bias, residual;
    DType wdtype;
    Precision precision;
    Isa isa;
};

std::string shape_key(const ConvCase& c) {
    return fmt::format("{}_{}_N{}_C{}to{}_{}x{}_k{}_s{}_p{}{}{}{}", c.wdtype == DType::F32 ? "f32w" : c.wdtype == DType::F16 ? "f16w" : "bf16w",
                       precision_name(c.precision), c.batch, c.cin, c.cout, c.h, c.w, c.k, c.stride, c.padding,
                       c.extra ? fmt::format("_x{}", c.extra) : std::string(), c.bias ? "_bias" : "",
                       c.residual ? "_res" : "");
}

class Conv2d : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2d, MatchesReference) {
    const ConvCase c = GetParam();
    const std::string label = fmt::format("conv2d({},[{},{},{},{}]->{},k={},s={},p={}{}{}{},{})",
                                          c.wdtype == DType::F32 ? "f32w" : c.wdtype == DType::F16 ? "f16w" : "bf16w",
                                          c.batch, c.cin, c.h, c.w, c.cout, c.k, c.stride, c.padding,
                                          c.extra ? fmt::format(",+{}br", c.extra) : std::string(), c.bias ? ",bias" : "",
                                          c.residual ? ",residual" : "", precision_name(c.precision)) +
                              "," + std::string(isa_name(c.isa));
    Conv2dOptions opt;
    opt.stride = c.stride;
    opt.padding = c.padding;
    opt.extra_pad_bottom = opt.extra_pad_right = c.extra;
    const auto hw = conv2d_output_hw(c.h, c.w, c.k, c.k, opt);
    ASSERT_TRUE(hw) << hw.error().to_string();
    const int64_t ho = hw->first, wo = hw->second;
    const int64_t K = c.cin * c.k * c.k;

    const uint64_t seed = uint64_t(c.cin * 7919 + c.cout * 104729 + c.h * 31 + c.w);
    std::vector<float> wf = random_floats(size_t(c.cout * K), seed);
    std::vector<uint16_t> wh(wf.size());
    if (c.wdtype != DType::F32) {
        for (size_t i = 0; i < wf.size(); ++i) {
            wh[i] = c.wdtype == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
            wf[i] = c.wdtype == DType::F16 ? f16_to_f32(wh[i]) : bf16_to_f32(wh[i]);
        }
    }
    const std::vector<float> x = random_floats(size_t(c.batch * c.cin * c.h * c.w), seed + 1);
    const std::vector<float> bias = random_floats(size_t(c.cout), seed + 2);
    const std::vector<float> res = random_floats(size_t(c.batch * c.cout * ho * wo), seed + 3);
    if (c.bias) opt.bias = bias.data();
    if (c.residual) opt.residual = res.data();

    static std::map<std::string, std::vector<float>> ref_cache;  // shared by the variants of one shape
    auto reference = [&](Precision p) -> const std::vector<float>& {
        ConvCase key = c;
        key.precision = p;
        std::vector<float>& r = ref_cache[shape_key(key)];
        if (r.empty()) {
            r.resize(res.size());
            conv2d_f32_ref(x.data(), c.batch, c.cin, c.h, c.w, wf.data(), c.cout, c.k, c.k, r.data(), opt, p);
        }
        return r;
    };
    const std::vector<float>& ref = reference(c.precision);

    const void* wdata = c.wdtype == DType::F32 ? static_cast<const void*>(wf.data()) : wh.data();
    auto packed = pack_conv2d_weight(wdata, c.wdtype, c.cout, c.cin, c.k, c.k, c.precision, c.isa);
    ASSERT_TRUE(packed) << packed.error().to_string();
    std::vector<float> got(res.size(), NAN);
    conv2d(x.data(), c.batch, c.h, c.w, *packed, got.data(), opt);

    const double r0 = 2.0 * std::sqrt(double(K)) * kEpsF32;
    const std::vector<int64_t> shape = {c.batch, c.cout, ho, wo};
    const CompareReport r = compare(got.data(), ref.data(), got.size(), {r0 * rms(ref), r0}, shape);
    std::printf("%s: %s\n", label.c_str(), r.summary().c_str());
    EXPECT_TRUE(r.passed()) << label << ": " << r.summary();
    if (c.precision == Precision::BF16) {
        const std::vector<float>& exact = reference(Precision::F32);
        const CompareReport e = compare(got.data(), exact.data(), got.size(), {rms(exact) / 64.0, 1.0 / 64.0}, shape);
        std::printf("%s vs exact f32: %s\n", label.c_str(), e.summary().c_str());
        EXPECT_TRUE(e.passed()) << label << " vs exact f32: " << e.summary();
    }
}

std::vector<ConvCase> conv_cases() {
    std::vector<ConvCase> out;
    auto add = [&](int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t k, int64_t s, int64_t p,
                   int64_t extra, bool bias, bool res, DType t) {
        for (Precision prec : {Precision::F32, Precision::BF16})
            for (Isa isa : gemm_supported_isas(prec))
                // The Ref variant (pack + dispatch into the reference) only on small shapes.
                if (isa != Isa::Ref || batch * cin * cout * h * w * k * k <= 1'000'000)
                    out.push_back({batch, cin, cout, h, w, k, s, p, extra, bias, res, t, prec, isa});
    };
    const DType f32 = DType::F32, f16 = DType::F16, bf16 = DType::BF16;
    // Odd sizes and every geometry option.
    add(1, 1, 1, 1, 1, 1, 1, 0, 0, false, false, f32);
    add(1, 3, 7, 5, 7, 3, 1, 1, 0, true, false, f32);
    add(2, 5, 13, 9, 4, 3, 1, 1, 0, true, true, f16);
    add(1, 3, 7, 9, 11, 3, 2, 1, 0, false, false, bf16);
    add(1, 5, 6, 9, 8, 3, 2, 0, 1, true, false, f32);
    add(1, 7, 17, 13, 5, 1, 1, 0, 0, true, true, f32);
    add(1, 2, 3, 6, 7, 5, 1, 2, 0, false, false, f32);
    add(1, 16, 16, 96, 80, 3, 1, 1, 0, true, false, f16);  // many pixel tiles, each spanning several rows
    add(1, 33, 70, 20, 20, 3, 1, 1, 0, true, false, f32);  // K = 297: two k blocks in f32 mode
    // Output rows of whole 64-column panels: BF16 on avx512bf16 takes the implicit GEMM (B read in place from
    // zero-bordered pair planes, no im2col).
    add(1, 5, 13, 6, 64, 3, 1, 1, 0, true, true, f16);     // odd cin: the last pair's partner is zero
    add(2, 16, 7, 3, 128, 1, 1, 0, 0, true, false, f32);   // 1x1, batch 2, two panels per row
    add(1, 128, 20, 4, 64, 3, 1, 1, 0, true, true, f16);   // 576 pair words: three k blocks
    add(1, 64, 64, 16, 64, 3, 1, 1, 0, false, true, bf16);
    // An im2col of 8.8 MB, past the one built whole: built per tile (where the kernel has no implicit GEMM, as BF16
    // without bf16 hardware), 60-pixel rows, so that panels of 16 or 32 pixels straddle output rows and borders.
    add(1, 64, 8, 64, 60, 3, 1, 1, 0, true, true, f16);
    // SD 1.5 UNet (fp16 checkpoints), images scaled from 64/32/16/8 to 16/8/8/4.
    add(1, 4, 320, 16, 16, 3, 1, 1, 0, true, false, f16);      // conv_in
    add(2, 320, 320, 16, 16, 3, 1, 1, 0, true, true, f16);     // resnet conv2 + skip, batch 2 (CFG)
    add(1, 320, 640, 8, 8, 3, 1, 1, 0, true, false, f16);      // resnet conv1 at a channel change
    add(1, 320, 640, 8, 8, 1, 1, 0, 0, true, false, f16);      // 1x1 conv_shortcut
    add(1, 320, 320, 16, 16, 3, 2, 1, 0, true, false, f16);    // downsampler
    add(1, 640, 640, 8, 8, 3, 1, 1, 0, true, false, f16);
    add(1, 1280, 1280, 4, 4, 3, 1, 1, 0, true, false, f16);
    // Level 3 at its real 8x8 with all 1280 input channels (11520 k values, several k blocks); the whole
    // im2col is built once and shared by the row tiles.
    add(2, 1280, 192, 8, 8, 3, 1, 1, 0, true, false, f16);
    add(1, 320, 4, 16, 16, 3, 1, 1, 0, true, false, f16);      // conv_out
    // SD VAE, images scaled from 512/256/64 to 32/16/8.
    add(1, 4, 512, 8, 8, 3, 1, 1, 0, true, false, f16);        // decoder conv_in
    add(1, 512, 512, 8, 8, 3, 1, 1, 0, true, true, f16);
    add(1, 256, 256, 16, 16, 3, 1, 1, 0, true, false, f16);
    add(1, 128, 128, 32, 32, 3, 1, 1, 0, true, true, f16);
    add(1, 128, 128, 32, 32, 3, 2, 0, 1, true, false, f16);    // encoder Downsample2D: pad (0,1,0,1), stride 2
    add(1, 128, 3, 32, 32, 3, 1, 1, 0, true, false, f16);      // decoder conv_out
    return out;
}

INSTANTIATE_TEST_SUITE_P(Kernels, Conv2d, ::testing::ValuesIn(conv_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& i) {
                             return shape_key(i.param) + "_" + std::string(isa_name(i.param.isa));
                         });

// The dispatcher's own choice: EASEL_CPU_ISA caps it, and ctest runs this file once per cap.
TEST(Conv2dDispatch, DefaultVariantMatchesReference) {
    const int64_t cin = 16, cout = 20, h = 9, w = 11;
    const std::vector<float> wt = random_floats(size_t(cout * cin * 9), 31);
    const std::vector<float> x = random_floats(size_t(cin * h * w), 32);
    const Conv2dOptions opt{.padding = 1};
    for (Precision p : {Precision::F32, Precision::BF16}) {
        auto packed = pack_conv2d_weight(wt.data(), DType::F32, cout, cin, 3, 3, p);
        ASSERT_TRUE(packed) << packed.error().to_string();
        const Isa expect = p == Precision::F32 && int(active_isa()) >= int(Isa::Avx512Bf16) ? Isa::Avx512 : active_isa();
        EXPECT_EQ(packed->isa, expect);
        std::vector<float> ref(size_t(cout * h * w)), got(ref.size());
        conv2d_f32_ref(x.data(), 1, cin, h, w, wt.data(), cout, 3, 3, ref.data(), opt, p);
        conv2d(x.data(), 1, h, w, *packed, got.data(), opt);
        const double r0 = 2.0 * std::sqrt(double(cin * 9)) * kEpsF32;
        const CompareReport r = compare(got.data(), ref.data(), got.size(), {r0 * rms(ref), r0}, {1, cout, h, w});
        std::printf("conv2d(f32w,[1,%lld,%lld,%lld]->%lld,k=3,p=1,%s,default=%s): %s\n", (long long)cin, (long long)h,
                    (long long)w, (long long)cout, std::string(precision_name(p)).c_str(),
                    std::string(isa_name(packed->isa)).c_str(), r.summary().c_str());
        EXPECT_TRUE(r.passed()) << r.summary();
    }
}

// pack_conv2d_rows_into: output channels packed in blocks (a LoRA's row-blocked merge) give the bytes of the
// weight packed whole, on every variant, precision and source dtype (odd cin: the bf16 pairs' zero partner).
TEST(Conv2dPack, RowBlocksEqualTheWholeWeight) {
    const int64_t cout = 23, cin = 7, k = 3, K = cin * k * k;
    const std::vector<float> f = random_floats(size_t(cout * K), 5);
    for (DType t : {DType::F32, DType::F16, DType::BF16})
        for (Precision p : {Precision::F32, Precision::BF16})
            for (Isa isa : gemm_supported_isas(p)) {
                std::vector<uint16_t> half(f.size());
                for (size_t i = 0; i < f.size(); ++i) half[i] = t == DType::F16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
                const void* src = t == DType::F32 ? static_cast<const void*>(f.data()) : half.data();
                const size_t elem = t == DType::F32 ? 4 : 2;
                auto whole = pack_conv2d_weight(src, t, cout, cin, k, k, p, isa);
                ASSERT_TRUE(whole) << whole.error().to_string();
                std::vector<uint8_t> blocks(whole->layout_bytes(), 0);
                for (int64_t r0 = 0; r0 < cout; r0 += 5) {
                    const int64_t rows = std::min<int64_t>(5, cout - r0);
                    ASSERT_TRUE(pack_conv2d_rows_into(static_cast<const uint8_t*>(src) + size_t(r0 * K) * elem, t, *whole,
                                                      r0, rows, blocks.data()));
                }
                EXPECT_EQ(std::memcmp(blocks.data(), whole->data.get(), blocks.size()), 0)
                    << precision_name(p) << " " << isa_name(isa);
                EXPECT_FALSE(pack_conv2d_rows_into(src, t, *whole, 20, 4, blocks.data()));
            }
}

// The kpack-1 conv layout word by word, as its definition reads: row o holds W[o] in PyTorch's (ci, ky, kx) order,
// as f32 or (BF16 mode without a bf16 dot product) bf16-rounded f32, zero up to ld_words. K = 7 * 9 = 63 and
// 3 * 9 = 27 leave a tail of every vector width; a NaN and an infinity go through the rounding too.
TEST(Conv2dPack, F32RowsHoldTheWeight) {
    int checked = 0;
    for (const int64_t cin : {7, 3})
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (Precision p : {Precision::F32, Precision::BF16})
                for (Isa isa : gemm_supported_isas(p)) {
                    const int64_t cout = 11, K = cin * 9;
                    std::vector<float> f = random_floats(size_t(cout * K), 9 + uint64_t(cin));
                    f[5] = NAN;
                    f[size_t(K + 2)] = -INFINITY;
                    std::vector<uint16_t> half(f.size());
                    for (size_t i = 0; i < f.size(); ++i) {
                        if (t == DType::F32) continue;
                        half[i] = t == DType::F16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
                        f[i] = t == DType::F16 ? f16_to_f32(half[i]) : bf16_to_f32(half[i]);
                    }
                    const void* src = t == DType::F32 ? static_cast<const void*>(f.data()) : half.data();
                    auto packed = pack_conv2d_weight(src, t, cout, cin, 3, 3, p, isa);
                    ASSERT_TRUE(packed) << packed.error().to_string();
                    if (packed->isa == Isa::Ref || packed->kpack != 1) continue;
                    std::vector<uint32_t> expect(packed->layout_bytes() / 4, 0);
                    for (int64_t o = 0; o < cout; ++o)
                        for (int64_t k = 0; k < K; ++k) {
                            const float v = f[size_t(o * K + k)];
                            expect[size_t(o * packed->ld_words + k)] =
                                p == Precision::BF16 ? uint32_t(f32_to_bf16(v)) << 16 : f32_bits(v);
                        }
                    EXPECT_EQ(std::memcmp(expect.data(), packed->data.get(), packed->layout_bytes()), 0)
                        << "cin " << cin << " " << precision_name(p) << " " << isa_name(isa);
                    ++checked;
                }
    std::printf("%d packed f32 conv layouts checked word by word\n", checked);
    if (checked == 0) GTEST_SKIP() << "no f32-row conv kernel on this CPU";
}

// f16/bf16 conv weights kept as stored (stored_conv2d_weight: widened a block at a time per call) give what the
// same values packed at load give, bit for bit, and the reference's result within matmul_test's tolerance. Every
// variant with f32 words (a kpack-2 layout is refused, and the loader packs those), both precisions, both dtypes;
// shapes with several k blocks, many pixel tiles on both threads, the im2col built once (small images), stride 2
// with the VAE's extra padding, 1x1, an output channel count off the microkernel's rows, a residual; weights
// widened whole per call (up to 16 MiB as f32) and one widened a tile at a time.
TEST(StoredConv2d, SameAsPackedBitForBit) {
    struct Shape {
        int64_t batch, cin, cout, h, w, k, stride, padding, extra;
        bool residual;
    };
    int compared = 0, refused = 0;
    for (DType dt : {DType::F16, DType::BF16})
        for (Precision p : {Precision::F32, Precision::BF16})
            for (Shape sh : {Shape{1, 33, 70, 20, 20, 3, 1, 1, 0, false}, Shape{2, 16, 37, 40, 36, 3, 1, 1, 0, true},
                             Shape{1, 320, 64, 8, 8, 3, 1, 1, 0, false}, Shape{1, 24, 13, 17, 18, 3, 2, 0, 1, false},
                             Shape{1, 40, 23, 16, 16, 1, 1, 0, 0, true},
                             // 17.7 MB as f32: widened per tile (row tiles split for the threads), not whole.
                             Shape{1, 384, 1280, 6, 5, 3, 1, 1, 0, true}}) {
                Conv2dOptions opt{.stride = sh.stride, .padding = sh.padding, .extra_pad_bottom = sh.extra,
                                  .extra_pad_right = sh.extra};
                const auto hw = conv2d_output_hw(sh.h, sh.w, sh.k, sh.k, opt);
                ASSERT_TRUE(hw) << hw.error().to_string();
                const int64_t K = sh.cin * sh.k * sh.k, out_size = sh.batch * sh.cout * hw->first * hw->second;
                const uint64_t seed = uint64_t(sh.cin * 31 + sh.cout * 7 + sh.h) + (dt == DType::F16 ? 0 : 3);
                const std::vector<float> wf = random_floats(size_t(sh.cout * K), seed);
                auto half = std::make_shared<std::vector<uint16_t>>(wf.size());
                std::vector<float> widened(wf.size());
                for (size_t i = 0; i < wf.size(); ++i) {
                    (*half)[i] = dt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
                    widened[i] = dt == DType::F16 ? f16_to_f32((*half)[i]) : bf16_to_f32((*half)[i]);
                }
                const std::vector<float> x = random_floats(size_t(sh.batch * sh.cin * sh.h * sh.w), seed + 1);
                const std::vector<float> bias = random_floats(size_t(sh.cout), seed + 2);
                const std::vector<float> res = random_floats(size_t(out_size), seed + 3);
                opt.bias = bias.data();
                if (sh.residual) opt.residual = res.data();
                std::vector<float> ref(static_cast<size_t>(out_size));
                conv2d_f32_ref(x.data(), sh.batch, sh.cin, sh.h, sh.w, widened.data(), sh.cout, sh.k, sh.k, ref.data(),
                               opt, p);
                const double r0 = 2.0 * std::sqrt(double(K)) * kEpsF32;
                for (Isa isa : gemm_supported_isas(p)) {
                    const std::string label = fmt::format("{} {} {} [{},{},{},{}]->{} k{} s{}", dtype_name(dt),
                                                          precision_name(p), isa_name(isa), sh.batch, sh.cin, sh.h,
                                                          sh.w, sh.cout, sh.k, sh.stride);
                    auto packed = pack_conv2d_weight(half->data(), dt, sh.cout, sh.cin, sh.k, sh.k, p, isa);
                    ASSERT_TRUE(packed) << label << ": " << packed.error().to_string();
                    auto stored = stored_conv2d_weight(std::shared_ptr<const void>(half, half->data()), dt, sh.cout,
                                                       sh.cin, sh.k, sh.k, p, isa);
                    if (packed->kpack == 2) {  // bf16 pairs: refused, with the reason
                        ASSERT_FALSE(stored) << label;
                        EXPECT_NE(stored.error().message().find("pack the weight instead"), std::string::npos)
                            << stored.error().message();
                        ++refused;
                        continue;
                    }
                    ASSERT_TRUE(stored) << label << ": " << stored.error().to_string();
                    EXPECT_EQ(stored->layout_bytes(), half->size() * 2) << label;
                    std::vector<float> a(ref.size(), NAN), b(ref.size(), NAN);
                    conv2d(x.data(), sh.batch, sh.h, sh.w, *stored, a.data(), opt);
                    conv2d(x.data(), sh.batch, sh.h, sh.w, *packed, b.data(), opt);
                    const CompareReport rep = compare(a.data(), ref.data(), a.size(), {r0 * rms(ref), r0},
                                                      {sh.batch, sh.cout, hw->first, hw->second});
                    std::printf("%s: %s\n", label.c_str(), rep.summary().c_str());
                    EXPECT_TRUE(rep.passed()) << label << ": " << rep.summary();
                    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
                        << label << ": stored and packed weights differ";
                    ++compared;
                }
            }
    std::printf("%d stored conv weights compared with packed ones, %d refused (bf16-pair layouts)\n", compared, refused);
    EXPECT_GT(compared, 0);
}

TEST(StoredConv2d, RejectsOtherDtypesAndShapes) {
    auto data = std::make_shared<std::vector<uint16_t>>(9 * 8);
    const std::shared_ptr<const void> p(data, data->data());
    auto f32 = stored_conv2d_weight(p, DType::F32, 2, 4, 3, 3, Precision::F32);
    ASSERT_FALSE(f32);
    EXPECT_NE(f32.error().message().find("expected float16 or bfloat16"), std::string::npos) << f32.error().message();
    EXPECT_FALSE(stored_conv2d_weight(nullptr, DType::F16, 2, 4, 3, 3, Precision::F32));
    EXPECT_FALSE(stored_conv2d_weight(p, DType::F16, 0, 4, 3, 3, Precision::F32));
    EXPECT_FALSE(stored_conv2d_weight(p, DType::F16, 2, 4, 0, 3, Precision::F32));
}

TEST(Conv2dShape, OutputSizeAndErrors) {
    auto hw = conv2d_output_hw(64, 64, 3, 3, {.stride = 2, .padding = 1});
    ASSERT_TRUE(hw);
    EXPECT_EQ(hw->first, 32);
    EXPECT_EQ(hw->second, 32);
    hw = conv2d_output_hw(512, 512, 3, 3, {.stride = 2, .padding = 0, .extra_pad_bottom = 1, .extra_pad_right = 1});
    ASSERT_TRUE(hw);
    EXPECT_EQ(hw->first, 256);  // diffusers' VAE Downsample2D: 512 -> 256
    EXPECT_FALSE(conv2d_output_hw(2, 2, 3, 3, {}));
    EXPECT_FALSE(conv2d_output_hw(8, 8, 3, 3, {.stride = 0}));
    EXPECT_FALSE(conv2d_output_hw(8, 8, 3, 3, {.padding = -1}));
    const float w[9] = {};
    EXPECT_FALSE(pack_conv2d_weight(w, DType::I64, 1, 1, 3, 3, Precision::F32));
    EXPECT_FALSE(pack_conv2d_weight(w, DType::F32, 0, 1, 3, 3, Precision::F32));
    EXPECT_FALSE(pack_conv2d_weight(w, DType::F32, int64_t(1) << 20, int64_t(1) << 20, 3, 3, Precision::F32));
}

}  // namespace
