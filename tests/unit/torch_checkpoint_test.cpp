// read_torch_checkpoint against torch.save fixtures (tools/reference/make_torch_fixtures.py, torch 1.13): every
// tensor's name, order, dtype, shape and every element's bits; views share their storage; the malicious
// checkpoints of tests/data/ckpt/malicious (tools/reference/make_pickle_corpus.py) are each refused with a
// message naming what was refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/compare.h"
#include "io/torch_checkpoint.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
const fs::path kCkptDir = fs::path(EASEL_TEST_DATA_DIR) / "ckpt";

nlohmann::json load_json(const fs::path& p) {
    std::ifstream in(p);
    EXPECT_TRUE(in.good()) << "missing " << p << " (regenerate with /usr/bin/python3 tools/reference/make_torch_fixtures.py)";
    return nlohmann::json::parse(in);
}

// Row-major bytes of a strided view, gathered element by element through its strides (independent of
// Tensor::contiguous, so the test checks the reader's strides and offsets, not another copy routine).
std::string gather_bytes(const Tensor& t) {
    const size_t es = dtype_size(t.dtype());
    std::string out;
    out.reserve(size_t(t.numel()) * es);
    if (t.numel() == 0) return out;
    std::vector<int64_t> idx(size_t(t.rank()), 0);
    const auto* base = static_cast<const char*>(t.raw());
    while (true) {
        int64_t off = 0;
        for (int d = 0; d < t.rank(); ++d) off += idx[size_t(d)] * t.stride(d);
        out.append(base + off * int64_t(es), es);
        int d = t.rank() - 1;
        for (; d >= 0; --d) {
            if (++idx[size_t(d)] < t.size(d)) break;
            idx[size_t(d)] = 0;
        }
        if (d < 0) break;
    }
    return out;
}

std::string hex(const std::string& bytes) {
    std::string s;
    for (unsigned char c : bytes) s += fmt::format("{:02x}", c);
    return s;
}

// Checks a WeightSet against <name>.expect.json: names in order, dtype, shape and all bits.
void expect_matches(const WeightSet& w, const std::string& fixture) {
    const nlohmann::json e = load_json(kCkptDir / (fixture + ".expect.json"));
    const auto& tensors = e.at("tensors");
    ASSERT_EQ(w.size(), tensors.size()) << fixture;
    size_t elements = 0, mismatched = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& te = tensors[i];
        const std::string name = te.at("name");
        EXPECT_EQ(w.names()[i], name) << fixture << ": tensor " << i << " in file order";
        const Tensor* t = w.find(name);
        ASSERT_NE(t, nullptr) << fixture << ": " << name;
        EXPECT_EQ(std::string(dtype_name(t->dtype())), te.at("dtype").get<std::string>()) << fixture << ": " << name;
        EXPECT_EQ(t->shape().to_vector(), te.at("shape").get<std::vector<int64_t>>()) << fixture << ": " << name;
        const std::string got = hex(gather_bytes(*t));
        const std::string want = te.at("hex");
        EXPECT_EQ(got, want) << fixture << ": " << name << " differs bitwise";
        elements += size_t(t->numel());
        mismatched += got != want;
    }
    // One summary line per fixture (bit-exact: tolerance 0).
    std::printf("%s: %zu tensors, %zu elements, %zu tensors not bit-identical\n", fixture.c_str(), w.size(), elements,
                mismatched);
    for (auto& [k, v] : e.at("metadata").items()) {
        auto it = w.metadata.find(k);
        ASSERT_NE(it, w.metadata.end()) << fixture << ": metadata " << k;
        EXPECT_EQ(it->second, v.get<std::string>()) << fixture << ": metadata " << k;
    }
}

Result<WeightSet> read_fixture(const std::string& name) { return read_torch_checkpoint((kCkptDir / (name + ".pt")).string()); }

TEST(TorchCheckpoint, EveryStorageDtypeBitExact) {
    auto w = read_fixture("dtypes");
    ASSERT_TRUE(w) << w.error().to_string();
    expect_matches(*w, "dtypes");
    EXPECT_EQ(w->metadata.at("format"), "torch zip");
    EXPECT_EQ(w->find("scalar")->rank(), 0);
}

TEST(TorchCheckpoint, StoredMembersAreZeroCopyOverTheFile) {
    auto w = read_fixture("dtypes");
    ASSERT_TRUE(w) << w.error().to_string();
    // torch aligns stored members to 64 bytes; every f32 view must point at its member's bytes in the mapping,
    // so no two tensors of distinct storages overlap and each is at least element-aligned.
    for (const std::string& n : w->names()) {
        const Tensor* t = w->find(n);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw()) % dtype_size(t->dtype()), 0u) << n;
    }
}

TEST(TorchCheckpoint, DeflatedAndZip64ArchivesGiveTheSameTensors) {
    for (const char* name : {"dtypes_deflate", "dtypes_zip64"}) {
        auto w = read_fixture(name);
        ASSERT_TRUE(w) << name << ": " << w.error().to_string();
        expect_matches(*w, name);
    }
}

TEST(TorchCheckpoint, ViewsKeepStridesOffsetsAndShareOneStorage) {
    auto w = read_fixture("views");
    ASSERT_TRUE(w) << w.error().to_string();
    expect_matches(*w, "views");
    const Tensor& base = *w->find("base");
    const auto* b = static_cast<const float*>(base.raw());
    // Built in make_torch_fixtures.py as views of base = arange(24).reshape(4, 6).
    EXPECT_EQ(w->find("t")->raw(), base.raw());
    EXPECT_EQ(w->find("t")->strides().to_vector(), (std::vector<int64_t>{1, 6}));
    EXPECT_EQ(w->find("row")->raw(), static_cast<const void*>(b + 6));
    EXPECT_EQ(w->find("col")->raw(), static_cast<const void*>(b + 2));
    EXPECT_EQ(w->find("col")->strides().to_vector(), (std::vector<int64_t>{6}));
    EXPECT_EQ(w->find("block")->raw(), static_cast<const void*>(b + 8));
    EXPECT_EQ(w->find("alias")->raw(), base.raw());
    EXPECT_EQ(w->find("expanded")->strides().to_vector(), (std::vector<int64_t>{1, 0}));
    EXPECT_FALSE(w->find("t")->is_contiguous());
}

TEST(TorchCheckpoint, LightningCheckpointUnwrapsStateDictAndKeepsScalars) {
    auto w = read_fixture("lightning");
    ASSERT_TRUE(w) << w.error().to_string();
    expect_matches(*w, "lightning");
    // callbacks (a ModelCheckpoint class as a dict key, numpy scalars), optimizer state: skipped, not tensors.
    EXPECT_FALSE(w->metadata.count("callbacks"));
}

TEST(TorchCheckpoint, NestedDictsFlattenWithDots) {
    auto w = read_fixture("nested");
    ASSERT_TRUE(w) << w.error().to_string();
    expect_matches(*w, "nested");
    EXPECT_TRUE(w->contains("unet.conv_in.0.weight"));
    EXPECT_TRUE(w->contains("unet.scale"));  // an nn.Parameter (_rebuild_parameter)
    EXPECT_TRUE(w->contains("7"));           // an int key
}

TEST(TorchCheckpoint, LegacyPre16Format) {
    auto w = read_fixture("legacy");
    ASSERT_TRUE(w) << w.error().to_string();
    expect_matches(*w, "legacy");
    EXPECT_EQ(w->metadata.at("format"), "torch legacy");
    EXPECT_EQ(w->find("wt")->raw(), w->find("w")->raw());  // a view of the same storage
}

TEST(TorchCheckpoint, TensorsOutliveTheirWeightSet) {
    Tensor t;
    {
        auto w = read_fixture("views");
        ASSERT_TRUE(w) << w.error().to_string();
        t = *w->find("block");
    }
    // The view keeps the mapping alive: values of base[1:3, 2:5] from arange(24).reshape(4, 6).
    const std::vector<float> want = {8, 9, 10, 14, 15, 16};
    auto r = testing::compare(t.to_floats(), want, {.atol = 0, .rtol = 0});
    EXPECT_TRUE(r.passed()) << r.summary();
    std::printf("block after WeightSet dropped: %s\n", r.summary().c_str());
}

TEST(TorchCheckpoint, MissingFileIsAnIoError) {
    auto w = read_torch_checkpoint((kCkptDir / "no_such_file.pt").string());
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().to_string().find("no_such_file.pt"), std::string::npos) << w.error().to_string();
}

TEST(TorchCheckpoint, EveryTruncationOfAValidFileFailsCleanly) {
    std::ifstream in(kCkptDir / "views.pt", std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 100u);
    for (size_t n = 0; n < bytes.size(); ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
        auto w = read_torch_checkpoint_bytes(cut.data(), cut.size(), nullptr, "cut");
        EXPECT_FALSE(w) << "a " << n << "-byte prefix of a " << bytes.size() << "-byte file was accepted";
    }
}


// Every hostile checkpoint of tests/data/ckpt/malicious is refused with the code and a message naming what was
// refused (MANIFEST.json, written with the files by tools/reference/make_pickle_corpus.py). The reader runs in
// an empty temporary directory: payloads would `touch EASEL_PWNED` there, and it must never appear.
TEST(TorchCheckpoint, MaliciousCorpusIsRefusedAndNothingRuns) {
    const fs::path dir = kCkptDir / "malicious";
    const nlohmann::json manifest = load_json(dir / "MANIFEST.json");
    std::set<std::string> listed;
    for (auto& [file, want] : manifest.items()) listed.insert(file);
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename() != "MANIFEST.json") {
            EXPECT_TRUE(listed.count(e.path().filename().string())) << e.path() << " has no expectation in MANIFEST.json";
        }
    }

    const fs::path tmp = fs::temp_directory_path() / fmt::format("easel_ckpt_test_{}", ::getpid());
    fs::create_directories(tmp);
    const fs::path old_cwd = fs::current_path();
    fs::current_path(tmp);
    size_t refused = 0;
    for (auto& [file, want] : manifest.items()) {
        auto w = read_torch_checkpoint((dir / file).string());
        if (w) {
            ADD_FAILURE() << file << ": was accepted";
            continue;
        }
        const std::string msg = w.error().to_string();
        EXPECT_EQ(error_code_name(w.error().code()), want.at("code").get<std::string>()) << file << ": " << msg;
        EXPECT_NE(msg.find(want.at("contains").get<std::string>()), std::string::npos)
            << file << ": message does not name " << want.at("contains") << ": " << msg;
        EXPECT_NE(msg.find(file), std::string::npos) << file << ": message does not name the file: " << msg;
        std::printf("  %-34s %s\n", file.c_str(), msg.substr(msg.find(file) + file.size()).c_str());
        ++refused;
    }
    const bool ran = fs::exists(tmp / "EASEL_PWNED");
    fs::current_path(old_cwd);
    fs::remove_all(tmp);
    EXPECT_FALSE(ran) << "a payload ran: EASEL_PWNED was created";
    std::printf("%zu hostile checkpoints refused, sentinel absent\n", refused);
}

}  // namespace
}  // namespace easel
