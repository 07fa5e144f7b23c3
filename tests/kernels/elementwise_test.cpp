// Broadcasting add/mul and concat. Both are exact in float (one rounding per element, as in the reference),
// so every variant must match the reference bit for bit: tolerance 0.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/compare.h"
#include "kernels/elementwise.h"
#include "kernels/ops_test_util.h"

using namespace easel;
using namespace easel::testing;

namespace {

struct BinaryCase {
    Shape a, b;
    BinaryOp op;
};

std::string op_name(BinaryOp op) { return op == BinaryOp::Add ? "add" : "mul"; }

class BinaryTest : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryTest, MatchesReferenceExactly) {
    if (ops_variants().empty()) GTEST_SKIP() << "no SIMD variant under EASEL_CPU_ISA=" << isa_name(isa_cap());
    const BinaryCase& c = GetParam();
    const Shape out_shape = broadcast_shapes(c.a, c.b).value();
    const std::vector<float> a = random_floats(size_t(c.a.numel()), 51 + size_t(c.a.numel()), -3.0f, 3.0f);
    const std::vector<float> b = random_floats(size_t(c.b.numel()), 52 + size_t(c.b.numel()), -3.0f, 3.0f);
    std::vector<float> expect(size_t(out_shape.numel())), got(expect.size());
    binary_f32_ref(c.op, a.data(), c.a, b.data(), c.b, expect.data());
    const std::string name = fmt::format("{}(f32,{},{})", op_name(c.op), c.a.to_string(), c.b.to_string());
    for (const OpsVariant& v : ops_variants()) {
        std::fill(got.begin(), got.end(), std::nanf(""));
        if (v.dispatched) binary_f32(c.op, a.data(), c.a, b.data(), c.b, got.data());
        else binary_f32_variant(v.isa)(c.op, a.data(), c.a, b.data(), c.b, got.data());
        report(name, v, compare(got.data(), expect.data(), got.size(), {.atol = 0, .rtol = 0}, out_shape.to_vector()));
    }
}

std::vector<BinaryCase> binary_cases() {
    std::vector<BinaryCase> cases;
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul}) {
        cases.push_back({{1}, {1}, op});
        cases.push_back({{7}, {7}, op});
        cases.push_back({{4097}, {4097}, op});
        cases.push_back({{2, 320, 64, 64}, {2, 320, 64, 64}, op});  // residual add
        cases.push_back({{2, 320, 64, 64}, {2, 320, 1, 1}, op});    // time embedding over a ResBlock
        cases.push_back({{2, 320, 1, 1}, {2, 320, 15, 17}, op});    // the small operand first
        cases.push_back({{2, 4096, 320}, {320}, op});               // bias / [C] over [..., C]
        cases.push_back({{3, 17, 15}, {}, op});                     // scalar (rank 0)
        cases.push_back({{1}, {5, 7}, op});                         // scalar first
        cases.push_back({{2, 7, 5, 3}, {1, 7, 1, 1}, op});          // [1, C, 1, 1]
        cases.push_back({{7, 1}, {1, 15}, op});                     // outer product: general path
        cases.push_back({{2, 1, 17}, {3, 1}, op});                  // general path, rank mismatch
    }
    return cases;
}

std::string dims_name(const Shape& s) {
    std::string r;
    for (int i = 0; i < s.rank(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
    return r.empty() ? "scalar" : r;
}

INSTANTIATE_TEST_SUITE_P(Ops, BinaryTest, ::testing::ValuesIn(binary_cases()),
                         [](const ::testing::TestParamInfo<BinaryCase>& i) {
                             return fmt::format("{}_{}_{}_{}", op_name(i.param.op), dims_name(i.param.a),
                                                dims_name(i.param.b), i.index);
                         });

TEST(Binary, InPlaceOverTheFullOperand) {
    const Shape sa{2, 8, 9, 9}, sb{2, 8, 1, 1};
    const std::vector<float> a = random_floats(size_t(sa.numel()), 61), b = random_floats(16, 62);
    std::vector<float> expect(a.size());
    binary_f32_ref(BinaryOp::Add, a.data(), sa, b.data(), sb, expect.data());
    for (const OpsVariant& v : ops_variants()) {
        std::vector<float> x = a;
        binary_f32_variant(v.isa)(BinaryOp::Add, x.data(), sa, b.data(), sb, x.data());
        EXPECT_TRUE(compare(x, expect, {}).passed()) << v.name;
    }
}

TEST(Binary, PlansTheSupportedPatterns) {
    BinaryPlan p = plan_binary({2, 320, 64, 64}, {2, 320, 1, 1});
    EXPECT_EQ(p.kind, BinaryPlan::Kind::Blocks);
    EXPECT_EQ(p.outer, 1);
    EXPECT_EQ(p.mid, 640);
    EXPECT_EQ(p.inner, 4096);
    p = plan_binary({320}, {2, 4096, 320});
    EXPECT_EQ(p.kind, BinaryPlan::Kind::Blocks);
    EXPECT_TRUE(p.small_is_a);
    EXPECT_EQ(p.outer, 8192);
    EXPECT_EQ(p.mid, 320);
    EXPECT_EQ(p.inner, 1);
    EXPECT_EQ(plan_binary({7, 1}, {1, 15}).kind, BinaryPlan::Kind::General);
}

TEST(Binary, IncompatibleShapesAreAnError) {
    auto r = broadcast_shapes({2, 320, 64, 64}, {2, 640, 1, 1});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
    EXPECT_NE(r.error().message().find("[2, 320, 64, 64]"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("320 vs 640"), std::string::npos) << r.error().message();
    EXPECT_EQ(broadcast_shapes({3, 1, 5}, {4, 1}).value(), Shape({3, 4, 5}));
}

TEST(Concat, MatchesReferenceExactly) {
    struct Case {
        std::vector<Shape> shapes;
        int dim;
    };
    const std::vector<Case> cases = {
        {{{2, 640, 32, 32}, {2, 320, 32, 32}}, 1},   // UNet skip connection
        {{{1, 7}, {1, 1}, {1, 17}}, 1},
        {{{3, 5, 2}, {4, 5, 2}}, 0},
        {{{2, 3, 15}, {2, 3, 17}}, -1},
        {{{2, 0, 4}, {2, 3, 4}}, 1},                  // an empty part
    };
    for (const Case& c : cases) {
        std::vector<std::vector<float>> data;
        std::vector<ConcatPart> parts;
        for (size_t i = 0; i < c.shapes.size(); ++i)
            data.push_back(random_floats(size_t(c.shapes[i].numel()), 70 + i));
        for (size_t i = 0; i < c.shapes.size(); ++i) parts.push_back({data[i].data(), c.shapes[i]});
        const Shape os = concat_shape(parts, c.dim).value();
        std::vector<float> expect(size_t(os.numel())), got(expect.size(), std::nanf(""));
        concat_f32_ref(parts, c.dim, expect.data());
        concat_f32(parts, c.dim, got.data());
        std::string name = "concat(f32,";
        for (const Shape& s : c.shapes) name += s.to_string() + ",";
        name += fmt::format("dim={})", c.dim);
        const CompareReport r = compare(got.data(), expect.data(), got.size(), {}, os.to_vector());
        std::printf("%-58s %-8s %s\n", name.c_str(), "memcpy", r.summary().c_str());
        EXPECT_TRUE(r.passed()) << name << " " << r.summary();
    }
}

TEST(Concat, ReferenceKnownValues) {
    const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6};
    std::vector<float> out(6);
    concat_f32_ref({{a.data(), {2, 2}}, {b.data(), {2, 1}}}, 1, out.data());
    EXPECT_EQ(out, (std::vector<float>{1, 2, 5, 3, 4, 6}));
}

TEST(Concat, MismatchedPartsAreAnError) {
    const float x = 0;
    auto r = concat_shape({{&x, {2, 3, 4}}, {&x, {2, 5, 5}}}, 1);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("[2, 5, 5]"), std::string::npos) << r.error().message();
    EXPECT_FALSE(concat_shape({{&x, {2, 3}}}, 2));
    EXPECT_FALSE(concat_shape({{&x, {2, 3}}, {&x, {2}}}, 0));
    EXPECT_FALSE(concat_shape({}, 0));
}

}  // namespace
