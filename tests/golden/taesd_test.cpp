// The tiny autoencoders used for previews (models/vae/taesd.h, pipeline/preview.h) against diffusers 0.30.3's
// AutoencoderTiny with random weights (tools/reference/make_taesd_goldens.py): 4 latent channels (TAESD, TAESDXL)
// and 16 (TAESD3, TAEF1), from a diffusers folder and from madebyollin's decoder-only layout. fp32 all the way:
// the outputs are O(5); atol 3e-4 with rtol 1e-4 is a few float roundings over 14 convolutions (measured: 7e-5).
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include <unistd.h>

#include "common/golden.h"
#include "io/model_file.h"
#include "io/safetensors.h"
#include "pipeline/preview.h"

using namespace easel;
using namespace easel::testing;

namespace {

const std::string kDir = std::string(EASEL_GOLDEN_DIR) + "/taesd/";
constexpr Tolerance kTol{.atol = 3e-4, .rtol = 1e-4};

}  // namespace

TEST(TAESD, DecodersMatchAutoencoderTiny) {
    const WeightSet& g = golden_file("taesd/cases.safetensors");
    BufferPool pool;
    Ctx c{&pool};
    for (auto [path, name] : {std::pair{kDir + "tiny4", "tiny4"}, std::pair{kDir + "tiny4_decoder.safetensors", "tiny4"},
                              std::pair{kDir + "tiny16", "tiny16"}}) {
        auto d = load_preview_decoder(path);
        ASSERT_TRUE(d) << d.error().to_string();
        EXPECT_FALSE((*d)->has_encoder());
        EXPECT_EQ((*d)->config().channels, 16);
        const Tensor& z = golden_tensor(g, std::string(name) + ".latent");
        EXPECT_EQ((*d)->config().latent_channels, z.size(1));
        expect_close((*d)->decode(c, z), golden_tensor(g, std::string(name) + ".decoded"), kTol,
                     std::string(name) + " decode from " + std::filesystem::path(path).filename().string());
    }
}

TEST(TAESD, EncoderMatchesAutoencoderTiny) {
    const WeightSet& g = golden_file("taesd/cases.safetensors");
    BufferPool pool;
    Ctx c{&pool};
    for (auto [lat, name] : {std::pair{4, "tiny4"}, std::pair{16, "tiny16"}}) {
        auto w = read_weights(kDir + name + "/diffusion_pytorch_model.safetensors");
        ASSERT_TRUE(w) << w.error().to_string();
        ParamLoader loader(*w, Precision::F32);
        TAESDConfig cfg;
        cfg.channels = 16;
        cfg.latent_channels = lat;
        const TinyAutoencoder t = TinyAutoencoder::declare(ParamScope(loader, ""), cfg, /*with_encoder=*/true);
        ASSERT_TRUE(loader.finish()) << loader.finish().error().to_string();
        expect_close(t.encode(c, golden_tensor(g, std::string(name) + ".image")), golden_tensor(g, std::string(name) + ".encoded"),
                     kTol, std::string(name) + " encode");
    }
}

TEST(TAESD, PreviewsOfEveryKind) {
    BufferPool pool;
    Ctx c{&pool};
    auto d = load_preview_decoder(kDir + "tiny4");
    ASSERT_TRUE(d);
    const Tensor z = random_tensor(Shape{1, 4, 6, 10}, 5);
    const Image a = preview_image(c, d->get(), z);  // the decoder's picture, 8x the latent
    EXPECT_EQ(a.width, 80);
    EXPECT_EQ(a.height, 48);
    const Image b = preview_image(c, nullptr, z);  // A1111's linear map, the latent's size
    EXPECT_EQ(b.width, 10);
    EXPECT_EQ(b.height, 6);
    const Image e = preview_image(c, d->get(), random_tensor(Shape{1, 16, 6, 10}, 6));  // no map for 16 channels
    EXPECT_EQ(e.width, 0);
}

// A batch sampled together previews as A1111's grid: floor(sqrt(n)) rows filled row by row, each tile the item's
// own preview, a missing last tile black.
TEST(TAESD, ABatchPreviewsAsAGrid) {
    BufferPool pool;
    Ctx c{&pool};
    auto d = load_preview_decoder(kDir + "tiny4");
    ASSERT_TRUE(d);
    for (const TinyAutoencoder* taesd : {d->get(), static_cast<const TinyAutoencoder*>(nullptr)})
        for (auto [n, rows, cols] : {std::tuple{3, 1, 3}, std::tuple{4, 2, 2}, std::tuple{5, 2, 3}}) {
            const Tensor z = random_tensor(Shape{n, 4, 6, 10}, 7);
            const Image grid = preview_image(c, taesd, z);
            const int w = taesd ? 80 : 10, h = taesd ? 48 : 6;
            ASSERT_EQ(grid.width, cols * w) << n;
            ASSERT_EQ(grid.height, rows * h) << n;
            for (int k = 0; k < rows * cols; ++k) {
                const Image one = k < n ? preview_image(c, taesd, z.slice(0, k, k + 1).contiguous()) : Image{};
                const int gx = (k % cols) * w, gy = (k / cols) * h;
                bool same = true;
                for (int y = 0; y < h && same; ++y)
                    for (int x = 0; x < w * 3 && same; ++x) {
                        const uint8_t g = grid.pixels[(size_t(gy + y) * size_t(grid.width) + size_t(gx)) * 3 + size_t(x)];
                        same = g == (k < n ? one.pixels[size_t(y) * size_t(w) * 3 + size_t(x)] : 0);
                    }
                EXPECT_TRUE(same) << (taesd ? "taesd" : "linear map") << ", " << n << " items: tile " << k;
            }
        }
    EXPECT_EQ(image_grid({}).width, 0);
}

TEST(TAESD, WrongFilesAreRefusedWithWhatWasExpected) {
    // An encoder-only file in madebyollin's layout, a full model, a folder without the file.
    auto w = read_weights(kDir + "tiny4/diffusion_pytorch_model.safetensors");
    ASSERT_TRUE(w);
    WeightSet enc;
    for (const std::string& n : w->names())
        if (n.rfind("encoder.layers.", 0) == 0) {
            ASSERT_TRUE(enc.add(n.substr(15), *w->find(n)));
        }
    const auto tmp = std::filesystem::temp_directory_path() / ("easel_taesd_" + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp);
    ASSERT_TRUE(write_safetensors((tmp / "taesd_encoder.safetensors").string(), enc, {}));
    auto e = load_preview_decoder((tmp / "taesd_encoder.safetensors").string());
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().to_string().find("is a TAESD encoder"), std::string::npos) << e.error().to_string();
    auto f = load_preview_decoder(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_single/tiny-sdxl.safetensors");
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().to_string().find("not a tiny autoencoder"), std::string::npos) << f.error().to_string();
    auto g = load_preview_decoder(tmp.string());
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().to_string().find("diffusion_pytorch_model.safetensors"), std::string::npos) << g.error().to_string();
    // A decoder missing a tensor names it.
    WeightSet cut;
    for (const std::string& n : w->names())
        if (n != "decoder.layers.7.conv.2.weight") {
            ASSERT_TRUE(cut.add(n, *w->find(n)));
        }
    ASSERT_TRUE(write_safetensors((tmp / "cut.safetensors").string(), cut, {}));
    auto h = load_preview_decoder((tmp / "cut.safetensors").string());
    ASSERT_FALSE(h);
    EXPECT_NE(h.error().to_string().find("decoder.layers.7.conv.2.weight"), std::string::npos) << h.error().to_string();
    std::filesystem::remove_all(tmp);
}
