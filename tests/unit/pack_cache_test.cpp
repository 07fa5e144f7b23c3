// The packed-weight cache (runtime/pack_cache.h): a model loaded through it gives the same images as one packed
// afresh; a cached entry is bit-identical to a fresh pack; a damaged, foreign or stale file is never used.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/half.h"
#include "io/mapped_file.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"
#include "runtime/pack_cache.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(EASEL_SOURCE_DIR) + "/models/tiny";

fs::path scratch(const std::string& name) {
    fs::path d = fs::path(::testing::TempDir()) / fmt::format("easel_pack_cache_{}_{}", name, ::getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::vector<uint16_t> random_f16(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> nd(0.0f, 0.5f);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = f32_to_f16(nd(g));
    return v;
}

std::vector<uint8_t> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::vector<uint8_t>& b) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<std::vector<uint8_t>> generate_pixels(const SDModel& m) {
    GenerateParams p;
    p.prompt = "a red circle on the left, blue background";
    p.width = p.height = 32;
    p.seed = 7;
    p.steps = 6;
    p.batch_size = 2;
    auto r = generate(m, p);
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    std::vector<std::vector<uint8_t>> out;
    for (const auto& g : *r) out.push_back(g.image.pixels);
    return out;
}

LoadOptions cached(const fs::path& dir, Precision precision) {
    LoadOptions o;
    o.precision = precision;
    o.weight_cache_dir = dir.string();
    o.weight_cache_min_bytes = 0;  // the tiny model is below the CLI's 64 MiB threshold
    // The cache holds packed weights; by default the tiny model's f16 weights are kept as stored where the
    // kernels take f32 words, and then nothing is packed or cached.
    o.weights = WeightLayout::Packed;
    return o;
}

size_t count_notes(const SDModel& m, const std::string& what) {
    size_t n = 0;
    for (const auto& s : m.notes) n += s.find(what) != std::string::npos;
    return n;
}

}  // namespace

TEST(PackCache, EntriesAreBitIdenticalToAFreshPack) {
    const fs::path dir = scratch("entries");
    const std::string key = "test key\n";
    for (Precision prec : {Precision::F32, Precision::BF16}) {
        const auto wl = random_f16(size_t(77) * 130, 1);
        const auto wc = random_f16(size_t(40) * 33 * 9, 2);
        auto lin = pack_linear_weight(wl.data(), DType::F16, 77, 130, prec);
        auto conv = pack_conv2d_weight(wc.data(), DType::F16, 40, 33, 3, 3, prec);
        ASSERT_TRUE(lin && conv);
        {
            auto c = PackCache::open(dir.string(), key + precision_name(prec).data());
            EXPECT_FALSE(c->mapped());
            EXPECT_FALSE(c->linear("a.weight", *lin).has_value());
            c->add("a.weight", *lin);
            c->add("b.weight", *conv);
            ASSERT_TRUE(c->commit()) << c->commit().error().to_string();
        }
        auto c = PackCache::open(dir.string(), key + precision_name(prec).data());
        ASSERT_TRUE(c->mapped()) << c->note();
        auto lay = packed_linear_layout(77, 130, prec);
        auto clay = packed_conv2d_layout(40, 33, 3, 3, prec);
        ASSERT_TRUE(lay && clay);
        auto hl = c->linear("a.weight", *lay);
        auto hc = c->conv2d("b.weight", *clay);
        ASSERT_TRUE(hl && hc);
        ASSERT_EQ(hl->bytes(), lin->bytes());
        EXPECT_EQ(std::memcmp(hl->data.get(), lin->data.get(), lin->bytes()), 0);
        EXPECT_EQ(hl->nr, lin->nr);
        EXPECT_EQ(hl->isa, lin->isa);
        EXPECT_EQ(std::memcmp(hc->data.get(), conv->data.get(), conv->layout_bytes()), 0);
        // The same name asked with another layout, or the wrong kind, is a miss, never a reinterpretation.
        EXPECT_FALSE(c->linear("a.weight", *packed_linear_layout(77, 129, prec)).has_value());
        EXPECT_FALSE(c->linear("b.weight", *lay).has_value());
        EXPECT_FALSE(c->conv2d("b.weight", *packed_conv2d_layout(40, 33, 1, 1, prec)).has_value());
        EXPECT_FALSE(c->linear("missing.weight", *lay).has_value());
        EXPECT_EQ(c->hits(), 2u);
    }
}

// commit() writes through a 2 MiB buffer: entries larger than it, and entries that straddle its boundaries
// between 4 KiB-aligned offsets, must come back byte for byte.
TEST(PackCache, EntriesAcrossTheWriteChunksAreBitIdentical) {
    const fs::path dir = scratch("chunks");
    const std::string key = "chunk key\n";
    struct W {
        std::string name;
        int64_t n, k;
    };
    const std::vector<W> ws = {{"a", 5, 7}, {"b", 1024, 1300}, {"c", 333, 2049}, {"d", 9, 4097}, {"e", 800, 1500}};
    std::vector<PackedWeight> packed;
    size_t total = 0;
    for (size_t i = 0; i < ws.size(); ++i) {
        const auto w = random_f16(size_t(ws[i].n * ws[i].k), uint32_t(10 + i));
        auto p = pack_linear_weight(w.data(), DType::F16, ws[i].n, ws[i].k, Precision::F32);
        ASSERT_TRUE(p) << p.error().to_string();
        total += p->bytes();
        packed.push_back(std::move(p).value());
    }
    // Several chunks, and "b" alone is bigger than one, whatever padding the ISA's layout adds.
    std::printf("packed %zu bytes (%s layout)\n", total, std::string(isa_name(active_isa())).c_str());
    ASSERT_GT(total, size_t(12) << 20);
    {
        auto c = PackCache::open(dir.string(), key);
        for (size_t i = 0; i < ws.size(); ++i) c->add(ws[i].name, packed[i]);
        ASSERT_TRUE(c->commit());
    }
    // Every way of handing out hits gives the same bytes.
    for (PackCache::Use use : {PackCache::Use::Auto, PackCache::Use::Map, PackCache::Use::Copy}) {
    auto c = PackCache::open(dir.string(), key, default_weight_cache_max_bytes(), use);
    ASSERT_TRUE(c->mapped()) << c->note();
    if (use != PackCache::Use::Auto) {
        EXPECT_EQ(c->copies(), use == PackCache::Use::Copy);
    }
    size_t max_diff_at = 0, diffs = 0;
    for (size_t i = 0; i < ws.size(); ++i) {
        auto lay = packed_linear_layout(ws[i].n, ws[i].k, Precision::F32);
        ASSERT_TRUE(lay);
        auto hit = c->linear(ws[i].name, *lay);
        ASSERT_TRUE(hit) << ws[i].name;
        ASSERT_EQ(hit->bytes(), packed[i].bytes());
        const auto* a = static_cast<const uint8_t*>(hit->data.get());
        const auto* b = static_cast<const uint8_t*>(packed[i].data.get());
        for (size_t j = 0; j < packed[i].bytes(); ++j)
            if (a[j] != b[j]) {
                ++diffs;
                max_diff_at = j;
            }
    }
    std::printf("%zu entries, %.1f MiB through 2 MiB chunks, hits %s: %zu bytes differ (last at %zu)\n", ws.size(),
                double(total) / (1 << 20), c->copies() ? "copied" : "mapped", diffs, max_diff_at);
    EXPECT_EQ(diffs, 0u);
    }
}

TEST(PackCache, ModelLoadedFromTheCacheGivesTheSameImages) {
    for (Precision prec : {Precision::F32, Precision::BF16}) {
        const fs::path dir = scratch("model");
        auto fresh = load_sd_model(kTiny, LoadOptions{.precision = prec});
        ASSERT_TRUE(fresh) << fresh.error().to_string();
        const auto want = generate_pixels(**fresh);

        auto first = load_sd_model(kTiny, cached(dir, prec));  // packs and writes the cache
        ASSERT_TRUE(first) << first.error().to_string();
        EXPECT_EQ((*first)->weight_cache, WeightCacheUse::Written);
        EXPECT_EQ(count_notes(**first, "written to the weight cache"), 1u);
        EXPECT_EQ(count_notes(**first, "from the weight cache"), 0u);
        auto second = load_sd_model(kTiny, cached(dir, prec));  // maps every packed weight
        ASSERT_TRUE(second) << second.error().to_string();
        EXPECT_TRUE((*second)->weight_cache == WeightCacheUse::Mapped || (*second)->weight_cache == WeightCacheUse::Copied);
        EXPECT_EQ(count_notes(**second, "from the weight cache"), 1u);
        EXPECT_EQ(count_notes(**second, "written to the weight cache"), 0u);
        EXPECT_EQ(generate_pixels(**first), want);
        EXPECT_EQ(generate_pixels(**second), want) << "precision " << precision_name(prec);
    }
}

// A weight adapter (LoRA and kin) changes what gets packed, so it is part of the cache key: a model cached
// without it never comes back for a load with it, and the adapted model's cache gives the adapted images.
TEST(PackCache, AdaptersArePartOfTheKey) {
    // Scales the UNet's first convolution by 1.5 (a packed Conv2d weight).
    struct Scale : WeightAdapter {
        std::string identity() const override { return "scale conv_in x1.5"; }
        bool touches(const std::string& n) const override { return n == "unet.conv_in.weight"; }
        Status apply(const std::string&, Tensor& w) const override {
            for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 1.5f;
            return ok();
        }
    };
    const fs::path dir = scratch("adapters");
    auto plain = load_sd_model(kTiny, cached(dir, Precision::F32));
    ASSERT_TRUE(plain) << plain.error().to_string();
    EXPECT_EQ((*plain)->weight_cache, WeightCacheUse::Written);
    LoadOptions with = cached(dir, Precision::F32);
    with.adapters.push_back(std::make_shared<Scale>());
    auto adapted = load_sd_model(kTiny, with);
    ASSERT_TRUE(adapted) << adapted.error().to_string();
    EXPECT_EQ((*adapted)->weight_cache, WeightCacheUse::Written) << "a cache made without the adapter was used";
    auto again = load_sd_model(kTiny, with);
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_TRUE((*again)->weight_cache == WeightCacheUse::Mapped || (*again)->weight_cache == WeightCacheUse::Copied);
    const auto want = generate_pixels(**adapted);
    EXPECT_NE(want, generate_pixels(**plain));
    EXPECT_EQ(generate_pixels(**again), want);
}

// A cache file whose page cache fell partly back to small pages (part of it was dropped and read again) is read
// again in 2 MiB pages by open(), rather than copied. Only where the kernel keeps the file in 2 MiB pages at all.
TEST(PackCache, FileBackOnSmallPagesIsReadAgainInHugePages) {
    const fs::path dir = scratch("refresh");
    const auto w = random_f16(size_t(1024) * 3000, 5);
    auto p = pack_linear_weight(w.data(), DType::F16, 1024, 3000, Precision::F32);  // 12 MiB
    ASSERT_TRUE(p);
    {
        auto c = PackCache::open(dir.string(), "refresh key");
        c->add("w", *p);
        ASSERT_TRUE(c->commit());
    }
    const std::string path = fs::directory_iterator(dir)->path().string();
    auto huge_fraction = [&] {
        MapOptions mo;
        mo.populate = mo.huge = true;
        auto f = MappedFile::open(path, mo);
        EASEL_ASSERT(f.has_value(), "cannot map the cache file");
        return double((*f)->huge_mapped_bytes()) / double((*f)->size() / (2 << 20) * (2 << 20));  // of whole 2 MiB blocks
    };
    const double written = huge_fraction();
    std::printf("after writing: %.0f%% in 2 MiB pages\n", 100 * written);
    if (written < 0.9) GTEST_SKIP() << "this kernel or file system keeps the file in small pages (hits are copied)";
    // Drop 4 MiB of the file's page cache and read it back 4 KiB at a time, as random reads do.
    {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        const off_t a = off_t(2) << 20, b = off_t(6) << 20;  // whole 2 MiB folios: partial ones are not dropped
        ::posix_fadvise(fd, a, b - a, POSIX_FADV_DONTNEED);
        ::posix_fadvise(fd, a, b - a, POSIX_FADV_RANDOM);
        char buf[4096];
        for (off_t o = a; o < b; o += 4096) ASSERT_GT(::pread(fd, buf, sizeof buf, o), 0);
        ::close(fd);
    }
    const double fragmented = huge_fraction();
    std::printf("after dropping 4 MiB and reading it again in 4 KiB reads: %.0f%%\n", 100 * fragmented);
    if (fragmented >= 0.9) GTEST_SKIP() << "the re-read came back in 2 MiB pages anyway";
    auto c = PackCache::open(dir.string(), "refresh key");
    ASSERT_TRUE(c->mapped()) << c->note();
    EXPECT_FALSE(c->copies());
    const double after = huge_fraction();
    std::printf("after open(): %.0f%%\n", 100 * after);
    EXPECT_GE(after, 0.9);
    auto hit = c->linear("w", *packed_linear_layout(1024, 3000, Precision::F32));
    ASSERT_TRUE(hit);
    EXPECT_EQ(std::memcmp(hit->data.get(), p->data.get(), p->bytes()), 0);
}

// What the CLI and server do: the new cache file is written on another thread while the model generates.
TEST(PackCache, BackgroundWriteOverlapsGenerationAndThenMaps) {
    const fs::path dir = scratch("background");
    auto fresh = load_sd_model(kTiny, LoadOptions{.precision = Precision::BF16});
    ASSERT_TRUE(fresh);
    const auto want = generate_pixels(**fresh);
    LoadOptions o = cached(dir, Precision::BF16);
    o.weight_cache_write_in_background = true;
    auto first = load_sd_model(kTiny, o);
    ASSERT_TRUE(first) << first.error().to_string();
    EXPECT_EQ((*first)->weight_cache, WeightCacheUse::Writing);
    EXPECT_EQ(count_notes(**first, "being written to the weight cache"), 1u);
    EXPECT_EQ(generate_pixels(**first), want);  // generating while the file is written
    const std::string note = (*first)->wait_for_weight_cache();
    EXPECT_EQ((*first)->weight_cache, WeightCacheUse::Written);
    std::printf("%s\n", note.c_str());
    EXPECT_NE(note.find("written to the weight cache"), std::string::npos) << note;
    EXPECT_EQ((*first)->wait_for_weight_cache(), "");  // collected once
    auto second = load_sd_model(kTiny, o);
    ASSERT_TRUE(second);
    EXPECT_EQ(count_notes(**second, "from the weight cache"), 1u);
    EXPECT_FALSE((*second)->weight_cache_write.valid());  // nothing new to write
    EXPECT_EQ(generate_pixels(**second), want);
    // A model destroyed while its write runs waits for it: the folder then holds one complete file, no temp.
    const fs::path dir2 = scratch("background_destroyed");
    LoadOptions o2 = cached(dir2, Precision::BF16);
    o2.weight_cache_write_in_background = true;
    ASSERT_TRUE(load_sd_model(kTiny, o2));
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir2)) names.push_back(e.path().filename().string());
    ASSERT_EQ(names.size(), 1u);
    EXPECT_EQ(names[0].find(".tmp."), std::string::npos) << names[0];
}

TEST(PackCache, DamagedOrForeignFilesAreRebuiltNotUsed) {
    const fs::path dir = scratch("damaged");
    auto fresh = load_sd_model(kTiny, LoadOptions{.precision = Precision::BF16});
    ASSERT_TRUE(fresh);
    const auto want = generate_pixels(**fresh);
    ASSERT_TRUE(load_sd_model(kTiny, cached(dir, Precision::BF16)));
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    ASSERT_EQ(files.size(), 1u);
    const fs::path file = files[0];
    const std::vector<uint8_t> good = read_all(file);
    ASSERT_GT(good.size(), 4096u);

    struct Damage {
        const char* what;
        std::vector<uint8_t> bytes;
    };
    std::vector<Damage> damages;
    damages.push_back({"truncated", std::vector<uint8_t>(good.begin(), good.begin() + long(good.size() / 2))});
    damages.push_back({"empty", {}});
    auto magic = good;
    magic[0] ^= 1;
    damages.push_back({"bad magic", magic});
    auto key = good;
    key[40] ^= 0x20;  // inside the key text
    damages.push_back({"another key", key});
    for (const auto& d : damages) {
        write_all(file, d.bytes);
        auto m = load_sd_model(kTiny, cached(dir, Precision::BF16));
        ASSERT_TRUE(m) << d.what << ": " << m.error().to_string();
        EXPECT_EQ(count_notes(**m, "weight cache file was not used and is rebuilt"), 1u) << d.what;
        EXPECT_EQ((*m)->weight_cache, WeightCacheUse::Written) << d.what;
        EXPECT_EQ(count_notes(**m, "written to the weight cache"), 1u) << d.what;
        EXPECT_EQ(generate_pixels(**m), want) << d.what;
        EXPECT_EQ(read_all(file), good) << d.what << ": the rebuilt file differs from the first one";
    }
}

TEST(PackCache, ParseRefusesEveryHeaderByteFlipOrAcceptsOnlyInBoundsEntries) {
    const fs::path dir = scratch("flips");
    const auto wl = random_f16(size_t(33) * 20, 3);
    auto lin = pack_linear_weight(wl.data(), DType::F16, 33, 20, Precision::BF16);
    ASSERT_TRUE(lin);
    {
        auto c = PackCache::open(dir.string(), "k");
        c->add("x.weight", *lin);
        c->add("y.weight", *lin);
        ASSERT_TRUE(c->commit());
    }
    fs::path file = fs::directory_iterator(dir)->path();
    const std::vector<uint8_t> good = read_all(file);
    ASSERT_TRUE(PackCache::parse(good.data(), good.size(), "k"));
    size_t refused = 0, header = 0;
    for (size_t i = 0; i < std::min<size_t>(good.size(), 4096); ++i) {
        for (uint8_t bit : {uint8_t(1), uint8_t(0x80)}) {
            auto b = good;
            b[i] ^= bit;
            auto r = PackCache::parse(b.data(), b.size(), "k");
            if (!r) {
                ++refused;
                EXPECT_FALSE(r.error().message().empty());
                continue;
            }
            for (const auto& [name, e] : *r) {
                EXPECT_LE(e.offset + e.bytes, b.size()) << "byte " << i;
                EXPECT_EQ(e.offset % 64, 0u);
            }
        }
        header += 2;
    }
    std::printf("header bit flips refused: %zu of %zu (the rest only touch padding, layout fields checked at "
                "lookup, or names)\n", refused, header);
    EXPECT_GT(refused, 0u);
    EXPECT_FALSE(PackCache::parse(good.data(), good.size(), "another key"));
}

TEST(PackCache, EditedModelGetsANewKey) {
    const fs::path d = scratch("key");
    const fs::path f = d / "model.bin";
    write_all(f, std::vector<uint8_t>(1000, 1));
    auto k1 = PackCache::model_key(f.string(), "bf16");
    ASSERT_TRUE(k1);
    EXPECT_EQ(k1->total_bytes, 1000u);
    auto k2 = PackCache::model_key(f.string(), "f32");
    ASSERT_TRUE(k2);
    EXPECT_NE(k1->key, k2->key);
    write_all(f, std::vector<uint8_t>(1001, 1));
    auto k3 = PackCache::model_key(f.string(), "bf16");
    ASSERT_TRUE(k3);
    EXPECT_NE(k1->key, k3->key);
    auto kd = PackCache::model_key(d.string(), "bf16");  // a folder: every file in it
    ASSERT_TRUE(kd);
    EXPECT_EQ(kd->total_bytes, 1001u);
    EXPECT_FALSE(PackCache::model_key((d / "nope").string(), "bf16"));
}

TEST(PackCache, FolderIsTrimmedLeastRecentlyUsedFirst) {
    const fs::path dir = scratch("trim");
    const auto wl = random_f16(size_t(256) * 256, 4);
    auto lin = pack_linear_weight(wl.data(), DType::F16, 256, 256, Precision::F32);
    ASSERT_TRUE(lin);
    const uint64_t one = lin->bytes() + 8192;  // about one file
    for (int i = 0; i < 4; ++i) {
        auto c = PackCache::open(dir.string(), fmt::format("key {}", i), 2 * one + one / 2);
        c->add("w", *lin);
        ASSERT_TRUE(c->commit());
        ::usleep(20000);  // distinct modification times
    }
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".easelpack";
    EXPECT_EQ(n, 2u);
    // The newest two survive.
    EXPECT_TRUE(PackCache::open(dir.string(), "key 3")->mapped());
    EXPECT_TRUE(PackCache::open(dir.string(), "key 2")->mapped());
    EXPECT_FALSE(PackCache::open(dir.string(), "key 0")->mapped());
}

TEST(PackCache, UnwritableFolderIsAnErrorNotACrash) {
    const auto wl = random_f16(64, 5);
    auto lin = pack_linear_weight(wl.data(), DType::F16, 8, 8, Precision::F32);
    ASSERT_TRUE(lin);
    const fs::path d = scratch("ro");
    const fs::path blocker = d / "file";
    write_all(blocker, {1, 2, 3});
    auto c = PackCache::open((blocker / "sub").string(), "k");  // a folder under a regular file cannot exist
    c->add("w", *lin);
    auto st = c->commit();
    ASSERT_FALSE(st);
    std::printf("error: %s\n", st.error().to_string().c_str());
}

TEST(PackCache, OnByDefaultInTheUsersCacheFolderUnlessTheEnvironmentSaysOff) {
    ::setenv("HOME", "/home/someone", 1);
    ::unsetenv("XDG_CACHE_HOME");
    ::unsetenv("EASEL_WEIGHT_CACHE");
    EXPECT_EQ(default_weight_cache_dir(), "/home/someone/.cache/easel/weights");
    EXPECT_EQ(standard_weight_cache_dir(), "/home/someone/.cache/easel/weights");
    ::setenv("XDG_CACHE_HOME", "/var/cache/someone", 1);
    EXPECT_EQ(default_weight_cache_dir(), "/var/cache/someone/easel/weights");
    ::unsetenv("XDG_CACHE_HOME");
    for (const char* off : {"off", "0", ""}) {
        ::setenv("EASEL_WEIGHT_CACHE", off, 1);
        EXPECT_EQ(default_weight_cache_dir(), "") << "EASEL_WEIGHT_CACHE=" << off;
    }
    ::setenv("EASEL_WEIGHT_CACHE", "/tmp/easel-wc", 1);
    EXPECT_EQ(default_weight_cache_dir(), "/tmp/easel-wc");
    ::unsetenv("EASEL_WEIGHT_CACHE");
}
