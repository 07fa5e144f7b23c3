#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <cmath>
#include <vector>

#include "common/compare.h"
#include "core/allocator.h"
#include "core/cpu_features.h"
#include "core/half.h"
#include "core/log_fields.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

using namespace easel;

TEST(Result, CarriesValueOrError) {
    auto f = [](int x) -> Result<int> {
        if (x < 0) return Error::invalid_argument("must be >= 0", "--steps");
        return x * 2;
    };
    auto g = [&](int x) -> Result<int> {
        EASEL_TRY_ASSIGN(int v, f(x));
        return v + 1;
    };
    EXPECT_EQ(*g(3), 7);
    Result<int> e = g(-1);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(e.error().to_string(), "--steps: must be >= 0");
    EXPECT_EQ(e.error().within("cli").to_string(), "cli: --steps: must be >= 0");
}

TEST(Half, F16RoundTripsEveryHalf) {
    // Every finite f16 converts to f32 and back unchanged; NaNs stay NaN.
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = f16_to_f32(uint16_t(h));
        if (std::isnan(f)) {
            EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
            continue;
        }
        ASSERT_EQ(f32_to_f16(f), h) << "h=" << h << " f=" << f;
    }
}

TEST(Half, F16RoundsToNearestEven) {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
    EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to inf, as torch does
    EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // halfway to the smallest subnormal: ties to even (0)
    EXPECT_EQ(f32_to_f16(0x1.8p-25f), 0x0001);
    EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
}

TEST(Half, Bf16RoundsToNearestEven) {
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808001u)), 0x3f81);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Tensor, ViewsShareMemoryAndContiguousCopies) {
    std::vector<float> v(24);
    for (int i = 0; i < 24; ++i) v[size_t(i)] = float(i);
    Tensor t = Tensor::from_floats({2, 3, 4}, v);
    EXPECT_TRUE(t.is_contiguous());
    Tensor p = t.permute({2, 0, 1});  // [4, 2, 3]
    EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
    EXPECT_FALSE(p.is_contiguous());
    EXPECT_EQ(p.item({3, 1, 2}), t.item({1, 2, 3}));
    Tensor c = p.contiguous();
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_EQ(c.data<float>()[0 * 6 + 1 * 3 + 2], 1 * 12 + 2 * 4 + 0);
    Tensor s = t.slice(1, 1, 3);  // [2, 2, 4]
    EXPECT_EQ(s.item({1, 0, 2}), 12 + 4 + 2);
    Tensor sel = t.select(0, 1);  // [3, 4]
    EXPECT_EQ(sel.shape(), Shape({3, 4}));
    EXPECT_EQ(sel.item({2, 3}), 23);
    Tensor u = t.unsqueeze(1);
    EXPECT_EQ(u.shape(), Shape({2, 1, 3, 4}));
    EXPECT_EQ(t.reshape({6, -1}).shape(), Shape({6, 4}));
    s.data<float>();  // typed access checks dtype only
    sel.clone().data<float>()[0] = -1.0f;  // a copy: t unchanged
    sel.contiguous().data<float>()[1] = -2.0f;  // already contiguous: a view, t changes
    EXPECT_EQ(t.item({1, 0, 1}), -2);
    EXPECT_EQ(t.item({1, 0, 0}), 12);
}

TEST(Tensor, ConvertsBetweenDtypes) {
    Tensor t = Tensor::from_floats({3}, {1.0f, -2.5f, 65504.0f});
    Tensor h = t.to(DType::F16);
    EXPECT_EQ(h.dtype(), DType::F16);
    EXPECT_EQ(h.data<uint16_t>()[2], 0x7bff);
    EXPECT_EQ(h.to(DType::F32).to_floats(), (std::vector<float>{1.0f, -2.5f, 65504.0f}));
    Tensor i = t.to(DType::I64);
    EXPECT_EQ(i.data<int64_t>()[1], -2);
}

TEST(BufferPool, ReusesFreedBuffers) {
    BufferPool pool;
    void* first = nullptr;
    {
        Tensor a = Tensor::empty({1, 320, 64, 64}, DType::F32, &pool);
        first = a.raw();
    }
    Tensor b = Tensor::empty({1, 320, 64, 64}, DType::F32, &pool);
    EXPECT_EQ(b.raw(), first);
    const BufferPoolStats s = pool.stats();
    EXPECT_EQ(s.allocations, 1u);
    EXPECT_EQ(s.reuses, 1u);
}

TEST(ThreadPool, CoversEveryIndexOnce) {
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(4097)}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            parallel_for(n, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
                // nested loops run inline
                parallel_for(3, [&](int64_t, int64_t) {});
            });
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
        }
    }
    set_num_threads(2);
}

TEST(CpuFeatures, CapLimitsActiveIsa) {
    const Isa best = best_isa(cpu_features());
    EXPECT_TRUE(isa_usable(Isa::Ref, cpu_features(), Isa::Ref));
    EXPECT_FALSE(isa_usable(Isa::Avx2, cpu_features(), Isa::Ref));
    EXPECT_EQ(isa_from_name("avx2"), Isa::Avx2);
    EXPECT_FALSE(isa_from_name("sse9").has_value());
    std::printf("cpu: %s, best isa %s\n", cpu_features().brand.c_str(), std::string(isa_name(best)).c_str());
}

// allocate_zeroed_pages: zeroed, writable, and 2 MiB-aligned from 2 MiB on (so huge pages can back it).
TEST(ZeroedPages, ZeroedAlignedWritable) {
    for (size_t bytes : {size_t(1), size_t(4097), size_t(2) << 20, (size_t(5) << 20) + 123}) {
        std::shared_ptr<void> m = allocate_zeroed_pages(bytes);
        ASSERT_NE(m, nullptr) << bytes;
        auto* p = static_cast<unsigned char*>(m.get());
        size_t nonzero = 0;
        for (size_t i = 0; i < bytes; ++i) nonzero += p[i] != 0;
        EXPECT_EQ(nonzero, 0u) << bytes;
        if (bytes >= (size_t(2) << 20)) {
            EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t(2) << 20), 0u) << bytes;
        }
        p[bytes - 1] = 2;
        p[0] = 1;
        EXPECT_EQ(p[0], 1);
        EXPECT_EQ(p[bytes - 1], bytes > 1 ? 2 : 1);
    }
    EXPECT_EQ(allocate_zeroed_pages(size_t(1) << 50), nullptr);  // absurd: refused, not a crash
}

// The pool's large blocks (huge-page mappings) are reused and returned like small ones.
TEST(BufferPool, LargeBlocksAreReusedAndTrimmed) {
    BufferPool pool;
    {
        Tensor a = Tensor::empty({4, 1024, 1024}, DType::F32, &pool);  // 16 MiB
        a.data<float>()[0] = 1.0f;
    }
    Tensor b = Tensor::empty({4, 1024, 1024}, DType::F32, &pool);
    b.data<float>()[b.numel() - 1] = 2.0f;
    EXPECT_EQ(pool.stats().allocations, 1u);
    EXPECT_EQ(pool.stats().reuses, 1u);
    b = Tensor();
    pool.trim();
    EXPECT_EQ(pool.stats().bytes_cached, 0u);
}

// Structured log lines (core/log_fields.h): text "level component: message k=v", or one JSON object per line.
TEST(Log, FieldsAsTextAndAsJson) {
    const easel::LogFields fields = {{"request_id", "r1"}, {"path", "/a\"b\\c\n"}};
    EXPECT_EQ(easel::format_log_line(easel::LogLevel::Info, "http", "GET /x 200", fields, false),
              "info http: GET /x 200 request_id=r1 path=/a\"b\\c\\n\n");  // a newline cannot start a forged line
    const std::string j = easel::format_log_line(easel::LogLevel::Warn, "http", "m\x01", fields, true);
    ASSERT_EQ(j.rfind("{\"time\":\"", 0), 0u) << j;
    const size_t after_time = j.find("\",\"level\"");
    ASSERT_NE(after_time, std::string::npos) << j;
    EXPECT_EQ(after_time, std::string("{\"time\":\"2026-12-06T03:54:26.550Z").size()) << j;
    EXPECT_EQ(j.substr(after_time),
              "\",\"level\":\"warn\",\"component\":\"http\",\"message\":\"m\\u0001\",\"request_id\":\"r1\","
              "\"path\":\"/a\\\"b\\\\c\\n\"}\n");
}
