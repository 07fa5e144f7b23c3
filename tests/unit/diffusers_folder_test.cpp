// Diffusers folders: the fixture tests/data/diffusers/tiny (tools/reference/make_io_fixtures.py) read as is,
// then copies of it broken one way at a time.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/diffusers_folder.h"
#include "io/safetensors.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(EASEL_TEST_DATA_DIR) + "/diffusers/tiny";

// A fresh writable copy of the fixture.
fs::path copy_of_tiny(const std::string& tag) {
    fs::path d = fs::path(::testing::TempDir()) / ("easel_diffusers_" + std::to_string(::getpid())) / tag;
    fs::remove_all(d);
    fs::create_directories(d.parent_path());
    fs::copy(kTiny, d, fs::copy_options::recursive);
    return d;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

DiffusersFolder open_or_fail(const std::string& path) {
    auto f = open_diffusers_folder(path);
    EXPECT_TRUE(f) << f.error().to_string();
    return f ? *f : DiffusersFolder{};
}

void expect_contains(const Error& e, std::vector<std::string> needles) {
    const std::string msg = e.to_string();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' missing from: " << msg;
}

}  // namespace

TEST(DiffusersFolder, ReadsModelIndex) {
    DiffusersFolder f = open_or_fail(kTiny);
    EXPECT_EQ(f.pipeline_class, "StableDiffusionPipeline");
    EXPECT_EQ(f.diffusers_version, "0.30.3");
    std::vector<std::string> names;
    for (const auto& c : f.components) names.push_back(c.name);
    EXPECT_EQ(names, (std::vector<std::string>{"feature_extractor", "safety_checker", "scheduler", "text_encoder",
                                               "tokenizer", "unet", "vae"}));
    const DiffusersComponent* unet = f.component("unet");
    ASSERT_NE(unet, nullptr);
    EXPECT_TRUE(unet->enabled);
    EXPECT_TRUE(unet->on_disk);
    EXPECT_EQ(unet->library, "diffusers");
    EXPECT_EQ(unet->class_name, "UNet2DConditionModel");
    EXPECT_EQ(f.component("text_encoder")->library, "transformers");
    const DiffusersComponent* sc = f.component("safety_checker");
    EXPECT_FALSE(sc->enabled);
    EXPECT_FALSE(sc->on_disk);
    EXPECT_EQ(f.options.at("requires_safety_checker"), "false");
}

TEST(DiffusersFolder, ConfigsAndFiles) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto unet = component_config(f, "unet");
    ASSERT_TRUE(unet) << unet.error().to_string();
    EXPECT_NE(unet->find("\"in_channels\": 4"), std::string::npos) << *unet;
    auto sched = component_config(f, "scheduler", "scheduler_config.json");
    ASSERT_TRUE(sched) << sched.error().to_string();
    EXPECT_NE(sched->find("EulerDiscreteScheduler"), std::string::npos);
    auto vocab = component_file(f, "tokenizer", "vocab.json");
    ASSERT_TRUE(vocab) << vocab.error().to_string();
    EXPECT_TRUE(fs::exists(*vocab));
    auto missing = component_config(f, "tokenizer");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ErrorCode::NotFound);
    expect_contains(missing.error(), {"tokenizer", "config.json"});
    auto escape = component_file(f, "tokenizer", "../unet/config.json");
    ASSERT_FALSE(escape);
    EXPECT_EQ(escape.error().code(), ErrorCode::InvalidArgument);
}

TEST(DiffusersFolder, LoadsDefaultAndVariantWeights) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto w = load_component_weights(f, "unet");
    ASSERT_TRUE(w) << w.error().to_string();
    const Tensor* t = w->find("conv_in.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->dtype(), DType::F32);
    EXPECT_EQ(t->shape(), Shape({1, 2}));
    EXPECT_EQ(t->data<float>()[1], 2.0f);
    EXPECT_EQ(w->metadata.at("easel.variant"), "");
    EXPECT_EQ(w->metadata.count("easel.weights_note"), 0u);

    auto h = load_component_weights(f, "unet", "fp16");
    ASSERT_TRUE(h) << h.error().to_string();
    ASSERT_EQ(h->find("conv_in.weight")->dtype(), DType::F16);
    EXPECT_EQ(f16_to_f32(h->find("conv_in.weight")->data<uint16_t>()[1]), 2.0f);
    EXPECT_EQ(h->metadata.at("easel.variant"), "fp16");
}

TEST(DiffusersFolder, MissingVariantFallsBackWithANote) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto w = load_component_weights(f, "unet", "bf16");  // no bf16 files: the default weights, noted
    ASSERT_TRUE(w) << w.error().to_string();
    EXPECT_EQ(w->find("conv_in.weight")->dtype(), DType::F32);
    EXPECT_EQ(w->metadata.at("easel.variant"), "");
    EXPECT_NE(w->metadata.at("easel.weights_note").find("'bf16'"), std::string::npos);

    auto v = load_component_weights(f, "vae");  // only an fp16 variant exists
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(v->find("decoder.conv_in.weight")->dtype(), DType::F16);
    EXPECT_EQ(v->metadata.at("easel.variant"), "fp16");
    EXPECT_NE(v->metadata.at("easel.weights_note").find("'fp16' variant"), std::string::npos);

    auto v16 = load_component_weights(f, "vae", "fp16");  // asked for and found: no note
    ASSERT_TRUE(v16) << v16.error().to_string();
    EXPECT_EQ(v16->metadata.count("easel.weights_note"), 0u);
}

TEST(DiffusersFolder, LoadsShardedWeights) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto files = find_component_weights(f, "text_encoder");
    ASSERT_TRUE(files) << files.error().to_string();
    EXPECT_EQ(files->files.size(), 2u);
    EXPECT_NE(files->index_file.find("model.safetensors.index.json"), std::string::npos);
    auto w = load_component_weights(f, "text_encoder");
    ASSERT_TRUE(w) << w.error().to_string();
    EXPECT_EQ(w->size(), 3u);
    EXPECT_EQ(w->find("a.weight")->data<float>()[1], 2.0f);
    EXPECT_EQ(w->find("b.weight")->data<float>()[0], 3.0f);
    EXPECT_EQ(w->find("c.bias")->data<float>()[1], 5.0f);
    EXPECT_EQ(w->metadata.at("format"), "pt");
}

TEST(DiffusersFolder, ShardedVariantOnly) {
    // A component that ships only sharded fp16 weights: found with no variant requested (noted), and with it.
    const fs::path d = copy_of_tiny("sharded_variant");
    const fs::path te = d / "text_encoder";
    fs::rename(te / "model.safetensors.index.json", te / "model.safetensors.index.fp16.json");
    auto f = open_or_fail(d.string());
    auto w = load_component_weights(f, "text_encoder");
    ASSERT_TRUE(w) << w.error().to_string();
    EXPECT_EQ(w->size(), 3u);
    EXPECT_EQ(w->metadata.at("easel.variant"), "fp16");
    EXPECT_NE(w->metadata.at("easel.weights_note").find("'fp16' variant"), std::string::npos);
    auto v = load_component_weights(f, "text_encoder", "fp16");
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(v->metadata.count("easel.weights_note"), 0u);
}

TEST(DiffusersFolder, ComponentWithoutWeightsIsNotFound) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto w = load_component_weights(f, "tokenizer");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), ErrorCode::NotFound);
    expect_contains(w.error(), {"no weights for component 'tokenizer'"});
}

TEST(DiffusersFolder, UnknownOrMissingComponent) {
    DiffusersFolder f = open_or_fail(kTiny);
    auto u = load_component_weights(f, "text_encoder_2");
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code(), ErrorCode::NotFound);
    expect_contains(u.error(), {"'text_encoder_2'", "unet", "vae"});
    auto sc = load_component_weights(f, "safety_checker");
    ASSERT_FALSE(sc);
    expect_contains(sc.error(), {"'safety_checker'", "folder is missing"});
    auto bad = load_component_weights(f, "../unet");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
}

TEST(DiffusersFolderErrors, MissingShard) {
    const fs::path d = copy_of_tiny("missing_shard");
    fs::remove(d / "text_encoder" / "model-00002-of-00002.safetensors");
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), ErrorCode::NotFound);
    expect_contains(w.error(), {"model-00002-of-00002.safetensors", "missing", "model.safetensors.index.json"});
}

TEST(DiffusersFolderErrors, ShardNameEscapesFolder) {
    const fs::path d = copy_of_tiny("traversal");
    write_text(d / "text_encoder" / "model.safetensors.index.json",
               R"({"weight_map": {"a.weight": "../../unet/diffusion_pytorch_model.safetensors"}})");
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), ErrorCode::BadFile);
    expect_contains(w.error(), {"'a.weight'", "not a plain file name"});
}

TEST(DiffusersFolderErrors, IndexListsTensorShardLacks) {
    const fs::path d = copy_of_tiny("lacking");
    write_text(d / "text_encoder" / "model.safetensors.index.json",
               R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                  "z.weight": "model-00001-of-00002.safetensors",
                                  "b.weight": "model-00002-of-00002.safetensors"}})");
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), ErrorCode::BadFile);
    expect_contains(w.error(), {"model-00001-of-00002.safetensors", "'z.weight'", "does not hold it"});
}

TEST(DiffusersFolderErrors, TensorInTwoShards) {
    const fs::path d = copy_of_tiny("dup");
    WeightSet extra;
    ASSERT_TRUE(extra.add("a.weight", Tensor::zeros({2})));  // also in shard 1
    ASSERT_TRUE(extra.add("x.weight", Tensor::zeros({1})));
    ASSERT_TRUE(write_safetensors((d / "text_encoder" / "model-00002-of-00002.safetensors").string(), extra));
    write_text(d / "text_encoder" / "model.safetensors.index.json",
               R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                  "x.weight": "model-00002-of-00002.safetensors"}})");
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    expect_contains(w.error(), {"'a.weight'", "more than once"});
}

TEST(DiffusersFolderErrors, CorruptShard) {
    const fs::path d = copy_of_tiny("corrupt");
    const fs::path shard = d / "text_encoder" / "model-00002-of-00002.safetensors";
    fs::resize_file(shard, fs::file_size(shard) - 4);
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), ErrorCode::BadFile);
    expect_contains(w.error(), {shard.string(), "data_offsets"});
}

TEST(DiffusersFolderErrors, IndexWithoutWeightMap) {
    const fs::path d = copy_of_tiny("no_map");
    write_text(d / "text_encoder" / "model.safetensors.index.json", R"({"metadata": {}})");
    auto w = load_component_weights(open_or_fail(d.string()), "text_encoder");
    ASSERT_FALSE(w);
    expect_contains(w.error(), {"model.safetensors.index.json", "weight_map"});
}

TEST(DiffusersFolderErrors, NotAFolderOrNoModelIndex) {
    auto file = open_diffusers_folder(kTiny + "/model_index.json");
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().code(), ErrorCode::InvalidArgument);
    auto none = open_diffusers_folder(kTiny + "/no_such_folder");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ErrorCode::Io);
    auto unet = open_diffusers_folder(kTiny + "/unet");
    ASSERT_FALSE(unet);
    EXPECT_EQ(unet.error().code(), ErrorCode::BadFile);
    expect_contains(unet.error(), {"model_index.json"});
}

TEST(DiffusersFolderErrors, BadConfigJson) {
    const fs::path d = copy_of_tiny("bad_config");
    write_text(d / "unet" / "config.json", "{\"in_channels\": ");
    auto c = component_config(open_or_fail(d.string()), "unet");
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), ErrorCode::BadFile);
    expect_contains(c.error(), {"config.json", "not valid JSON"});
    write_text(d / "unet" / "config.json", "[1]");
    c = component_config(open_or_fail(d.string()), "unet");
    ASSERT_FALSE(c);
    expect_contains(c.error(), {"array", "expected an object"});
}

TEST(ModelIndexParsing, Rules) {
    auto ok = parse_model_index(R"({"_class_name": "P", "unet": ["diffusers", "U"], "x": 1, "_name_or_path": "a/b"})", "f");
    ASSERT_TRUE(ok) << ok.error().to_string();
    EXPECT_EQ(ok->components.size(), 1u);
    EXPECT_EQ(ok->options.at("x"), "1");
    EXPECT_EQ(ok->options.at("_name_or_path"), "\"a/b\"");

    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    auto nested = parse_model_index(R"({"_class_name": "P", "_deep": )" + deep + "}", "f");
    ASSERT_TRUE(nested) << nested.error().to_string();
    EXPECT_EQ(nested->options.at("_deep"), "[... nested too deep ...]");
    auto bad_nested = parse_model_index(R"({"_class_name": "P", "unet": )" + deep + "}", "f");
    ASSERT_FALSE(bad_nested);
    expect_contains(bad_nested.error(), {"component 'unet'", "nested too deep"});

    auto no_class = parse_model_index(R"({"unet": ["diffusers", "U"]})", "f");
    ASSERT_FALSE(no_class);
    expect_contains(no_class.error(), {"f/model_index.json", "_class_name"});
    auto half = parse_model_index(R"({"_class_name": "P", "unet": ["diffusers"]})", "f");
    ASSERT_FALSE(half);
    expect_contains(half.error(), {"component 'unet'", "[library, class]"});
    auto mixed = parse_model_index(R"({"_class_name": "P", "unet": ["diffusers", null]})", "f");
    ASSERT_FALSE(mixed);
    auto traversal = parse_model_index(R"({"_class_name": "P", "..": ["diffusers", "U"]})", "f");
    ASSERT_FALSE(traversal);
    expect_contains(traversal.error(), {"'..'", "plain folder name"});
    auto array = parse_model_index("[]", "f");
    ASSERT_FALSE(array);
    auto cls = parse_model_index(R"({"_class_name": 3})", "f");
    ASSERT_FALSE(cls);
    expect_contains(cls.error(), {"_class_name", "expected a string"});
}

TEST(WeightIndexParsing, Rules) {
    auto ok = parse_weight_index(R"({"metadata": {"total_size": 8}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})", "i");
    ASSERT_TRUE(ok) << ok.error().to_string();
    EXPECT_EQ(ok->size(), 2u);
    EXPECT_EQ(ok->at("b"), "s1.safetensors");
    for (const char* bad : {R"({"weight_map": {"a": 3}})", R"({"weight_map": {"a": "/abs.safetensors"}})",
                            R"({"weight_map": {"a": ".."}})", R"({"weight_map": {}})", R"({"weight_map": []})",
                            R"({"weight_map": {"a": "x\\y"}})", "nope"}) {
        auto r = parse_weight_index(bad, "i");
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().code(), ErrorCode::BadFile) << bad;
        }
    }
}
