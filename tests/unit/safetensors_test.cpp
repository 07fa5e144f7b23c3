// safetensors reader/writer: the Python fixture read back exactly, the writer byte-identical to the Python
// writer (tools/reference/safetensors_io.py), and one deliberately broken file per validation rule.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/compare.h"
#include "core/half.h"
#include "io/safetensors.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(EASEL_TEST_DATA_DIR) + "/safetensors/all_dtypes.safetensors";

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path scratch_dir() {
    fs::path d = fs::path(::testing::TempDir()) / ("easel_safetensors_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}

// A file with exactly this header text (padded with spaces to a multiple of 8) followed by `data`.
std::string make_file(std::string header, const std::string& data) {
    header.append((8 - header.size() % 8) % 8, ' ');
    const uint64_t n = header.size();
    std::string out(reinterpret_cast<const char*>(&n), 8);
    return out + header + data;
}

// The views share ownership of a copy of `bytes`, so callers may pass a temporary.
Result<WeightSet> parse(const std::string& bytes) {
    auto owned = std::make_shared<const std::string>(bytes);
    return read_safetensors_bytes(reinterpret_cast<const uint8_t*>(owned->data()), owned->size(), owned, "t.safetensors");
}

// Parses `bytes`, expects failure with `code`, and that the one-line message contains every `needle`.
void expect_error(const std::string& bytes, ErrorCode code, std::vector<std::string> needles) {
    auto r = parse(bytes);
    ASSERT_FALSE(r) << "a malformed file was accepted";
    const std::string msg = r.error().to_string();
    EXPECT_EQ(r.error().code(), code) << msg;
    EXPECT_EQ(msg.rfind("t.safetensors: ", 0), 0u) << "message must start with the file name: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' missing from: " << msg;
}

std::string f32_bytes(std::vector<float> v) { return {reinterpret_cast<const char*>(v.data()), v.size() * 4}; }

}  // namespace

TEST(Safetensors, ReadsPythonFixture) {
    // Values are the formulas in tools/reference/make_io_fixtures.py (all_dtypes_tensors).
    auto r = read_safetensors(kFixture);
    ASSERT_TRUE(r) << r.error().to_string();
    const WeightSet& w = *r;
    EXPECT_EQ(w.size(), 15u);
    EXPECT_EQ(w.source, kFixture);
    EXPECT_EQ(w.metadata.at("format"), "pt");
    EXPECT_EQ(w.metadata.at("origin"), "tools/reference/make_io_fixtures.py");

    auto get = [&](const char* n) -> const Tensor& {
        const Tensor* t = w.find(n);
        EXPECT_NE(t, nullptr) << n;
        static Tensor none;
        return t ? *t : none;
    };
    const Tensor& f64 = get("f64");
    ASSERT_EQ(f64.dtype(), DType::F64);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(f64.data<double>()[i], i * 0.25 - 0.5);
    const Tensor& f32 = get("f32");
    ASSERT_EQ(f32.dtype(), DType::F32);
    EXPECT_EQ(f32.shape(), Shape({2, 3}));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(f32.data<float>()[i], (float(i) - 2.5f) * 0.5f);
    const Tensor& f16 = get("f16");
    ASSERT_EQ(f16.dtype(), DType::F16);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(f16_to_f32(f16.data<uint16_t>()[i]), float(i) * 1.5f - 1.0f);
    const Tensor& bf16 = get("bf16");
    ASSERT_EQ(bf16.dtype(), DType::BF16);
    const float bf_expect[] = {1.0f, -2.5f, 3.140625f, 65280.0f};
    for (int i = 0; i < 4; ++i) EXPECT_EQ(bf16_to_f32(bf16.data<uint16_t>()[i]), bf_expect[i]);
    EXPECT_EQ(get("i64").data<int64_t>()[0], -(int64_t(1) << 40));
    EXPECT_EQ(get("i64").data<int64_t>()[1], 7);
    const int32_t i32_expect[] = {1, -2, 3, -4};
    for (int i = 0; i < 4; ++i) EXPECT_EQ(get("i32").data<int32_t>()[i], i32_expect[i]);
    EXPECT_EQ(get("i16").dtype(), DType::I16);
    EXPECT_EQ(get("i16").data<uint16_t>()[0], uint16_t(int16_t(-300)));
    EXPECT_EQ(get("i8").data<int8_t>()[0], -128);
    EXPECT_EQ(get("i8").data<int8_t>()[1], 127);
    EXPECT_EQ(get("u8").data<uint8_t>()[2], 255);
    EXPECT_EQ(get("u16").dtype(), DType::U16);
    EXPECT_EQ(get("u16").data<uint16_t>()[0], 65535);
    ASSERT_EQ(get("u32").dtype(), DType::U32);
    EXPECT_EQ(*static_cast<const uint32_t*>(get("u32").raw()), 4000000000u);
    ASSERT_EQ(get("u64").dtype(), DType::U64);
    EXPECT_EQ(*static_cast<const uint64_t*>(get("u64").raw()), (uint64_t(1) << 63) + 5);
    ASSERT_EQ(get("bool").dtype(), DType::Bool);
    const uint8_t* b = static_cast<const uint8_t*>(get("bool").raw());
    EXPECT_EQ(b[0], 1);
    EXPECT_EQ(b[1], 0);
    EXPECT_EQ(get("scalar").rank(), 0);
    EXPECT_EQ(get("scalar").data<float>()[0], 3.5f);
    EXPECT_EQ(get("empty").shape(), Shape({0, 5}));
    EXPECT_EQ(get("empty").numel(), 0);
}

TEST(Safetensors, ViewsAreZeroCopyAndKeepTheirOwnerAlive) {
    auto owner = std::make_shared<std::string>(read_bytes(kFixture));
    const uint8_t* base = reinterpret_cast<const uint8_t*>(owner->data());
    auto r = read_safetensors_bytes(base, owner->size(), owner, "mem");
    ASSERT_TRUE(r) << r.error().to_string();
    const uint8_t* p = static_cast<const uint8_t*>(r->find("f32")->raw());
    EXPECT_GE(p, base);
    EXPECT_LT(p, base + owner->size());
    Tensor kept = *r->find("f32");
    const long before = owner.use_count();
    EXPECT_GT(before, 1);
    owner.reset();
    r = Error::internal("dropped");  // only `kept` holds the buffer now
    EXPECT_EQ(kept.data<float>()[5], 1.25f);
}

TEST(Safetensors, NamesComeInDataOrder) {
    // The JSON object is parsed into a name-sorted map; names() must still follow the data layout.
    const std::string f = make_file(R"({"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                    R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                    f32_bytes({1.0f, 2.0f}));
    auto r = parse(f);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_EQ(r->names().size(), 2u);
    EXPECT_EQ(r->names()[0], "z");
    EXPECT_EQ(r->names()[1], "a");
    EXPECT_EQ(r->find("a")->data<float>()[0], 2.0f);
}

TEST(Safetensors, WriterMatchesPythonWriterByteForByte) {
    // Same tensors and metadata in, same bytes out: same ordering (element size, then name), compact JSON,
    // __metadata__ first, header padded with spaces to a multiple of 8.
    auto r = read_safetensors(kFixture);
    ASSERT_TRUE(r) << r.error().to_string();
    auto bytes = serialize_safetensors(*r);
    ASSERT_TRUE(bytes) << bytes.error().to_string();
    const std::string expect = read_bytes(kFixture);
    EXPECT_EQ(bytes->size(), expect.size());
    EXPECT_TRUE(*bytes == expect) << "serialized bytes differ from the Python writer's file";
}

TEST(Safetensors, WriteReadRoundTripOfStridedTensors) {
    WeightSet w;
    Tensor a = easel::testing::random_tensor({3, 5}, 7);
    ASSERT_TRUE(w.add("a_transposed", a.transpose(0, 1)));
    ASSERT_TRUE(w.add("h", easel::testing::random_tensor({4}, 8).to(DType::F16)));
    ASSERT_TRUE(w.add("bf", easel::testing::random_tensor({2, 2}, 9).to(DType::BF16)));
    const fs::path p = scratch_dir() / "roundtrip.safetensors";
    Status s = write_safetensors(p.string(), w, {{"k", "v \"quoted\" é"}});
    ASSERT_TRUE(s) << s.error().to_string();
    auto back = read_safetensors(p.string());
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(back->metadata.at("k"), "v \"quoted\" é");
    for (const std::string& n : w.names()) {
        const Tensor* t = back->find(n);
        ASSERT_NE(t, nullptr) << n;
        EXPECT_EQ(t->dtype(), w.find(n)->dtype()) << n;
        auto rep = easel::testing::compare(*t, *w.find(n), {.atol = 0, .rtol = 0});  // bit-exact copy
        EXPECT_TRUE(rep.passed()) << n << ": " << rep.summary();
    }
    // No temporary file is left behind.
    for (const auto& e : fs::directory_iterator(scratch_dir()))
        EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(Safetensors, WriteIntoMissingFolderFailsCleanly) {
    WeightSet w;
    ASSERT_TRUE(w.add("x", Tensor::zeros({2})));
    const fs::path p = scratch_dir() / "no_such_folder" / "x.safetensors";
    Status s = write_safetensors(p.string(), w);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), ErrorCode::Io);
    EXPECT_FALSE(fs::exists(p));
}

TEST(Safetensors, MisalignedTensorIsCopiedToAlignedMemory) {
    // "a" (F32) starts at byte 2 of the data section: legal in the format, but not 4-byte aligned.
    std::string data = "\x07\x08" + f32_bytes({1.5f, -2.0f});
    const std::string f = make_file(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})", data);
    // Make sure the data section really is misaligned in memory: place the file at an 8-aligned address.
    std::vector<uint64_t> storage((f.size() + 7) / 8);
    std::memcpy(storage.data(), f.data(), f.size());
    auto r = read_safetensors_bytes(reinterpret_cast<const uint8_t*>(storage.data()), f.size(), nullptr, "m");
    ASSERT_TRUE(r) << r.error().to_string();
    const Tensor& a = *r->find("a");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % 4, 0u);
    EXPECT_EQ(a.data<float>()[0], 1.5f);
    EXPECT_EQ(a.data<float>()[1], -2.0f);
    EXPECT_EQ(r->find("b")->data<uint8_t>()[1], 8);
}

TEST(Safetensors, TrailingBytesAndEmptyHeaderAreAccepted) {
    auto r = parse(make_file("{}", "junk"));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->size(), 0u);
}

// --- one broken file per validation rule ----------------------------------------------------------------

TEST(SafetensorsErrors, ShorterThanLengthField) {
    expect_error("abc", ErrorCode::BadFile, {"3 bytes", "8-byte header length"});
}

TEST(SafetensorsErrors, HeaderLengthAboveLimit) {
    uint64_t n = 100'000'001;
    std::string f(reinterpret_cast<const char*>(&n), 8);
    expect_error(f + "{}", ErrorCode::BadFile, {"100000001", "limit"});
}

TEST(SafetensorsErrors, HeaderLengthPastEndOfFile) {
    uint64_t n = 1000;
    std::string f(reinterpret_cast<const char*>(&n), 8);
    expect_error(f + "{}      ", ErrorCode::BadFile, {"1000 bytes", "only 8 bytes follow"});
}

TEST(SafetensorsErrors, HeaderNotJson) {
    expect_error(make_file("{\"a\": ", ""), ErrorCode::BadFile, {"not valid UTF-8 JSON"});
}

TEST(SafetensorsErrors, HeaderInvalidUtf8) {
    expect_error(make_file("{\"\xff\xfe\":{}}", ""), ErrorCode::BadFile, {"not valid UTF-8 JSON"});
}

TEST(SafetensorsErrors, HeaderNotAnObject) {
    expect_error(make_file("[1,2]", ""), ErrorCode::BadFile, {"array", "expected an object"});
}

TEST(SafetensorsErrors, DuplicateTensorName) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                           R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "ab"),
                 ErrorCode::BadFile, {"'w'", "more than once"});
}

TEST(SafetensorsErrors, EntryNotAnObject) {
    expect_error(make_file(R"({"w":[1,2]})", ""), ErrorCode::BadFile, {"'w'", "expected an object"});
}

TEST(SafetensorsErrors, DeeplyNestedEntryDoesNotRecurse) {
    // 200k levels: a message that dumped the value recursively would overflow the stack.
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    expect_error(make_file("{\"w\":" + deep + "}", ""), ErrorCode::BadFile, {"'w'", "[[...]]", "expected an object"});
    expect_error(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":" + deep + ",\"data_offsets\":[0,0]}}", ""),
                 ErrorCode::BadFile, {"'w'", "[[...]]"});
}

TEST(SafetensorsErrors, MissingDtype) {
    expect_error(make_file(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", "a"), ErrorCode::BadFile, {"'w'", "dtype"});
}

TEST(SafetensorsErrors, UnknownDtype) {
    expect_error(make_file(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "a"), ErrorCode::BadFile,
                 {"'w'", "unknown dtype \"Q4\"", "F32"});
}

TEST(Safetensors, Float8IsReadAsStored) {
    // float8_e4m3fn / float8_e5m2 (Flux and T5 fp8 files): one byte per value, kept quantized, decoded on demand.
    auto r = parse(make_file(R"({"unet.w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},)"
                             R"("x":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[2,3]}})", "\x38\xb8\x3c"));
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->find("unet.w")->quant(), QuantType::F8_E4M3);
    EXPECT_EQ(r->find("unet.w")->to_floats(), (std::vector<float>{1.0f, -1.0f}));
    EXPECT_EQ(r->find("x")->quant(), QuantType::F8_E5M2);
    EXPECT_EQ(r->find("x")->to_floats(), (std::vector<float>{1.0f}));
}

TEST(SafetensorsErrors, OtherFloat8IsUnsupportedAndNamesTheTensor) {
    expect_error(make_file(R"({"unet.w":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[0,2]}})", "ab"),
                 ErrorCode::Unsupported, {"'unet.w'", "F8_E8M0", "F8_E4M3, F8_E5M2"});
    expect_error(make_file(R"({"x":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[0,2]}})", "ab"), ErrorCode::BadFile,
                 {"'x'"});
}

TEST(SafetensorsErrors, NegativeDimension) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "a"), ErrorCode::BadFile,
                 {"'w'", "[-1]", "non-negative integer"});
}

TEST(SafetensorsErrors, FractionalDimension) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "a"), ErrorCode::BadFile,
                 {"'w'", "non-negative integer"});
}

TEST(SafetensorsErrors, RankAboveEight) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", "a"),
                 ErrorCode::Unsupported, {"'w'", "rank 9"});
}

TEST(SafetensorsErrors, ShapeProductOverflows) {
    expect_error(make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "abcd"),
                 ErrorCode::BadFile, {"'w'", "overflows"});
    // numel fits in 64 bits but the byte count does not.
    expect_error(make_file(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", "abcdefgh"),
                 ErrorCode::BadFile, {"'w'", "overflows"});
    // A leading zero makes the element count 0, but the strides of the other two dims overflow (UBSan found the
    // GGUF twin of this by fuzzing).
    expect_error(make_file(R"({"w":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", ""),
                 ErrorCode::BadFile, {"'w'", "overflows"});
}

TEST(SafetensorsErrors, DataOffsetsMalformed) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "a"), ErrorCode::BadFile,
                 {"'w'", "[begin, end]"});
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "a"), ErrorCode::BadFile,
                 {"'w'", "[begin, end]"});
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1]}})", "a"), ErrorCode::BadFile, {"'w'", "data_offsets"});
}

TEST(SafetensorsErrors, DataOffsetsReversed) {
    expect_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}})", "abc"), ErrorCode::BadFile,
                 {"'w'", "[2, 1]", "end before"});
}

TEST(SafetensorsErrors, DataOffsetsPastEnd) {
    expect_error(make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abcdefgh"),
                 ErrorCode::BadFile, {"'w'", "[0, 16]", "8 bytes"});
}

TEST(SafetensorsErrors, ByteCountDisagreesWithShape) {
    expect_error(make_file(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", std::string(16, 'x')),
                 ErrorCode::BadFile, {"'w'", "[0, 12]", "12 bytes", "[2, 2]", "16 bytes"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
    expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, 'x')),
                 ErrorCode::BadFile, {"'b'", "[4, 12]", "overlap", "'a'", "[0, 8]"});
}

TEST(SafetensorsErrors, MetadataNotStrings) {
    expect_error(make_file(R"({"__metadata__":{"steps":1000}})", ""), ErrorCode::BadFile, {"'steps'", "1000", "string"});
    expect_error(make_file(R"({"__metadata__":[1]})", ""), ErrorCode::BadFile, {"__metadata__", "object"});
}

TEST(SafetensorsErrors, MissingFileIsIoError) {
    auto r = read_safetensors("/nonexistent/dir/model.safetensors");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::Io);
    EXPECT_NE(r.error().to_string().find("/nonexistent/dir/model.safetensors"), std::string::npos);
}
