// ZipArchive on torch.save archives (tests/data/ckpt, tools/reference/make_torch_fixtures.py): member names and
// alignment as torch writes them, zero-copy stored members, deflated and ZIP64 re-packs giving identical bytes,
// CRC and size checks, and clean failure on every truncation. Hostile archives (traversal, duplicates, bombs,
// overlaps) are covered through the checkpoint reader in torch_checkpoint_test.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/zip.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
const fs::path kCkptDir = fs::path(EASEL_TEST_DATA_DIR) / "ckpt";

std::vector<uint8_t> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    EXPECT_TRUE(in.good()) << "missing " << p << " (regenerate with /usr/bin/python3 tools/reference/make_torch_fixtures.py)";
    return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

std::string member_bytes(const ZipArchive& z, const std::string& name) {
    const ZipEntry* e = z.find(name);
    EXPECT_NE(e, nullptr) << name;
    if (!e) return {};
    auto d = z.read(*e, /*verify_crc=*/true);
    EXPECT_TRUE(d) << d.error().to_string();
    if (!d) return {};
    return std::string(reinterpret_cast<const char*>(d->data), d->size);
}

// Offset of the central-directory header of `name` (found by signature and name; fixtures are tiny).
size_t central_header(const std::vector<uint8_t>& b, const std::string& name) {
    for (size_t i = 0; i + 46 + name.size() <= b.size(); ++i)
        if (b[i] == 'P' && b[i + 1] == 'K' && b[i + 2] == 1 && b[i + 3] == 2 &&
            std::memcmp(&b[i + 46], name.data(), name.size()) == 0 && b[i + 28] == name.size())
            return i;
    ADD_FAILURE() << "no central header for " << name;
    return 0;
}

TEST(Zip, TorchArchiveMembersAreStoredAlignedAndZeroCopy) {
    const auto bytes = read_bytes(kCkptDir / "dtypes.pt");
    auto z = ZipArchive::open(bytes.data(), bytes.size(), "dtypes.pt");
    ASSERT_TRUE(z) << z.error().to_string();
    ASSERT_NE(z->find("dtypes/data.pkl"), nullptr) << "torch names the top folder after the file";
    size_t storages = 0;
    for (const ZipEntry& e : z->entries()) {
        EXPECT_EQ(e.method, 0) << e.name;
        if (e.name.starts_with("dtypes/data/")) {
            ++storages;
            EXPECT_EQ(e.data_offset % 64, 0u) << e.name << ": torch aligns storages to 64 bytes";
            auto d = z->read(e, true);
            ASSERT_TRUE(d) << d.error().to_string();
            EXPECT_EQ(d->data, bytes.data() + e.data_offset) << "stored members are views of the archive";
            EXPECT_EQ(d->owner, nullptr);
        }
    }
    EXPECT_EQ(storages, 12u);  // one storage per tensor in make_torch_fixtures.py's `dtypes`
    EXPECT_TRUE(ZipArchive::looks_like_zip(bytes.data(), bytes.size()));
}

TEST(Zip, DeflatedAndZip64RepacksHoldTheSameBytes) {
    const auto stored_bytes = read_bytes(kCkptDir / "dtypes.pt");
    auto stored = ZipArchive::open(stored_bytes.data(), stored_bytes.size(), "dtypes.pt");
    ASSERT_TRUE(stored) << stored.error().to_string();
    for (const char* other : {"dtypes_deflate.pt", "dtypes_zip64.pt"}) {
        const auto bytes = read_bytes(kCkptDir / other);
        auto z = ZipArchive::open(bytes.data(), bytes.size(), other);
        ASSERT_TRUE(z) << z.error().to_string();
        ASSERT_EQ(z->entries().size(), stored->entries().size()) << other;
        size_t deflated = 0;
        for (const ZipEntry& e : stored->entries()) {
            const ZipEntry* o = z->find(e.name);
            ASSERT_NE(o, nullptr) << other << ": " << e.name;
            deflated += o->method == 8;
            EXPECT_EQ(member_bytes(*z, e.name), member_bytes(*stored, e.name)) << other << ": " << e.name;
        }
        std::printf("%s: %zu members identical to the stored archive (%zu deflated)\n", other, z->entries().size(),
                    deflated);
    }
}

TEST(Zip, CorruptDataFailsTheCrcCheck) {
    auto bytes = read_bytes(kCkptDir / "dtypes.pt");
    auto z0 = ZipArchive::open(bytes.data(), bytes.size(), "dtypes.pt");
    ASSERT_TRUE(z0);
    const ZipEntry e = *z0->find("dtypes/data.pkl");
    bytes[size_t(e.data_offset) + 5] ^= 0x40;
    auto z = ZipArchive::open(bytes.data(), bytes.size(), "dtypes.pt");
    ASSERT_TRUE(z);
    auto d = z->read(*z->find("dtypes/data.pkl"), true);
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().message().find("CRC-32"), std::string::npos) << d.error().to_string();
    EXPECT_TRUE(z->read(*z->find("dtypes/data.pkl"), false)) << "without the check the bytes are returned";
}

TEST(Zip, DeflateOutputMustMatchTheDeclaredSize) {
    for (int delta : {-1, +1}) {
        auto bytes = read_bytes(kCkptDir / "dtypes_deflate.pt");
        const size_t c = central_header(bytes, "dtypes/data.pkl");
        uint32_t size;
        std::memcpy(&size, &bytes[c + 24], 4);
        size = uint32_t(int64_t(size) + delta);
        std::memcpy(&bytes[c + 24], &size, 4);
        auto z = ZipArchive::open(bytes.data(), bytes.size(), "x.pt");
        ASSERT_TRUE(z) << z.error().to_string();
        auto d = z->read(*z->find("dtypes/data.pkl"), false);
        ASSERT_FALSE(d) << "declared size off by " << delta;
        EXPECT_NE(d.error().message().find("declared size"), std::string::npos) << d.error().to_string();
    }
}

TEST(Zip, UnsupportedMethodAndEncryptionAreNamed) {
    auto bytes = read_bytes(kCkptDir / "dtypes.pt");
    const size_t c = central_header(bytes, "dtypes/version");
    auto patched = bytes;
    patched[c + 10] = 12;  // bzip2
    auto z = ZipArchive::open(patched.data(), patched.size(), "x.pt");
    ASSERT_FALSE(z);
    EXPECT_EQ(z.error().code(), ErrorCode::Unsupported);
    EXPECT_NE(z.error().message().find("'dtypes/version' uses compression method 12"), std::string::npos)
        << z.error().to_string();
    patched = bytes;
    patched[c + 8] |= 1;  // encrypted
    z = ZipArchive::open(patched.data(), patched.size(), "x.pt");
    ASSERT_FALSE(z);
    EXPECT_NE(z.error().message().find("encrypted"), std::string::npos) << z.error().to_string();
}

TEST(Zip, EveryTruncationFailsCleanly) {
    for (const char* f : {"dtypes.pt", "dtypes_zip64.pt", "dtypes_deflate.pt"}) {
        const auto bytes = read_bytes(kCkptDir / f);
        for (size_t n = 0; n < bytes.size(); ++n) {
            auto z = ZipArchive::open(bytes.data(), n, f);
            if (!z) continue;
            // A prefix can only parse if it still ends in an end record; then every member must still read.
            for (const ZipEntry& e : z->entries()) (void)z->read(e, true);
        }
    }
}

}  // namespace
}  // namespace easel
