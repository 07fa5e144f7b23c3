// `easel serve`'s add-ons over HTTP: LoRAs from the prompt (merged in place, kept for a job with the same set, the
// GGUF fallback), AUTOMATIC1111's ControlNet extension API (units, preprocessors, IP-Adapter units) and the
// embeddings folder; each image equals the library's with the same add-on.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "io/image.h"
#include "io/image_filters.h"
#include "pipeline/controlnet.h"
#include "pipeline/families/sd.h"
#include "pipeline/embeddings.h"
#include "pipeline/generate.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/lora.h"
#include "server/request.h"
#include "server_fixture.h"

using namespace easel;
using namespace easel::testing;

namespace {

class Http : public ServerFixture {};

// <lora:NAME:MULT> in a prompt: the worker merges the LoRA into its loaded model in place, the image is the
// library's with the same LoRA, the infotext keeps the tag and records "Lora hashes"; the next request without it
// gets the base image bit for bit. /sdapi/v1/loras lists the folder; unknown names, paths and LoRAs for another
// architecture are refused before the job is queued.
TEST_F(Http, AppliesLorasFromThePrompt) {
    const std::string loras = std::string(EASEL_GOLDEN_DIR) + "/lora";
    server::ServeOptions o;
    o.models = {std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1"};
    o.lora_dir = loras;
    start(o);
    const json req = {{"prompt", "a red circle <lora:sd1_kohya:0.8>"}, {"seed", 3}, {"steps", 4}, {"width", 32}, {"height", 32},
                      {"sampler_name", "Euler"}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    auto file = read_lora(loras + "/sd1_kohya.safetensors", load_model_spec(o.models[0], LoadOptions{})->info);
    ASSERT_TRUE(file) << file.error().to_string();
    EXPECT_NE(infotext.find("a red circle <lora:sd1_kohya:0.8>"), std::string::npos) << infotext;
    EXPECT_NE(infotext.find(fmt::format("Lora hashes: \"sd1_kohya: {}\"", (*file)->short_hash())), std::string::npos) << infotext;

    GenerateParams p;
    p.prompt = "a red circle <lora:sd1_kohya:0.8>";
    p.seed = 3;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = SamplerKind::Euler;
    LoadOptions with;
    with.adapters.push_back(lora_adapter(*file, 0.8, 0.8));
    auto lora_model = load_model(o.models[0], with);
    auto base_model = load_model(o.models[0], LoadOptions{});
    ASSERT_TRUE(lora_model && base_model);
    auto want = generate(**lora_model, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);
    // Then another multiplier (taken off, merged again): each is the library's image with the LoRA merged at load.
    EXPECT_EQ(decode_b64_png(r1b["images"][0]).pixels, (*want)[0].image.pixels) << "the kept set changed";
    json half = req;
    half["prompt"] = "a red circle <lora:sd1_kohya:0.4>";
    auto [s1c, r1c] = post("/sdapi/v1/txt2img", half);
    ASSERT_EQ(s1c, 200) << r1c.dump();
    {
        LoadOptions w04;
        w04.adapters.push_back(lora_adapter(*file, 0.4, 0.4));
        auto m04 = load_model(o.models[0], w04);
        ASSERT_TRUE(m04) << m04.error().to_string();
        GenerateParams p04 = p;
        p04.prompt = half["prompt"];
        auto want04 = generate(**m04, p04);
        ASSERT_TRUE(want04) << want04.error().to_string();
        EXPECT_EQ(decode_b64_png(r1c["images"][0]).pixels, (*want04)[0].image.pixels) << "the set was not replaced";
    }

    json plain = req;
    plain["prompt"] = "a red circle";
    auto [s2, r2] = post("/sdapi/v1/txt2img", plain);
    ASSERT_EQ(s2, 200) << r2.dump();
    p.prompt = "a red circle";
    auto base = generate(**base_model, p);
    ASSERT_TRUE(base);
    EXPECT_EQ(decode_b64_png(r2["images"][0]).pixels, (*base)[0].image.pixels) << "the base model did not come back";
    EXPECT_NE(decode_b64_png(r2["images"][0]).pixels, decode_b64_png(r1["images"][0]).pixels);

    auto [sl, list] = get("/sdapi/v1/loras");
    ASSERT_EQ(sl, 200);
    ASSERT_TRUE(list.is_array());
    EXPECT_EQ(list.size(), list_lora_files(loras).size());
    bool found = false;
    for (const json& l : list)
        if (l["name"] == "sd1_kohya") {
            found = true;
            EXPECT_EQ(l["path"], loras + "/sd1_kohya.safetensors");
            EXPECT_TRUE(l["metadata"].is_object());
        }
    EXPECT_TRUE(found) << list.dump();

    for (const auto& [prompt, status, needle] :
         {std::tuple<std::string, int, std::string>{"x <lora:nope:1>", 404, "no LoRA named 'nope'"},
          {"x <lora:../pipeline_sd1/x:1>", 400, "not by a path"},
          {"x <lora:CMakeCache.txt:1>", 404, "no LoRA named 'CMakeCache.txt'"},  // a file in the server's folder
          {"x <lora:sdxl_kohya:1>", 400, "text_encoder_2"},
          {"x <lora:sd1_kohya:lots>", 400, "not a multiplier"}}) {
        json bad = req;
        bad["prompt"] = prompt;
        auto [sb, rb] = post("/sdapi/v1/txt2img", bad);
        EXPECT_EQ(sb, status) << prompt << ": " << rb.dump();
        EXPECT_NE(rb.dump().find(needle), std::string::npos) << rb.dump();
    }
}

// A GGUF model's quantized weights cannot be rebuilt in place, so the worker loads the model again with the LoRAs
// merged, beside the base, and uses that for the job (and for a next job with the same set); jobs without LoRAs
// still get the base model. Each image equals the library's.
TEST_F(Http, AppliesLorasToAGgufModelByLoadingItMerged) {
    const std::string gguf = std::string(EASEL_GOLDEN_DIR) + "/sdxl_gguf_sdcpp/tiny-sdxl-q8_0.gguf";
    server::ServeOptions o;
    o.models = {gguf};
    o.lora_dir = std::string(EASEL_GOLDEN_DIR) + "/lora";
    o.load.vocab_path = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl/tokenizer";
    start(o);
    const json req = {{"prompt", "a red circle <lora:sdxl_kohya:0.8>"}, {"seed", 5}, {"steps", 3}, {"width", 64},
                      {"height", 64}, {"sampler_name", "Euler"}};
    GenerateParams p;
    p.prompt = req["prompt"];
    p.seed = 5;
    p.steps = 3;
    p.width = p.height = 64;
    p.sampler = SamplerKind::Euler;
    LoadOptions base_load;
    base_load.vocab_path = o.load.vocab_path;
    auto spec = load_model_spec(gguf, base_load);
    ASSERT_TRUE(spec) << spec.error().to_string();
    auto file = read_lora(o.lora_dir + "/sdxl_kohya.safetensors", spec->info);
    ASSERT_TRUE(file) << file.error().to_string();
    LoadOptions with = base_load;
    with.adapters.push_back(lora_adapter(*file, 0.8, 0.8));
    auto lora_model = load_model(gguf, with);
    auto base_model = load_model(gguf, base_load);
    ASSERT_TRUE(lora_model) << lora_model.error().to_string();
    ASSERT_TRUE(base_model) << base_model.error().to_string();
    auto want = generate(**lora_model, p);
    ASSERT_TRUE(want) << want.error().to_string();
    p.prompt = "a red circle";
    auto want_base = generate(**base_model, p);
    ASSERT_TRUE(want_base) << want_base.error().to_string();
    ASSERT_NE((*want)[0].image.pixels, (*want_base)[0].image.pixels) << "the LoRA changes nothing: a useless test";

    for (int round = 0; round < 2; ++round) {  // the second LoRA job finds the merged model already loaded
        auto [s1, r1] = post("/sdapi/v1/txt2img", req);
        ASSERT_EQ(s1, 200) << r1.dump();
        EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels) << "round " << round;
        EXPECT_NE(json::parse(r1["info"].get<std::string>())["infotexts"][0].get<std::string>().find("Lora hashes"),
                  std::string::npos);
        json plain = req;
        plain["prompt"] = "a red circle";
        auto [s2, r2] = post("/sdapi/v1/txt2img", plain);
        ASSERT_EQ(s2, 200) << r2.dump();
        EXPECT_EQ(decode_b64_png(r2["images"][0]).pixels, (*want_base)[0].image.pixels) << "round " << round;
    }
}

// AUTOMATIC1111's ControlNet extension API: a unit in alwayson_scripts.controlnet.args names a model of the
// server's ControlNet folder ("name [hash]" as A1111 lists them) and sends its control map; the image equals the
// library's with the same unit, the infotext records it, and units that cannot run get a 4xx naming the field.
TEST_F(Http, RunsControlNetUnits) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/controlnet";
    server::ServeOptions o;
    o.models = {std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1"};
    o.controlnet_dir = dir;
    start(o);
    auto [sm, models] = get("/controlnet/model_list");
    ASSERT_EQ(sm, 200);
    EXPECT_EQ(models["model_list"], json::array({"sd1_a", "sd1_a_ldm", "sd1_b_ldm", "sdxl_a"})) << models.dump();
    auto control_png = server::read_whole_file(dir + "/control_c.png");  // 49x35: cropped to the square output
    ASSERT_TRUE(control_png);
    const json unit = {{"enabled", true}, {"module", "none"}, {"model", "sd1_a_ldm [0123abcd]"},
                       {"input_image", server::base64_encode(*control_png)}, {"weight", 0.7}, {"guidance_start", 0.0},
                       {"guidance_end", 0.8}, {"control_mode", "Balanced"}, {"resize_mode", "Crop and Resize"}};
    const json req = {{"prompt", "a red circle"}, {"seed", 3}, {"steps", 4}, {"width", 32}, {"height", 32},
                      {"sampler_name", "Euler"}, {"alwayson_scripts", {{"controlnet", {{"args", json::array({unit})}}}}}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    EXPECT_NE(infotext.find("ControlNet 0: \"Module: none, Model: sd1_a_ldm, Weight: 0.7, Guidance Start: 0, Guidance End: 0.8"),
              std::string::npos) << infotext;

    auto m = load_model(o.models[0], LoadOptions{});
    ASSERT_TRUE(m);
    auto net = load_controlnet(dir + "/sd1_a_ldm.safetensors", (*m)->info, Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    auto img = read_image(dir + "/control_c.png");
    ASSERT_TRUE(img);
    GenerateParams p;
    p.prompt = "a red circle";
    p.seed = 3;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = SamplerKind::Euler;
    p.control.push_back({.net = *net, .image = *img, .scale = 0.7, .start = 0.0, .end = 0.8, .resize = ControlResize::Crop});
    auto want = generate(**m, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);
    p.control.clear();
    auto plain = generate(**m, p);
    ASSERT_TRUE(plain);
    EXPECT_NE(decode_b64_png(r1["images"][0]).pixels, (*plain)[0].image.pixels) << "the ControlNet did nothing";

    for (const auto& [field, value, status, needle] :
         {std::tuple<std::string, json, int, std::string>{"model", "nope", 404, "no ControlNet named 'nope'"},
          {"model", "../controlnet/sd1_a", 400, "by its file or folder name"},
          {"model", "sdxl_a", 400, "does not fit the model"},
          {"module", "depth_midas", 400, "preprocessor 'depth_midas' is not available"},
          {"input_image", "not base64!", 400, "input_image"},
          {"weight", "heavy", 400, "weight"},
          {"guidance_end", 2.0, 400, "expected 0 <= start < end <= 1"},
          {"control_mode", 3, 400, "control_mode"},
          {"resize_mode", "Stretch", 400, "resize_mode"},
          {"resize_mode", 3, 400, "resize_mode"}}) {
        json bad = req;
        bad["alwayson_scripts"]["controlnet"]["args"][0][field] = value;
        auto [sb, rb] = post("/sdapi/v1/txt2img", bad);
        EXPECT_EQ(sb, status) << field << ": " << rb.dump();
        EXPECT_NE(rb.dump().find(needle), std::string::npos) << field << ": " << rb.dump();
        EXPECT_EQ(rb.dump().find(dir), std::string::npos) << "the server's folder is in the answer: " << rb.dump();
    }
    json other = req;
    other["alwayson_scripts"] = {{"ADetailer", {{"args", json::array()}}}};
    auto [so, ro] = post("/sdapi/v1/txt2img", other);
    EXPECT_EQ(so, 400) << ro.dump();
    json off = req;
    off["alwayson_scripts"]["controlnet"]["args"][0]["enabled"] = false;  // a unit turned off: a plain image
    auto [s2, r2] = post("/sdapi/v1/txt2img", off);
    ASSERT_EQ(s2, 200) << r2.dump();
    EXPECT_EQ(decode_b64_png(r2["images"][0]).pixels, (*plain)[0].image.pixels);
}

// Model-free preprocessors: a canny unit gets the library's image (canny at the unit's processor_res, as the
// extension runs it; "pixel perfect" picks the resolution from the sizes), /controlnet/detect shows the same map;
// an unknown module or a threshold out of range is 400.
TEST_F(Http, RunsControlNetPreprocessors) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/controlnet";
    server::ServeOptions o;
    o.models = {std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1"};
    o.controlnet_dir = dir;
    start(o);
    const std::string photo_path = std::string(EASEL_GOLDEN_DIR) + "/preprocessors/shapes_150x113.png";
    auto photo_png = server::read_whole_file(photo_path);
    ASSERT_TRUE(photo_png);
    auto photo = read_image(photo_path);
    ASSERT_TRUE(photo);
    const json detect = {{"controlnet_module", "canny"}, {"controlnet_input_images", json::array({server::base64_encode(*photo_png)})},
                         {"controlnet_processor_res", 512}, {"controlnet_threshold_a", 50}, {"controlnet_threshold_b", 150}};
    auto [sd, rd] = post("/controlnet/detect", detect);
    ASSERT_EQ(sd, 200) << rd.dump();
    const Image map = decode_b64_png(rd["images"][0]);
    const PreprocessorSpec at512{.module = "canny", .threshold_a = 50, .threshold_b = 150, .resolution = 512};
    auto map512 = run_preprocessor(at512, *photo);
    ASSERT_TRUE(map512) << map512.error().to_string();
    EXPECT_EQ(map.width, 680);  // 150x113 with its shorter side at 512
    EXPECT_EQ(map.pixels, map512->pixels);

    const json unit = {{"enabled", true}, {"module", "canny"}, {"model", "sd1_a"}, {"input_image", server::base64_encode(*photo_png)},
                       {"threshold_a", 50}, {"threshold_b", 150}, {"processor_res", 512}, {"resize_mode", 0}};
    const json req = {{"prompt", "a red circle"}, {"seed", 3}, {"steps", 4}, {"width", 32}, {"height", 32},
                      {"sampler_name", "Euler"}, {"alwayson_scripts", {{"controlnet", {{"args", json::array({unit})}}}}}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    EXPECT_NE(infotext.find("ControlNet 0: \"Module: canny, Model: sd1_a, Weight: 1, Processor Res: 512, Threshold A: 50, "
                            "Threshold B: 150"),
              std::string::npos) << infotext;
    auto m = load_model(o.models[0], LoadOptions{});
    ASSERT_TRUE(m);
    auto net = load_controlnet(dir + "/sd1_a", (*m)->info, Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    GenerateParams p;
    p.prompt = "a red circle";
    p.seed = 3;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = SamplerKind::Euler;
    p.control.push_back({.net = *net, .image = *photo, .preprocessor = at512});
    auto want = generate(**m, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);
    // "Pixel Perfect": 150x113 onto 32x32, Just Resize: max(32 / 113, 32 / 150) x 113 = 32.
    json perfect = req;
    perfect["alwayson_scripts"]["controlnet"]["args"][0]["pixel_perfect"] = true;
    auto [sp, rp] = post("/sdapi/v1/txt2img", perfect);
    ASSERT_EQ(sp, 200) << rp.dump();
    EXPECT_NE(json::parse(rp["info"].get<std::string>())["infotexts"][0].get<std::string>().find("Processor Res: 32,"),
              std::string::npos) << rp.dump();

    for (const auto& [field, value, needle] :
         {std::tuple<std::string, json, std::string>{"module", "depth_midas", "preprocessor 'depth_midas' is not available"},
          {"threshold_b", 400, "between 1 and 255"}}) {
        json bad = req;
        bad["alwayson_scripts"]["controlnet"]["args"][0][field] = value;
        auto [sb, rb] = post("/sdapi/v1/txt2img", bad);
        EXPECT_EQ(sb, 400) << field << ": " << rb.dump();
        EXPECT_NE(rb.dump().find(needle), std::string::npos) << field << ": " << rb.dump();
    }
    json bad_detect = detect;
    bad_detect["controlnet_module"] = "openpose";
    auto [sbd, rbd] = post("/controlnet/detect", bad_detect);
    EXPECT_EQ(sbd, 400) << rbd.dump();
}

// IP-Adapter units as AUTOMATIC1111's ControlNet extension takes them (module ip-adapter_clip_*, the adapter in the
// ControlNet folder): the image encoder found beside the adapter, the library's image, the unit in the infotext;
// a guidance window as the library applies it in k-diffusion mode; a preprocessor that names another tower, an
// empty window, an adapter of another family are 4xx.
TEST_F(Http, RunsIPAdapterUnits) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/ip_adapter";
    server::ServeOptions o;
    o.models = {std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1"};
    o.controlnet_dir = dir;
    start(o);
    auto [sl, modules] = get("/controlnet/module_list");
    ASSERT_EQ(sl, 200);
    EXPECT_NE(modules.dump().find("ip-adapter_clip_h"), std::string::npos) << modules.dump();
    auto ref_png = server::read_whole_file(dir + "/ip_ref_b.png");
    ASSERT_TRUE(ref_png);
    const json unit = {{"enabled", true}, {"module", "ip-adapter-auto"}, {"model", "sd1_plus [0123abcd]"},
                       {"image", server::base64_encode(*ref_png)}, {"weight", 0.6}, {"control_mode", 2}};
    const json req = {{"prompt", "a red circle"}, {"seed", 3}, {"steps", 4}, {"width", 32}, {"height", 32},
                      {"sampler_name", "Euler"}, {"alwayson_scripts", {{"controlnet", {{"args", json::array({unit})}}}}}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    EXPECT_NE(infotext.find("ControlNet 0: \"Module: ip-adapter_clip (image_encoder), Model: sd1_plus, Weight: 0.6"),
              std::string::npos) << infotext;

    auto m = load_model(o.models[0], LoadOptions{});
    ASSERT_TRUE(m);
    auto adapter = load_ip_adapter(dir + "/sd1_plus.safetensors", (*m)->info, Precision::F32);
    ASSERT_TRUE(adapter) << adapter.error().to_string();
    auto encoder = load_image_encoder(dir + "/image_encoder", Precision::F32);
    ASSERT_TRUE(encoder) << encoder.error().to_string();
    auto img = read_image(dir + "/ip_ref_b.png");
    ASSERT_TRUE(img);
    GenerateParams p;
    p.prompt = "a red circle";
    p.seed = 3;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = SamplerKind::Euler;
    p.ip_adapters.push_back({.adapter = *adapter, .encoder = *encoder, .images = {*img}, .scale = 0.6});
    auto want = generate(**m, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);
    p.ip_adapters.clear();
    auto plain = generate(**m, p);
    ASSERT_TRUE(plain);
    EXPECT_NE(decode_b64_png(r1["images"][0]).pixels, (*plain)[0].image.pixels) << "the IP-Adapter did nothing";

    // A guidance window: of the 4 steps the adapter acts in the last only (A1111's rule: a step's first call sees
    // the step before, so the counter reads 0, 0, 1, 2 of 4).
    json windowed = req;
    windowed["alwayson_scripts"]["controlnet"]["args"][0]["guidance_start"] = 0.5;
    auto [sw, rw] = post("/sdapi/v1/txt2img", windowed);
    ASSERT_EQ(sw, 200) << rw.dump();
    EXPECT_NE(json::parse(rw["info"].get<std::string>())["infotexts"][0].get<std::string>().find(
                  "Weight: 0.6, Guidance Start: 0.5, Guidance End: 1"), std::string::npos) << rw.dump();
    p.ip_adapters.push_back({.adapter = *adapter, .encoder = *encoder, .images = {*img}, .scale = 0.6, .start = 0.5});
    auto want_windowed = generate(**m, p);
    ASSERT_TRUE(want_windowed) << want_windowed.error().to_string();
    EXPECT_EQ(decode_b64_png(rw["images"][0]).pixels, (*want_windowed)[0].image.pixels);
    EXPECT_NE(decode_b64_png(rw["images"][0]).pixels, decode_b64_png(r1["images"][0]).pixels) << "the window changed nothing";

    for (const auto& [field, value, status, needle] :
         {std::tuple<std::string, json, int, std::string>{"module", "ip-adapter_clip_g", 404, "no image encoder for sd1_plus"},
          {"module", "ip-adapter_face_id", 400, "IP-Adapter units: module"},
          {"model", "sdxl_plain", 400, "does not fit the model"},
          {"model", "image_encoder", 404, "no ControlNet named 'image_encoder'"},
          {"guidance_start", 1.0, 400, "expected 0 <= start < end <= 1"}}) {
        json bad = req;
        bad["alwayson_scripts"]["controlnet"]["args"][0][field] = value;
        auto [sb, rb] = post("/sdapi/v1/txt2img", bad);
        EXPECT_EQ(sb, status) << field << ": " << rb.dump();
        EXPECT_NE(rb.dump().find(needle), std::string::npos) << field << ": " << rb.dump();
    }
}

// Textual-inversion embeddings: a prompt naming one gets the library's image with the same folder and "TI hashes";
// /sdapi/v1/embeddings sorts the folder as A1111 does (usable by the default model, or skipped).
TEST_F(Http, UsesEmbeddingsTheFolderHolds) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/embeddings";
    server::ServeOptions o;
    o.models = {std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1"};
    o.embeddings_dir = dir;
    start(o);
    const json req = {{"prompt", "a red circle, sd1_style"}, {"negative_prompt", "sd1_neg"}, {"seed", 5}, {"steps", 4},
                      {"width", 32}, {"height", 32}, {"sampler_name", "Euler"}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    EXPECT_NE(infotext.find("TI hashes: \"sd1_style: "), std::string::npos) << infotext;
    EXPECT_NE(infotext.find("sd1_neg: "), std::string::npos) << infotext;
    auto m = load_model(o.models[0], LoadOptions{});
    ASSERT_TRUE(m);
    GenerateParams p;
    p.prompt = "a red circle, sd1_style";
    p.negative_prompt = "sd1_neg";
    p.seed = 5;
    p.steps = 4;
    p.width = p.height = 32;
    p.sampler = SamplerKind::Euler;
    p.embeddings = load_embeddings_dir(dir).set;
    auto want = generate(**m, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);
    p.embeddings.reset();
    auto plain = generate(**m, p);
    ASSERT_TRUE(plain);
    EXPECT_NE(decode_b64_png(r1["images"][0]).pixels, (*plain)[0].image.pixels) << "the embeddings changed nothing";

    auto [se, list] = get("/sdapi/v1/embeddings");
    ASSERT_EQ(se, 200) << list.dump();
    for (const char* name : {"sd1_style", "sd1_neg", "sd1_one"}) EXPECT_TRUE(list["loaded"].contains(name)) << list.dump();
    for (const char* name : {"sdxl_style", "sd2_dim", "not_an_embedding"}) EXPECT_TRUE(list["skipped"].contains(name)) << list.dump();
    EXPECT_EQ(list["loaded"]["sd1_style"]["vectors"], 3) << list.dump();
}

}  // namespace
