#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/mapped_file.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

fs::path scratch_dir() {
    fs::path d = fs::path(::testing::TempDir()) / ("easel_mapped_file_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

TEST(MappedFile, MapsWholeFile) {
    const fs::path p = scratch_dir() / "hello.bin";
    write_file(p, std::string("hello\0world", 11));
    auto f = MappedFile::open(p.string());
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ((*f)->size(), 11u);
    EXPECT_EQ((*f)->path(), p.string());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 11), std::string("hello\0world", 11));
}

TEST(MappedFile, EmptyFileHasSizeZero) {
    const fs::path p = scratch_dir() / "empty.bin";
    write_file(p, "");
    auto f = MappedFile::open(p.string());
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EQ((*f)->size(), 0u);
}

TEST(MappedFile, MissingPathIsIoError) {
    const std::string p = (scratch_dir() / "does_not_exist.safetensors").string();
    auto f = MappedFile::open(p);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), ErrorCode::Io);
    EXPECT_NE(f.error().to_string().find(p), std::string::npos) << f.error().to_string();
    EXPECT_NE(f.error().to_string().find("no such file"), std::string::npos) << f.error().to_string();
}

TEST(MappedFile, DirectoryIsIoError) {
    const std::string p = scratch_dir().string();
    auto f = MappedFile::open(p);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), ErrorCode::Io);
    EXPECT_NE(f.error().message().find("directory"), std::string::npos) << f.error().to_string();
}

TEST(MappedFile, UnreadableFileIsIoError) {
    const fs::path p = scratch_dir() / "secret.bin";
    write_file(p, "x");
    ::chmod(p.c_str(), 0);
    if (::access(p.c_str(), R_OK) == 0) GTEST_SKIP() << "running as root: permissions are not enforced";
    auto f = MappedFile::open(p.string());
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), ErrorCode::Io);
    EXPECT_NE(f.error().message().find("cannot open"), std::string::npos) << f.error().to_string();
}

TEST(MappedFile, EmptyPathIsIoError) {
    auto f = MappedFile::open("");
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), ErrorCode::Io);
}

TEST(MappedFile, MappingOutlivesFileRemoval) {
    // Views hold the mapping, not the path: deleting or replacing the file must not invalidate them.
    const fs::path p = scratch_dir() / "gone.bin";
    write_file(p, "abcdef");
    auto f = MappedFile::open(p.string());
    ASSERT_TRUE(f);
    fs::remove(p);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 6), "abcdef");
}
