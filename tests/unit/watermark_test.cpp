// The invisible watermark (pipeline/watermark.h) against the `invisible-watermark` library itself
// (tests/golden/data/watermark_cases.safetensors, tools/reference/make_watermark_goldens.py): Stable Diffusion's
// scripts' mark on 8-bit images bit for bit, diffusers' SDXL mark on float images, and what the library's
// decoder reads back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <unistd.h>

#include <filesystem>

#include "common/scoped_path.h"
#include "io/image_resize.h"
#include "io/safetensors.h"
#include "pipeline/provenance.h"
#include "pipeline/verify_image.h"
#include "pipeline/watermark.h"

using namespace easel;

namespace {

const WeightSet& goldens() {
    static const WeightSet w = [] {
        auto r = read_safetensors(std::string(EASEL_GOLDEN_DIR) + "/watermark_cases.safetensors");
        if (!r) throw std::runtime_error(r.error().to_string());
        return std::move(r).value();
    }();
    return w;
}

const Tensor& golden(const std::string& name) {
    const Tensor* t = goldens().find(name);
    if (!t) throw std::runtime_error("no tensor " + name);
    return *t;
}

WatermarkBits bits_of(const std::string& name) {
    const Tensor& t = golden(name);
    const uint8_t* p = t.data<const uint8_t>();
    return WatermarkBits(p, p + t.numel());
}

Image image_of(const std::string& name) {
    const Tensor& t = golden(name);  // [H, W, 3] uint8
    Image img{int(t.shape()[1]), int(t.shape()[0]), 3, {}};
    const uint8_t* p = t.data<const uint8_t>();
    img.pixels.assign(p, p + t.numel());
    return img;
}

// A photo-like image: colours that vary smoothly, with noise, and no flat saturated areas (where the colour
// conversion clips the marks away: the library's as much as easel's).
Image photo_like(int w, int h, uint32_t seed) {
    Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    uint32_t r = seed;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
                r = r * 1664525u + 1013904223u;
                const double phase = c == 0 ? x / 37.0 : c == 1 ? y / 23.0 + x / 91.0 : (x + y) / 29.0;
                img.pixels[(size_t(y) * w + x) * 3 + c] = uint8_t(std::clamp(int(128 + 70 * std::sin(phase)) + int(r >> 28) - 8, 0, 255));
            }
    return img;
}

TEST(Watermark, MessagesAreTheLibrarysBits) {
    EXPECT_EQ(sd_watermark_bits(), bits_of("sd1.message_bits"));
    EXPECT_EQ(sdxl_watermark_bits(), bits_of("sdxl.message_bits"));
    EXPECT_EQ(watermark_bits("SDV2"), bits_of("sd2.message_bits"));
}

TEST(Watermark, StableDiffusionScriptsMarkBitForBit) {
    for (const char* c : {"sd1_256x256", "sd1_512x320"}) {
        Image img = image_of(std::string(c) + ".input");
        const Image want = image_of(std::string(c) + ".output");
        ASSERT_TRUE(embed_watermark(img, sd_watermark_bits()));
        size_t differ = 0, max_diff = 0;
        for (size_t i = 0; i < want.pixels.size(); ++i) {
            const size_t d = size_t(std::abs(int(img.pixels[i]) - int(want.pixels[i])));
            differ += d != 0;
            max_diff = std::max(max_diff, d);
        }
        std::printf("%s: %zu of %zu values differ from the library's (max %zu)\n", c, differ, want.pixels.size(), max_diff);
        EXPECT_EQ(differ, 0u) << c;
        // What the library's decoder read from its own output, we read too.
        auto got = decode_watermark(want, 136);
        ASSERT_TRUE(got);
        EXPECT_EQ(*got, bits_of(std::string(c) + ".decoded_bits")) << c;
    }
}

TEST(Watermark, DiffusersSdxlMarkOnFloatImages) {
    const Tensor& in = golden("sdxl_256x256.input");  // [1, 3, 256, 256] in [-1, 1]
    const Tensor& want = golden("sdxl_256x256.output");
    std::vector<float> x(in.data<const float>(), in.data<const float>() + in.numel());
    ASSERT_TRUE(embed_watermark_sdxl(x.data(), 256, 256));
    const float* w = want.data<const float>();
    double max_err = 0;
    size_t exact = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        max_err = std::max(max_err, double(std::abs(x[i] - w[i])));
        exact += x[i] == w[i];
    }
    std::printf("sdxl_256x256: max |easel - library| = %.3g, %zu of %zu values identical\n", max_err, exact, x.size());
    EXPECT_LE(max_err, 2e-6);  // OpenCV's float colour conversion differs in the last bit between CPUs (FMA)
    auto got = decode_watermark_sdxl(w, 256, 256, 48);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, bits_of("sdxl_256x256.decoded_bits_float"));
    // What the saved 8-bit PNG decodes to (diffusers' postprocessing: round half to even).
    Image png{256, 256, 3, std::vector<uint8_t>(256 * 256 * 3)};
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 256 * 256; ++i)
            png.pixels[size_t(i) * 3 + c] = uint8_t(std::nearbyint(std::clamp(w[size_t(c) * 65536 + i] / 2 + 0.5f, 0.0f, 1.0f) * 255.0f));
    auto from_png = decode_watermark(png, 48);
    ASSERT_TRUE(from_png);
    EXPECT_EQ(*from_png, bits_of("sdxl_256x256.decoded_bits"));
    // Narrower than 256: untouched, as in diffusers.
    std::vector<float> narrow(3 * 512 * 128, 0.25f);
    ASSERT_TRUE(embed_watermark_sdxl(narrow.data(), 512, 128));
    EXPECT_EQ(narrow[0], 0.25f);
}

TEST(Watermark, EaselsOwnMessageInVBesideTheLibrarysInU) {
    Image img = photo_like(512, 512, 12345);
    ASSERT_TRUE(embed_watermark(img, sd_watermark_bits(), WatermarkChannel::U));
    ASSERT_TRUE(embed_watermark(img, easel_watermark_bits(), WatermarkChannel::V));
    auto u = decode_watermark(img, 136, WatermarkChannel::U);
    auto v = decode_watermark(img, 40, WatermarkChannel::V);
    ASSERT_TRUE(u && v);
    int u_right = 0, v_right = 0;
    for (size_t i = 0; i < 136; ++i) u_right += (*u)[i] == sd_watermark_bits()[i];
    for (size_t i = 0; i < 40; ++i) v_right += (*v)[i] == easel_watermark_bits()[i];
    std::printf("512x512 with both marks: U reads %d/136 of Stable Diffusion's bits, V %d/40 of easel's\n", u_right, v_right);
    EXPECT_GE(u_right, 120);  // the library's own output of this size reads 124/136 (the goldens)
    EXPECT_EQ(v_right, 40);
}

// How the marks survive what happens to images on the way (printed for docs/provenance.md; only the lossless
// format is held to a bound): PNG; WebP at quality 90 (libwebp's simple API is lossy); JPEG at 90 and 75; a 10%
// crop from the top-left; a 0.5x area resize, of a 1024x1024 photo-like image.
TEST(Watermark, RobustnessIsMeasured) {
    Image img = photo_like(1024, 1024, 777);
    ASSERT_TRUE(embed_watermarks(img, &sd_watermark_bits(), &easel_watermark_bits()));
    auto score = [](const Image& im, const WatermarkBits& want, WatermarkChannel ch) {
        auto got = decode_watermark(to_rgb(im), want.size(), ch);
        if (!got) return -1;
        int right = 0;
        for (size_t i = 0; i < want.size(); ++i) right += (*got)[i] == want[i];
        return right;
    };
    auto via = [&](ImageFormat f, int quality) {
        auto bytes = encode_image(img, f, {}, quality);
        return decode_image(bytes->data(), bytes->size()).value();
    };
    struct Case {
        const char* name;
        Image im;
    };
    const Case cases[] = {{"PNG", via(ImageFormat::Png, 95)},
                          {"WebP q90", via(ImageFormat::Webp, 90)},
                          {"JPEG q90", via(ImageFormat::Jpeg, 90)},
                          {"JPEG q75", via(ImageFormat::Jpeg, 75)},
                          {"10% crop", crop_image(img, 102, 102, 922, 922)},
                          {"0.5x resize", resize_area_opencv(img, 512, 512)}};
    for (const Case& c : cases) {
        const int u = score(c.im, sd_watermark_bits(), WatermarkChannel::U), v = score(c.im, easel_watermark_bits(), WatermarkChannel::V);
        std::printf("watermark after %-11s: Stable Diffusion's %3d/136 bits, easel's %2d/40\n", c.name, u, v);
    }
    // Lossless: as much as the library reads from its own marks (124/136 at 512x512 in the goldens; the mark moves
    // a block's largest coefficient, which can make another one the largest) and all of easel's 40, repeated more.
    EXPECT_GE(score(cases[0].im, sd_watermark_bits(), WatermarkChannel::U), 124);
    EXPECT_EQ(score(cases[0].im, easel_watermark_bits(), WatermarkChannel::V), 40);
}

// `easel verify`'s verdicts (pipeline/verify_image.h) on the four kinds of image a user brings: one easel signed;
// the same pixels re-encoded without their metadata (only the watermark is left); the signed file with one byte
// of its metadata changed; and an image no tool marked. Photo-like, so that the watermark survives.
TEST(Watermark, VerifyVerdictsTellTheFourCasesApart) {
    const easel::testing::ScopedPath dir{std::filesystem::temp_directory_path() / ("easel_verdicts_" + std::to_string(getpid()))};
    std::filesystem::create_directories(dir.path);
    const std::string key = (dir.path / "s.key").string(), chain = (dir.path / "s.pem").string(), root = (dir.path / "r.pem").string();
    ASSERT_TRUE(make_c2pa_test_credentials(key, chain, root, "verdict test", 1));
    auto signer = load_c2pa_signer(key, chain);
    ASSERT_TRUE(signer);
    auto anchors = load_pem_certificates(root);
    ASSERT_TRUE(anchors);

    const Image plain = photo_like(512, 512, 99);
    Image marked = plain;
    ASSERT_TRUE(embed_watermarks(marked, &sd_watermark_bits(), &easel_watermark_bits()));
    const Provenance prov{"model-x", "0123456789", "openrail", {}, kEaselGenerator, "StableDiffusionV1 (U), easel (V)"};
    const std::string infotext = "a photo\nSteps: 20, Seed: 1, Model: model-x";
    auto file = encode_provenance_image(marked, ImageFormat::Png, image_metadata(infotext, prov), prov, infotext, &*signer, "x.png");
    ASSERT_TRUE(file) << file.error().to_string();
    auto verdict = [&](const std::vector<uint8_t>& bytes, const char* what) {
        auto p = inspect_image_provenance(bytes.data(), bytes.size(), *anchors, what);
        EXPECT_TRUE(p) << what;
        if (!p) return ProvenanceVerdict::None;
        std::printf("  %-22s exit %d, %s\n", what, p->exit_status(), p->verdict_text().c_str());
        return p->verdict;
    };
    auto signed_p = inspect_image_provenance(file->data(), file->size(), *anchors, "signed");
    ASSERT_TRUE(signed_p);
    EXPECT_EQ(signed_p->verdict, ProvenanceVerdict::Signed);
    EXPECT_TRUE(signed_p->c2pa.trusted);
    EXPECT_EQ(xmp_value(signed_p->xmp, "easel:ModelLicense"), "openrail");
    const Cbor* gen = signed_p->c2pa.assertion("easel.generation");
    ASSERT_NE(gen, nullptr);
    EXPECT_EQ(gen->get("license")->str(), "openrail");
    EXPECT_EQ(gen->get("model_hash")->str(), "0123456789");
    EXPECT_EQ(gen->get("parameters")->str(), infotext);
    EXPECT_EQ(verdict(*file, "signed"), ProvenanceVerdict::Signed);
    EXPECT_EQ(provenance_report_json(*signed_p)["content_credential"]["assertions"]["easel.generation"]["model"], "model-x");

    auto stripped = encode_image(marked, ImageFormat::Png);  // the pixels alone, as a re-encode leaves them
    ASSERT_TRUE(stripped);
    EXPECT_EQ(verdict(*stripped, "re-encoded, stripped"), ProvenanceVerdict::WatermarkOnly);
    // (JPEG keeps too few bits for the 85% a "found" needs: docs/provenance.md's robustness table.)

    std::vector<uint8_t> tampered = *file;
    const std::string needle = "a photo";
    // The last copy of the infotext: PNG's `parameters` chunk, after the manifest store (the first is inside it).
    auto at = std::find_end(tampered.begin(), tampered.end(), needle.begin(), needle.end());
    ASSERT_NE(at, tampered.end());
    at[2] = 'P';  // "a Photo"
    auto changed = inspect_image_provenance(tampered.data(), tampered.size(), *anchors, "metadata changed");
    ASSERT_TRUE(changed);
    EXPECT_FALSE(changed->c2pa.binding_intact);
    EXPECT_TRUE(changed->c2pa.assertions_intact && changed->c2pa.signature_valid);
    EXPECT_EQ(verdict(tampered, "metadata changed"), ProvenanceVerdict::Tampered);

    auto unmarked = encode_image(plain, ImageFormat::Png);
    ASSERT_TRUE(unmarked);
    EXPECT_EQ(verdict(*unmarked, "unmarked"), ProvenanceVerdict::None);

    auto labelled = encode_image(plain, ImageFormat::Png, image_metadata(infotext, prov));
    ASSERT_TRUE(labelled);
    EXPECT_EQ(verdict(*labelled, "labelled, unsigned"), ProvenanceVerdict::Labelled);
}

TEST(Watermark, RefusesWhatItCannotMark) {
    Image small{255, 256, 3, std::vector<uint8_t>(255 * 256 * 3, 100)};
    auto st = embed_watermark(small, sd_watermark_bits());
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().to_string().find("256x256"), std::string::npos);
    Image gray{256, 256, 1, std::vector<uint8_t>(256 * 256, 100)};
    EXPECT_FALSE(embed_watermark(gray, sd_watermark_bits()));
    EXPECT_FALSE(decode_watermark(small, 136));
    std::vector<float> square(3 * 128 * 300, 0.0f);  // wide enough for diffusers, too few pixels for the library
    EXPECT_FALSE(embed_watermark_sdxl(square.data(), 128, 300));
}

}  // namespace
