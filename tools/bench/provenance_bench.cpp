// What provenance costs per 512x512 image (issue: under 50 ms): the invisible watermarks (Stable Diffusion's in U
// and easel's in V, one colour round trip), the XMP packet, the C2PA manifest (hashing the file, building the
// JUMBF store, one ES256 signature), and the whole write path with and without them. Run e.g.
//   easel_bench_kernels --benchmark_filter='Provenance'
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/c2pa.h"
#include "io/image.h"
#include "pipeline/provenance.h"
#include "pipeline/verify_image.h"
#include "pipeline/watermark.h"

namespace {

using namespace easel;

Image photo(int w, int h) {
    Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    uint32_t r = 7;
    for (size_t i = 0; i < img.pixels.size(); ++i) {
        r = r * 1664525u + 1013904223u;
        img.pixels[i] = uint8_t(128 + 60 * std::sin(double(i % 1536) / 97.0) + (r >> 28));
    }
    return img;
}

const C2paSigner& signer() {
    static const C2paSigner s = [] {
        const auto dir = std::filesystem::temp_directory_path() / ("easel_bench_signer_" + std::to_string(getpid()));
        std::filesystem::create_directories(dir);
        const std::string k = (dir / "k.pem").string(), c = (dir / "c.pem").string(), r = (dir / "r.pem").string();
        if (!make_c2pa_test_credentials(k, c, r, "bench", 1)) std::abort();
        auto loaded = load_c2pa_signer(k, c);
        std::filesystem::remove_all(dir);
        if (!loaded) std::abort();
        return *loaded;
    }();
    return s;
}

const Provenance kProv{"v1-5-pruned-emaonly", "6ce0161689", "creativeml-openrail-m", {}, kEaselGenerator, "StableDiffusionV1 (U), easel (V)"};
const std::string kInfotext = "a photo of a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: v1-5-pruned-emaonly";

void BM_ProvenanceWatermarks512(benchmark::State& state) {
    const Image img = photo(512, 512);
    for (auto _ : state) {
        Image m = img;
        if (!embed_watermarks(m, &sd_watermark_bits(), &easel_watermark_bits())) state.SkipWithError("watermark failed");
        benchmark::DoNotOptimize(m.pixels.data());
    }
}
BENCHMARK(BM_ProvenanceWatermarks512)->Unit(benchmark::kMillisecond);

void BM_ProvenanceXmp(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(image_metadata(kInfotext, kProv));
}
BENCHMARK(BM_ProvenanceXmp)->Unit(benchmark::kMicrosecond);

// The C2PA manifest alone, on an encoded 512x512 PNG.
void BM_ProvenanceC2paSign512(benchmark::State& state) {
    auto png = encode_image(photo(512, 512), ImageFormat::Png, image_metadata(kInfotext, kProv));
    C2paClaimInput claim{"out.png", "easel", "0.1.0", provenance_assertions(kProv, kInfotext)};
    (void)signer();
    for (auto _ : state) {
        auto out = add_c2pa_manifest(*png, claim, signer(), "out.png");
        if (!out) state.SkipWithError("signing failed");
        benchmark::DoNotOptimize(out->data());
    }
}
BENCHMARK(BM_ProvenanceC2paSign512)->Unit(benchmark::kMillisecond);

// The write path: PNG encoding alone (arg 0), and with the watermarks, XMP and a signed manifest (arg 1); the
// difference is what provenance costs.
void BM_ProvenanceWritePath512(benchmark::State& state) {
    const Image img = photo(512, 512);
    const bool marked = state.range(0) != 0;
    (void)signer();
    for (auto _ : state) {
        if (!marked) {
            auto out = encode_image(img, ImageFormat::Png, {{"parameters", kInfotext}});
            benchmark::DoNotOptimize(out->data());
            continue;
        }
        Image m = img;
        (void)embed_watermarks(m, &sd_watermark_bits(), &easel_watermark_bits());
        auto out = encode_provenance_image(m, ImageFormat::Png, image_metadata(kInfotext, kProv), kProv, kInfotext, &signer(), "out.png");
        if (!out) state.SkipWithError("encoding failed");
        benchmark::DoNotOptimize(out->data());
    }
}
BENCHMARK(BM_ProvenanceWritePath512)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// `easel verify` on a signed 512x512 PNG: decoding, three watermark readings and every C2PA check.
void BM_ProvenanceVerify512(benchmark::State& state) {
    Image m = photo(512, 512);
    (void)embed_watermarks(m, &sd_watermark_bits(), &easel_watermark_bits());
    auto file = encode_provenance_image(m, ImageFormat::Png, image_metadata(kInfotext, kProv), kProv, kInfotext, &signer(), "out.png");
    for (auto _ : state) {
        auto p = inspect_image_provenance(file->data(), file->size(), {}, "out.png");
        if (!p || p->verdict != ProvenanceVerdict::Signed) state.SkipWithError("not verified as signed");
        benchmark::DoNotOptimize(p);
    }
}
BENCHMARK(BM_ProvenanceVerify512)->Unit(benchmark::kMillisecond);

}  // namespace
