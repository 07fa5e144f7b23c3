// A model's recommended settings (easel_defaults.json, or a single file's easel.default_cfg_scale metadata):
// src/pipeline/model.h parse_model_defaults and what load_sd_model makes of them.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "io/safetensors.h"
#include "pipeline/families/sd.h"

using namespace easel;
namespace fs = std::filesystem;

TEST(ModelDefaults, ReadsTheGuidanceScaleAndSkipsComments) {
    auto d = parse_model_defaults(R"({"cfg_scale": 2.5, "_comment": "chosen on validation captions"})", "m/easel_defaults.json");
    ASSERT_TRUE(d) << d.error().to_string();
    ASSERT_TRUE(d->cfg_scale.has_value());
    EXPECT_DOUBLE_EQ(*d->cfg_scale, 2.5);
    EXPECT_EQ(d->source, "m/easel_defaults.json");
    auto none = parse_model_defaults("{}", "x.json");
    ASSERT_TRUE(none) << none.error().to_string();
    EXPECT_FALSE(none->cfg_scale.has_value());
    auto integer = parse_model_defaults(R"({"cfg_scale": 3})", "x.json");
    ASSERT_TRUE(integer) << integer.error().to_string();
    EXPECT_DOUBLE_EQ(integer->cfg_scale.value_or(-1), 3.0);
}

TEST(ModelDefaults, RefusesBadFilesNamingThemAndTheField) {
    const std::pair<const char*, const char*> bad[] = {
        {R"({"cfg_scale": "high"})", "cfg_scale"},
        {R"({"cfg_scale": -1})", "between 0 and 100"},
        {R"({"cfg_scale": 1000})", "between 0 and 100"},
        {R"({"cfg_scale": NaN})", "cfg_scale: expected a finite number"},
        {R"({"cfg_scale": Infinity})", "cfg_scale: expected a finite number"},
        {R"({"steps": 20})", "unknown setting 'steps'"},
        {R"([2.5])", "JSON object"},
        {R"({"cfg_scale": 2.5)", "m.json"},
        {"", "m.json"},
    };
    for (const auto& [text, want] : bad) {
        auto d = parse_model_defaults(text, "m.json");
        ASSERT_FALSE(d) << text;
        const std::string msg = d.error().to_string();
        std::printf("%-28s -> %s\n", text, msg.c_str());
        EXPECT_NE(msg.find(want), std::string::npos) << msg;
        EXPECT_NE(msg.find("m.json"), std::string::npos) << msg;
    }
}

namespace {
const std::string kFolder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1";         // a diffusers folder
const std::string kSingle = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1_single";  // its single-file form

struct TempDir {
    fs::path p = fs::temp_directory_path() / ("easel-defaults-" + std::to_string(::getpid()));
    TempDir() { fs::create_directories(p); }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(p, ec);
    }
};

void write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
}
}  // namespace

TEST(ModelDefaults, FolderFileIsLoadedAndAbsentMeansSdDefault) {
    auto plain = load_sd_model(kFolder, LoadOptions{});
    ASSERT_TRUE(plain) << plain.error().to_string();
    EXPECT_FALSE((*plain)->defaults.cfg_scale.has_value());
    EXPECT_DOUBLE_EQ((*plain)->default_cfg_scale(), 7.0);

    TempDir t;
    fs::copy(kFolder, t.p / "m", fs::copy_options::recursive);
    write(t.p / "m" / "easel_defaults.json", R"({"cfg_scale": 2})");
    auto rec = load_sd_model((t.p / "m").string(), LoadOptions{});
    ASSERT_TRUE(rec) << rec.error().to_string();
    EXPECT_DOUBLE_EQ((*rec)->default_cfg_scale(), 2.0);
    bool noted = false;
    for (const auto& n : (*rec)->notes) noted |= n.find("recommended CFG scale 2") != std::string::npos;
    EXPECT_TRUE(noted) << (*rec)->describe();

    write(t.p / "m" / "easel_defaults.json", R"({"cfg_scale": 200})");
    auto bad = load_sd_model((t.p / "m").string(), LoadOptions{});
    ASSERT_FALSE(bad);
    std::printf("%s\n", bad.error().to_string().c_str());
    EXPECT_NE(bad.error().to_string().find("easel_defaults.json"), std::string::npos);
}

TEST(ModelDefaults, SingleFileMetadataIsLoaded) {
    fs::path single;
    for (const auto& e : fs::directory_iterator(kSingle))
        if (e.path().extension() == ".safetensors") single = e.path();
    ASSERT_FALSE(single.empty()) << "no .safetensors in " << kSingle;
    auto w = read_safetensors(single.string());
    ASSERT_TRUE(w) << w.error().to_string();
    TempDir t;
    for (const auto& e : fs::directory_iterator(kSingle))
        if (e.path().extension() != ".safetensors") fs::copy(e.path(), t.p / e.path().filename(), fs::copy_options::recursive);
    const fs::path file = t.p / single.filename();
    for (const auto& [value, ok] : {std::pair{"3.5", true}, std::pair{"\"x\"", false}, std::pair{"-2", false}}) {
        WeightSet copy = *w;
        copy.metadata["easel.default_cfg_scale"] = value;
        auto st = write_safetensors(file.string(), copy);
        ASSERT_TRUE(st) << st.error().to_string();
        auto m = load_sd_model(file.string(), LoadOptions{});
        if (ok) {
            ASSERT_TRUE(m) << m.error().to_string();
            EXPECT_DOUBLE_EQ((*m)->default_cfg_scale(), 3.5);
        } else {
            ASSERT_FALSE(m) << value;
            std::printf("metadata %s -> %s\n", value, m.error().to_string().c_str());
            EXPECT_NE(m.error().to_string().find("easel.default_cfg_scale"), std::string::npos);
        }
    }
}
