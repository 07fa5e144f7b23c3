// read_weights: format detection by content, then the right reader.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/model_file.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kData = EASEL_TEST_DATA_DIR;

fs::path scratch(const std::string& name, const std::string& bytes) {
    fs::path d = fs::path(::testing::TempDir()) / ("easel_model_file_" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::ofstream(d / name, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return d / name;
}

WeightFormat sniff(const std::string& bytes, std::string_view path = "x") {
    return sniff_weight_format(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace

TEST(ModelFile, SniffsByContent) {
    EXPECT_EQ(sniff("GGUF\x03\0\0\0"), WeightFormat::Gguf);
    EXPECT_EQ(sniff("PK\x03\x04rest"), WeightFormat::TorchZip);
    EXPECT_EQ(sniff("\x80\x02\x8a\x0a"), WeightFormat::TorchLegacy);
    EXPECT_EQ(sniff(std::string("\x02\0\0\0\0\0\0\0{}", 10)), WeightFormat::Safetensors);
    // Content wins over a misleading extension.
    EXPECT_EQ(sniff("GGUF\x03\0\0\0", "model.safetensors"), WeightFormat::Gguf);
    // A header length that does not fit is not safetensors by content...
    EXPECT_EQ(sniff(std::string("\xff\0\0\0\0\0\0\0{}", 10)), WeightFormat::Unknown);
    // ...but the extension still routes it to the safetensors reader, whose error is the useful one.
    EXPECT_EQ(sniff(std::string("\xff\0\0\0\0\0\0\0{}", 10), "m.SAFETENSORS"), WeightFormat::Safetensors);
    EXPECT_EQ(sniff("junk", "m.gguf"), WeightFormat::Gguf);
    EXPECT_EQ(sniff("junk", "m.ckpt"), WeightFormat::TorchZip);
    EXPECT_EQ(sniff("", "m.txt"), WeightFormat::Unknown);
}

TEST(ModelFile, ReadsEachFormat) {
    auto st = read_weights(kData + "/safetensors/all_dtypes.safetensors");
    ASSERT_TRUE(st) << st.error().to_string();
    EXPECT_EQ(st->find("f32")->shape(), Shape({2, 3}));
    auto gg = read_weights(kData + "/gguf/plain.gguf");
    ASSERT_TRUE(gg) << gg.error().to_string();
    EXPECT_EQ(gg->find("f32")->shape(), Shape({2, 3}));
    EXPECT_EQ(gg->metadata.at("general.architecture"), "easel-test");
    // PyTorch checkpoints from the checkpoint reader's fixtures (tools/reference/make_torch_fixtures.py):
    // a zip one and a legacy one. Their contents are tested in torch_checkpoint_test.cpp.
    auto zip = read_weights(kData + "/ckpt/dtypes.pt");
    ASSERT_TRUE(zip) << zip.error().to_string();
    ASSERT_NE(zip->find("f16"), nullptr);
    EXPECT_EQ(zip->find("f16")->shape(), Shape({3, 5}));
    auto legacy = read_weights(kData + "/ckpt/legacy.pt");
    ASSERT_TRUE(legacy) << legacy.error().to_string();
    ASSERT_NE(legacy->find("w"), nullptr);
    EXPECT_EQ(legacy->find("w")->shape(), Shape({3, 4}));
}

TEST(ModelFile, ErrorsComeFromTheRightReader) {
    auto trunc = read_weights(scratch("t.safetensors", std::string("\xff\0\0\0\0\0\0\0{}", 10)).string());
    ASSERT_FALSE(trunc);
    EXPECT_EQ(trunc.error().code(), ErrorCode::BadFile);
    EXPECT_NE(trunc.error().message().find("header length"), std::string::npos) << trunc.error().to_string();
    auto g = read_weights(scratch("g.gguf", std::string("GGUF\x09\0\0\0", 8)).string());
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().message().find("GGUF version 9"), std::string::npos) << g.error().to_string();
}

TEST(ModelFile, UnknownEmptyAndFolders) {
    auto junk = read_weights(scratch("junk.dat", "hello world").string());
    ASSERT_FALSE(junk);
    EXPECT_EQ(junk.error().code(), ErrorCode::Unsupported);
    EXPECT_NE(junk.error().message().find("68 65 6c 6c 6f"), std::string::npos) << junk.error().to_string();
    auto empty = read_weights(scratch("empty.dat", "").string());
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message().find("empty"), std::string::npos) << empty.error().to_string();
    auto folder = read_weights(kData + "/diffusers/tiny");
    ASSERT_FALSE(folder);
    EXPECT_EQ(folder.error().code(), ErrorCode::InvalidArgument);
    EXPECT_NE(folder.error().message().find("diffusers folder"), std::string::npos);
    auto dir = read_weights(kData + "/gguf");
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), ErrorCode::Io);
    auto missing = read_weights(kData + "/nope.safetensors");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ErrorCode::Io);
}
