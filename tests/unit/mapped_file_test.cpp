#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
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

// MapOptions change how pages are mapped, never what is read.
TEST(MappedFile, PopulateAndHugeMapTheSameBytes) {
    const fs::path p = scratch_dir() / "big.bin";
    std::string bytes(size_t(5) << 20 | 123, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 2654435761u) >> 13);
    write_file(p, bytes);
    for (bool populate : {false, true})
        for (bool huge : {false, true}) {
            MapOptions o;
            o.populate = populate;
            o.huge = huge;
            auto f = MappedFile::open(p.string(), o);
            ASSERT_TRUE(f) << f.error().to_string();
            ASSERT_EQ((*f)->size(), bytes.size());
            EXPECT_EQ(std::memcmp((*f)->data(), bytes.data(), bytes.size()), 0) << "populate " << populate << " huge " << huge;
            // Whether the kernel uses 2 MiB entries here depends on it and the file system; never more than the file.
            const uint64_t pmd = (*f)->huge_mapped_bytes();
            std::printf("populate %d huge %d: %llu of %zu bytes mapped in 2 MiB pages\n", int(populate), int(huge),
                        (unsigned long long)pmd, bytes.size());
            EXPECT_LE(pmd, bytes.size());
            EXPECT_EQ(pmd % (2u << 20), 0u);
        }
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

// Resident KiB of the mapping that starts at `p`, from its /proc/self/smaps entry (mincore would not do: it
// reports the page cache, which keeps the pages).
static int64_t mapping_rss_kb(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    char head[32];
    std::snprintf(head, sizeof head, "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
    std::string line;
    bool in = false;
    while (std::getline(smaps, line)) {
        if (line.rfind(head, 0) == 0) in = true;
        else if (in && line.rfind("Rss:", 0) == 0) return std::stoll(line.substr(4));
    }
    return -1;
}

// release_pages drops a mapped range from the resident set and the bytes read back unchanged; on memory that
// is not a mapping (the heap) it does nothing, so it can never zero live data.
TEST(MappedFile, ReleasePagesDropsMappedPagesOnly) {
    const fs::path p = scratch_dir() / "release.bin";
    std::string bytes(64 * 4096, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 131 + 7) % 251);
    write_file(p, bytes);
    auto f = MappedFile::open(p.string());
    ASSERT_TRUE(f) << f.error().to_string();
    const uint8_t* d = (*f)->data();
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes.size(); i += 64) sum += d[i];  // touch every page
    EXPECT_GT(sum, 0u);
    EXPECT_EQ(mapping_rss_kb(d), 64 * 4);
    // A range that starts and ends mid-page: only the 60 whole pages inside it go.
    MappedFile::release_pages(d + 100, 61 * 4096);
    const int64_t left = mapping_rss_kb(d);
    std::printf("resident after release: %lld KiB of 256\n", static_cast<long long>(left));
    EXPECT_EQ(left, 4 * 4);
    EXPECT_EQ(std::memcmp(d, bytes.data(), bytes.size()), 0);  // read back from the page cache, unchanged

    std::vector<uint8_t> heap(bytes.begin(), bytes.end());
    MappedFile::release_pages(heap.data(), heap.size());
    EXPECT_EQ(std::memcmp(heap.data(), bytes.data(), bytes.size()), 0);
    MappedFile::release_pages(d + bytes.size() - 10, 4096 * 2);  // runs past the mapping's end: ignored
    MappedFile::release_pages(nullptr, 100);
}

// The mapping is read-only: a write faults instead of silently diverging from the file (which release_pages
// would then undo). Checked in a child process.
TEST(MappedFile, MappingIsReadOnly) {
    const fs::path p = scratch_dir() / "readonly.bin";
    write_file(p, std::string(4096, 'x'));
    auto f = MappedFile::open(p.string());
    ASSERT_TRUE(f) << f.error().to_string();
    EXPECT_EXIT({ const_cast<uint8_t*>((*f)->data())[0] = 'y'; std::exit(0); }, ::testing::KilledBySignal(SIGSEGV), "");
}
