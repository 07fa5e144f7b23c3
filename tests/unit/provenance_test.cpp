// What images say about themselves (pipeline/provenance.h, io/xmp.h): the XMP packet and its round trip through
// PNG, JPEG and WebP files, where a model's licence is found, and the cached model hash.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <fcntl.h>

#include <filesystem>
#include <fstream>

#include "io/file_hash.h"
#include "io/gguf.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/xmp.h"
#include "pipeline/provenance.h"

namespace fs = std::filesystem;
using namespace easel;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("easel_provenance_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

Image gradient(int w, int h) {
    Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7 % 251);
    return img;
}

TEST(Xmp, BuildsAndParsesBackEveryField) {
    const XmpFields in = {{"Iptc4xmpExt:DigitalSourceType", std::string(kIptcTrainedAlgorithmicMedia)},
                          {"easel:Model", "a <b> & \"c\" 'd'\nnext line"},
                          {"easel:LoraHashes", "x: 0123456789ab, ü: ffffffffffff"},
                          {"xmpRights:UsageTerms", "under <licence> & terms"}};
    const std::string packet = build_xmp(in);
    EXPECT_EQ(packet.rfind("<?xpacket begin=", 0), 0u);
    EXPECT_NE(packet.find("<?xpacket end=\"w\"?>"), std::string::npos);
    EXPECT_EQ(parse_xmp(packet), in) << packet;
    EXPECT_TRUE(parse_xmp("not xml at all").empty());
    EXPECT_TRUE(parse_xmp("<rdf:Description a=\"unterminated").empty());
}

TEST(Xmp, TravelsInPngJpegAndWebp) {
    const Provenance p{"v1-5-pruned-emaonly", "6ce0161689", "creativeml-openrail-m", "detail: 0123456789ab"};
    const TextChunks meta = image_metadata("a cat\nSteps: 20", p);
    for (ImageFormat f : {ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp}) {
        auto bytes = encode_image(gradient(64, 48), f, meta);
        ASSERT_TRUE(bytes) << bytes.error().to_string();
        auto back = read_image_text(bytes->data(), bytes->size());
        ASSERT_TRUE(back) << back.error().to_string();
        const XmpFields x = parse_xmp((*back)[std::string(kXmpKey)]);
        EXPECT_EQ(xmp_value(x, "Iptc4xmpExt:DigitalSourceType"), kIptcTrainedAlgorithmicMedia) << int(f);
        EXPECT_EQ(xmp_value(x, "xmp:CreatorTool"), kEaselGenerator);
        EXPECT_EQ(xmp_value(x, "easel:Model"), "v1-5-pruned-emaonly");
        EXPECT_EQ(xmp_value(x, "easel:ModelHash"), "6ce0161689");
        EXPECT_EQ(xmp_value(x, "easel:ModelLicense"), "creativeml-openrail-m");
        EXPECT_EQ(xmp_value(x, "easel:LoraHashes"), "detail: 0123456789ab");
        if (f != ImageFormat::Webp) {
            EXPECT_EQ((*back)["parameters"], "a cat\nSteps: 20") << int(f);
        }
        // The pixels still decode.
        auto img = decode_image(bytes->data(), bytes->size());
        ASSERT_TRUE(img) << img.error().to_string();
        EXPECT_EQ(img->width, 64);
    }
    // An unknown licence is said so, not left out.
    const XmpFields unknown = parse_xmp(provenance_xmp(Provenance{"m", "", "", ""}));
    EXPECT_EQ(xmp_value(unknown, "easel:ModelLicense"), "unknown");
    EXPECT_EQ(xmp_value(unknown, "easel:ModelHash"), "");
}

TEST(Provenance, LicenceFromSafetensorsGgufAndTheModelCard) {
    const fs::path d = temp_dir("licence");
    WeightSet w;
    ASSERT_TRUE(w.add("x", Tensor::zeros({4})));
    ASSERT_TRUE(write_safetensors((d / "spec.safetensors").string(), w, {{"modelspec.license", "creativeml-openrail-m"}}));
    EXPECT_EQ(detect_model_license((d / "spec.safetensors").string()), "creativeml-openrail-m");
    ASSERT_TRUE(write_safetensors((d / "plain.safetensors").string(), w, {{"license", "apache-2.0"}}));
    EXPECT_EQ(detect_model_license((d / "plain.safetensors").string()), "apache-2.0");
    ASSERT_TRUE(write_gguf((d / "m.gguf").string(), {{"general.license", "flux-1-dev-non-commercial-license"}},
                           {{"x", {4}, QuantType::None, DType::F32}}, [&](size_t) -> Result<Tensor> { return Tensor::zeros({4}); }));
    EXPECT_EQ(detect_model_license((d / "m.gguf").string()), "flux-1-dev-non-commercial-license");
    // A folder's model card: `license: other` with a name, quoted or not.
    fs::create_directories(d / "folder");
    std::ofstream(d / "folder/README.md") << "---\nlibrary_name: diffusers\nlicense: other\nlicense_name: \"sdxl-turbo-research\"\n---\n# card\nlicense: not this\n";
    EXPECT_EQ(detect_model_license((d / "folder").string()), "sdxl-turbo-research");
    std::ofstream(d / "folder/README.md") << "# no front matter\nlicense: mit\n";
    EXPECT_EQ(detect_model_license((d / "folder").string()), "");
    // A single file with nothing in it: the card beside it, if any.
    ASSERT_TRUE(write_safetensors((d / "folder/bare.safetensors").string(), w));
    EXPECT_EQ(detect_model_license((d / "folder/bare.safetensors").string()), "");
    std::ofstream(d / "folder/README.md") << "---\nlicense: openrail++\n---\n";
    EXPECT_EQ(detect_model_license((d / "folder/bare.safetensors").string()), "openrail++");
    // The embedded model names its own.
    EXPECT_EQ(detect_model_license(std::string(EASEL_SOURCE_DIR) + "/models/tiny"), "easel");
    fs::remove_all(d);
}

TEST(Provenance, ModelHashIsA1111sShortHashAndIsRemembered) {
    const fs::path d = temp_dir("hash");
    const fs::path f = d / "m.safetensors", cache = d / "cache/hashes.tsv";
    std::ofstream(f, std::ios::binary) << std::string(100000, 'a');
    auto full = sha256_file(f.string());
    ASSERT_TRUE(full);
    auto h = model_short_hash(f.string(), cache.string());
    ASSERT_TRUE(h) << h.error().to_string();
    EXPECT_EQ(*h, full->substr(0, 10));
    EXPECT_TRUE(fs::exists(cache));
    // Same size and time: the remembered hash, without reading the file (changed here behind its back).
    struct stat st {};
    ASSERT_EQ(stat(f.c_str(), &st), 0);
    std::ofstream(f, std::ios::binary) << std::string(100000, 'b');
    const timespec times[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), times, 0), 0);
    EXPECT_EQ(*model_short_hash(f.string(), cache.string()), full->substr(0, 10));
    // A new time: hashed again.
    const timespec later[2] = {{st.st_atim.tv_sec + 10, 0}, {st.st_mtim.tv_sec + 10, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), later, 0), 0);
    auto again = model_short_hash(f.string(), cache.string());
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, sha256_file(f.string())->substr(0, 10));
    EXPECT_NE(*again, *h);
    // Folders have none (as in AUTOMATIC1111); a missing file is an error.
    EXPECT_EQ(*model_short_hash(d.string(), ""), "");
    EXPECT_FALSE(model_short_hash((d / "nope").string(), ""));
    fs::remove_all(d);
}

}  // namespace
