#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "io/image.h"

using namespace easel;

namespace {
Image gradient(int w, int h, int ch) {
    Image img;
    img.width = w;
    img.height = h;
    img.channels = ch;
    img.pixels.resize(size_t(w * h * ch));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < ch; ++c) img.pixels[size_t((y * w + x) * ch + c)] = uint8_t((x * 7 + y * 13 + c * 50) & 255);
    return img;
}
}  // namespace

TEST(Image, PngRoundTripsPixelsAndText) {
    for (int ch : {1, 3, 4}) {
        Image img = gradient(37, 19, ch);
        const std::string params = "a cat, (masterpiece:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a";
        auto bytes = encode_image(img, ImageFormat::Png, {{"parameters", params}, {"utf8", "café ☕ 猫"}});
        ASSERT_TRUE(bytes) << bytes.error().to_string();
        auto back = decode_image(bytes->data(), bytes->size());
        ASSERT_TRUE(back) << back.error().to_string();
        EXPECT_EQ(back->width, 37);
        EXPECT_EQ(back->height, 19);
        EXPECT_EQ(back->channels, ch);
        EXPECT_EQ(back->pixels, img.pixels);
        auto text = read_png_text(bytes->data(), bytes->size());
        ASSERT_TRUE(text);
        EXPECT_EQ(text->at("parameters"), params);
        EXPECT_EQ(text->at("utf8"), "café ☕ 猫");
    }
}

TEST(Image, JpegAndWebpRoundTripApproximately) {
    Image img = gradient(64, 48, 3);
    // Lossy codecs need a smooth image: no wrap-around edges.
    for (int y = 0; y < 48; ++y)
        for (int x = 0; x < 64; ++x)
            for (int c = 0; c < 3; ++c) img.pixels[size_t((y * 64 + x) * 3 + c)] = uint8_t(x * 2 + y + c * 20);
    for (ImageFormat f : {ImageFormat::Jpeg, ImageFormat::Webp}) {
        auto bytes = encode_image(img, f, {}, 100);
        ASSERT_TRUE(bytes);
        auto back = decode_image(bytes->data(), bytes->size());
        ASSERT_TRUE(back) << back.error().to_string();
        EXPECT_EQ(back->width, 64);
        EXPECT_EQ(back->height, 48);
        double err = 0;
        for (int i = 0; i < 64 * 48; ++i)
            for (int c = 0; c < 3; ++c)
                err += std::abs(int(back->pixels[size_t(i * back->channels + c)]) - int(img.pixels[size_t(i * 3 + c)]));
        err /= 64 * 48 * 3;
        EXPECT_LT(err, 3.0) << "mean abs error " << err;
    }
}

TEST(Image, RejectsGarbageWithAClearError) {
    const uint8_t junk[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 1, 2};
    auto r = decode_image(junk, sizeof junk, "x.png");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("x.png"), std::string::npos) << r.error().to_string();
    const uint8_t text[] = "hello";
    auto r2 = decode_image(text, 5, "notes.txt");
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message().find("not a PNG, JPEG or WebP"), std::string::npos);
    const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F'};
    EXPECT_FALSE(decode_image(jpeg, sizeof jpeg, "t.jpg"));
    EXPECT_FALSE(image_format_from_path("out.bmp"));
}

TEST(Image, WriteImageIsAtomic) {
    const auto dir = std::filesystem::temp_directory_path() / "easel_image_test";
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "a.png").string();
    ASSERT_TRUE(write_image(path, gradient(8, 8, 3), {{"parameters", "x"}}));
    auto back = read_image(path);
    ASSERT_TRUE(back);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    EXPECT_FALSE(read_image((dir / "missing.png").string()));
    std::filesystem::remove_all(dir);
}

TEST(Image, RefusesHeadersThatAskForTooManyPixels) {
    // 39 bytes of WebP whose VP8 header says 16136x10353 (each side under 16384): libwebp spent seconds filling
    // the 668 MB frame before noticing the missing data (fuzz_image, under ASan). Refused from the header now.
    const uint8_t webp[] = {0x52, 0x49, 0x46, 0x46, 0x3a, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56,
                            0x50, 0x38, 0x20, 0x2e, 0x00, 0x00, 0x00, 0x90, 0x01, 0x00, 0x9d, 0x01, 0x2a,
                            0x08, 0xff, 0x71, 0x28, 0x9f, 0xfc, 0x88, 0x01, 0x2a, 0x08, 0x00, 0x00, 0x00};
    auto r = easel::decode_image(webp, sizeof(webp), "bomb.webp");
    ASSERT_FALSE(r);
    std::printf("error: %s\n", r.error().to_string().c_str());
    EXPECT_NE(r.error().message().find("16136x10353"), std::string::npos);
    EXPECT_NE(r.error().message().find("pixels in all"), std::string::npos);
    // A big but allowed size still decodes: 8192x8192 is exactly the limit.
    easel::Image img;
    img.width = 8192;
    img.height = 8;
    img.channels = 3;
    img.pixels.assign(size_t(8192) * 8 * 3, 7);
    auto png = easel::encode_image(img, easel::ImageFormat::Png);
    ASSERT_TRUE(png);
    EXPECT_TRUE(easel::decode_image(png->data(), png->size(), "wide.png"));
}
