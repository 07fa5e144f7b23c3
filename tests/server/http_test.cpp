// `easel serve` over HTTP with the embedded model: A1111's endpoints give the library's image for the same seed,
// the job API (status, SSE, images, cancel, the bounded queue), API keys (401, quotas, rate limits, revocation,
// isolation), limits and the error envelope, and the refusal to listen openly without authentication.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "io/c2pa.h"
#include "io/image.h"
#include "io/image_filters.h"
#include "pipeline/controlnet.h"
#include "pipeline/families/sd.h"
#include "pipeline/embeddings.h"
#include "pipeline/generate.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/lora.h"
#include "server/request.h"
#include "server/store.h"
#include "server_fixture.h"

using namespace easel;
using namespace easel::testing;

namespace {

bool is_error_envelope(const json& j, const std::string& code) {
    return j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].value("code", "") == code &&
           j["error"].contains("message") && j.contains("detail");
}

class Http : public ServerFixture {};

TEST_F(Http, PageAndOpenApiAreServed) {
    start();
    auto page = client_->Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
    EXPECT_NE(page->body.find("<html"), std::string::npos);
    auto js = client_->Get("/app.js");
    ASSERT_TRUE(js);
    EXPECT_EQ(js->status, 200);
    auto [st, api] = get("/openapi.json");
    ASSERT_EQ(st, 200);
    EXPECT_EQ(api.value("openapi", ""), "3.0.3");
    for (const char* p : {"/sdapi/v1/txt2img", "/v1/jobs", "/v1/jobs/{id}/events", "/sdapi/v1/progress"})
        EXPECT_TRUE(api["paths"].contains(p)) << p;
    auto [st404, e404] = get("/no/such/route");
    EXPECT_EQ(st404, 404);
    EXPECT_TRUE(is_error_envelope(e404, "not_found")) << e404.dump();
    auto [stf, ef] = get("/..%2f..%2fetc%2fpasswd.js");
    EXPECT_EQ(stf, 404);
}

// --sign-key/--sign-cert: every image the workers write carries a signed C2PA credential, and POST /v1/verify
// reports it (raw bytes or JSON base64), trusted by the server's --trust-anchor; an unmarked image is "none", a
// changed one "tampered", and a body that is no image a 400 naming the field.
TEST_F(Http, ImagesAreSignedAndVerified) {
    const std::filesystem::path dir = data_ / "signer";
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(make_c2pa_test_credentials((dir / "k.pem").string(), (dir / "c.pem").string(), (dir / "r.pem").string(), "server test", 1));
    server::ServeOptions o;
    o.limits.sign_key = (dir / "k.pem").string();
    o.limits.sign_cert = (dir / "c.pem").string();
    auto anchors = load_pem_certificates((dir / "r.pem").string());
    ASSERT_TRUE(anchors);
    o.trust_anchors = *anchors;
    start(o);
    auto [st, out] = post("/sdapi/v1/txt2img", {{"prompt", "a red circle"}, {"steps", 2}, {"width", 32}, {"height", 32}, {"seed", 3}});
    ASSERT_EQ(st, 200) << out.dump();
    const std::string b64 = out["images"][0].get<std::string>();
    auto [vs, v] = post("/v1/verify", {{"image", "data:image/png;base64," + b64}});
    ASSERT_EQ(vs, 200) << v.dump();
    EXPECT_EQ(v["verdict"], "signed") << v.dump(2);
    EXPECT_EQ(v["content_credential"]["trusted"], true);
    EXPECT_EQ(v["content_credential"]["assertions"]["easel.generation"]["model"], "tiny");
    EXPECT_EQ(v["content_credential"]["claim_generator"], "easel 0.1.0");
    auto bytes = server::base64_decode(b64, "image");
    ASSERT_TRUE(bytes);
    auto raw = client_->Post("/v1/verify", *bytes, "image/png");
    ASSERT_TRUE(raw);
    EXPECT_EQ(raw->status, 200);
    EXPECT_NE(raw->body.find("\"verdict\":\"signed\""), std::string::npos) << raw->body.substr(0, 300);
    std::string changed = *bytes;
    changed[changed.size() - 20] = char(changed[changed.size() - 20] ^ 1);
    auto bad = client_->Post("/v1/verify", changed, "image/png");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 200);
    EXPECT_NE(bad->body.find("\"verdict\":\"tampered\""), std::string::npos) << bad->body.substr(0, 300);
    auto plain = encode_image(Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 90)}, ImageFormat::Png);
    ASSERT_TRUE(plain);
    auto none = client_->Post("/v1/verify", std::string(plain->begin(), plain->end()), "image/png");
    ASSERT_TRUE(none);
    EXPECT_NE(none->body.find("\"verdict\":\"none\""), std::string::npos) << none->body.substr(0, 300);
    auto [es, e] = post("/v1/verify", {{"image", "bm90IGFuIGltYWdl"}});
    EXPECT_EQ(es, 400);
    EXPECT_TRUE(is_error_envelope(e, "bad_file") || is_error_envelope(e, "invalid_argument")) << e.dump();
    auto [ms, m] = post("/v1/verify", json::object());
    EXPECT_EQ(ms, 400);
    EXPECT_NE(m.dump().find("image"), std::string::npos) << m.dump();
}

// Every answer carries a request id for the access log: the client's when it is a plain token, else a new one.
TEST_F(Http, EveryAnswerCarriesARequestId) {
    start();
    auto given = client_->Get("/healthz", {{"X-Request-Id", "trace-42.a_b"}});
    ASSERT_TRUE(given);
    EXPECT_EQ(given->get_header_value("X-Request-Id"), "trace-42.a_b");
    auto odd = client_->Get("/v1/models", {{"X-Request-Id", "no spaces\"allowed"}});
    ASSERT_TRUE(odd);
    const std::string made = odd->get_header_value("X-Request-Id");
    EXPECT_EQ(made.size(), 16u) << made;
    auto missing = client_->Get("/no/such/route");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(missing->get_header_value("X-Request-Id").size(), 16u);
    EXPECT_NE(missing->get_header_value("X-Request-Id"), made);
}

TEST_F(Http, A1111Txt2ImgGivesTheLibrarysImageAndInfotext) {
    start();
    const json req = {{"prompt", "a red circle on a blue background"}, {"negative_prompt", ""}, {"seed", 7}, {"steps", 8},
                      {"width", 32}, {"height", 32}, {"sampler_name", "Euler a"}, {"cfg_scale", 6.5}, {"batch_size", 2}};
    auto [st, out] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(st, 200) << out.dump();
    ASSERT_TRUE(out["images"].is_array());
    ASSERT_EQ(out["images"].size(), 2u);
    ASSERT_TRUE(out["info"].is_string());
    const json info = json::parse(out["info"].get<std::string>());
    EXPECT_EQ(info["seed"], 7);
    EXPECT_EQ(info["all_seeds"], json({7, 8}));
    EXPECT_EQ(info["sampler_name"], "Euler a");
    EXPECT_EQ(info["infotexts"].size(), 2u);
    EXPECT_EQ(out["parameters"]["seed"], 7);
    EXPECT_EQ(out["parameters"]["steps"], 8);

    // The same request through the library, in this process.
    LoadOptions lo;
    auto m = load_sd_model(tiny_model_dir(), lo);
    ASSERT_TRUE(m) << m.error().to_string();
    GenerateParams p;
    p.prompt = req["prompt"];
    p.seed = 7;
    p.steps = 8;
    p.width = p.height = 32;
    p.cfg_scale = 6.5;
    p.sampler = SamplerKind::EulerAncestral;
    p.batch_size = 2;
    auto images = generate(**m, p);
    ASSERT_TRUE(images) << images.error().to_string();
    for (size_t i = 0; i < 2; ++i) {
        const Image got = decode_b64_png(out["images"][i].get<std::string>());
        const Image& want = (*images)[i].image;
        ASSERT_EQ(got.width, want.width);
        ASSERT_EQ(got.height, want.height);
        ASSERT_EQ(got.channels, want.channels);
        size_t differing = 0;
        for (size_t k = 0; k < want.pixels.size(); ++k) differing += got.pixels[k] != want.pixels[k];
        EXPECT_EQ(differing, 0u) << "image " << i << ": " << differing << " of " << want.pixels.size() << " bytes differ";
        EXPECT_EQ(info["infotexts"][i].get<std::string>(), (*images)[i].infotext);
    }

    // png-info reads the parameters back out of the returned PNG.
    auto [pst, pinfo] = post("/sdapi/v1/png-info", {{"image", out["images"][0]}});
    ASSERT_EQ(pst, 200) << pinfo.dump();
    EXPECT_EQ(pinfo["info"].get<std::string>(), (*images)[0].infotext);
    EXPECT_EQ(pinfo["parameters"]["Seed"], "7");
    EXPECT_EQ(pinfo["parameters"]["Prompt"], "a red circle on a blue background");

    // send_images false: parameters and info only.
    auto [st2, out2] = post("/sdapi/v1/txt2img", {{"prompt", "x"}, {"steps", 2}, {"width", 32}, {"height", 32}, {"send_images", false}});
    ASSERT_EQ(st2, 200) << out2.dump();
    EXPECT_TRUE(out2["images"].empty());
}

TEST_F(Http, A1111Img2ImgAndTheSmallEndpoints) {
    start();
    auto [st, t2i] = post("/sdapi/v1/txt2img", {{"prompt", "a green square"}, {"seed", 3}, {"steps", 4}, {"width", 32}, {"height", 32}});
    ASSERT_EQ(st, 200) << t2i.dump();
    auto [st2, i2i] = post("/sdapi/v1/img2img", {{"prompt", "a red square"}, {"seed", 3}, {"steps", 10}, {"denoising_strength", 0.5},
                                                 {"init_images", {t2i["images"][0]}}});
    ASSERT_EQ(st2, 200) << i2i.dump();
    const json info = json::parse(i2i["info"].get<std::string>());
    EXPECT_EQ(info["width"], 32);  // the init image's size
    EXPECT_DOUBLE_EQ(info["denoising_strength"].get<double>(), 0.5);
    EXPECT_NE(info["infotexts"][0].get<std::string>().find("Denoising strength: 0.5"), std::string::npos);

    auto [sm, models] = get("/sdapi/v1/sd-models");
    ASSERT_EQ(sm, 200);
    ASSERT_EQ(models.size(), 1u);
    EXPECT_EQ(models[0]["model_name"], "tiny");
    auto [so, opts] = get("/sdapi/v1/options");
    ASSERT_EQ(so, 200);
    EXPECT_EQ(opts["sd_model_checkpoint"], "tiny");
    auto [sp, set] = post("/sdapi/v1/options", {{"sd_model_checkpoint", "tiny"}});
    EXPECT_EQ(sp, 200) << set.dump();
    auto [sb, bad] = post("/sdapi/v1/options", {{"sd_model_checkpoint", "nonexistent.safetensors"}});
    EXPECT_EQ(sb, 404);
    EXPECT_NE(bad["error"]["message"].get<std::string>().find("no model 'nonexistent.safetensors'; this server has tiny"), std::string::npos)
        << bad.dump();
    auto [ss, samplers] = get("/sdapi/v1/samplers");
    ASSERT_EQ(ss, 200);
    EXPECT_GE(samplers.size(), 10u);
    auto [sc, scripts] = get("/sdapi/v1/scripts");
    ASSERT_EQ(sc, 200);
    EXPECT_EQ(scripts, json({{"txt2img", json::array()}, {"img2img", json::array()}}));
    auto [sl, loras] = get("/sdapi/v1/loras");
    EXPECT_EQ(sl, 200);
    EXPECT_EQ(loras, json::array());
    auto [spr, prog] = get("/sdapi/v1/progress");
    ASSERT_EQ(spr, 200);
    EXPECT_TRUE(prog.contains("progress") && prog.contains("state") && prog.contains("eta_relative"));
}

// AUTOMATIC1111's other inpainting options: masked content (inpainting_fill) and "Only masked"
// (inpaint_full_res), where width x height is the size the masked box is inpainted at and the output keeps the
// init image's size; outpainting is an init image grown by a side, the new part masked and filled.
TEST_F(Http, InpaintingOptionsAndOutpainting) {
    start();
    auto [st, t2i] = post("/sdapi/v1/txt2img", {{"prompt", "a green square"}, {"seed", 3}, {"steps", 4}, {"width", 48}, {"height", 32}});
    ASSERT_EQ(st, 200) << t2i.dump();
    Image mask{48, 32, 1, std::vector<uint8_t>(48 * 32, 0)};
    for (int y = 8; y < 20; ++y)
        for (int x = 28; x < 44; ++x) mask.pixels[size_t(y * 48 + x)] = 255;
    const std::string mask_b64 = png_b64(mask);
    json req = {{"prompt", "a red circle"}, {"seed", 5}, {"steps", 6}, {"denoising_strength", 0.8},
                {"init_images", {t2i["images"][0]}}, {"mask", mask_b64}, {"inpainting_fill", 0},
                {"inpaint_full_res", true}, {"inpaint_full_res_padding", 8}, {"width", 32}, {"height", 32}};
    auto [s1, r1] = post("/sdapi/v1/img2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    const Image img = decode_b64_png(r1["images"][0].get<std::string>());
    EXPECT_EQ(img.width, 48);  // the init image's size, not the 32x32 the box was inpainted at
    EXPECT_EQ(img.height, 32);
    const std::string info = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    for (const char* field : {"Size: 32x32", "Masked content: fill", "Inpaint area: Only masked", "Masked area padding: 8"})
        EXPECT_NE(info.find(field), std::string::npos) << field << " in " << info;
    // Outside the box (the mask's box grown by 8 and to 1:1) the picture is the init image's.
    const Image init = decode_b64_png(t2i["images"][0].get<std::string>());
    ASSERT_EQ(init.pixels.size(), img.pixels.size());
    EXPECT_EQ(img.pixels[0], init.pixels[0]);
    for (int fill : {1, 2, 3}) {
        json r = req;
        r["inpainting_fill"] = fill;
        r["inpaint_full_res"] = false;
        r.erase("width");
        r.erase("height");
        auto [s, out] = post("/sdapi/v1/img2img", r);
        EXPECT_EQ(s, 200) << fill << ": " << out.dump();
    }
    // Outpainting: 16 more pixels on the right, the new part masked, masked content "fill".
    Image wide{64, 32, 3, std::vector<uint8_t>(64 * 32 * 3, 0)};
    Image wide_mask{64, 32, 1, std::vector<uint8_t>(64 * 32, 0)};
    for (int y = 0; y < 32; ++y) {
        for (int x = 0; x < 48; ++x)
            for (int c = 0; c < 3; ++c) wide.pixels[size_t((y * 64 + x) * 3 + c)] = init.pixels[size_t((y * 48 + x) * 3 + c)];
        for (int x = 44; x < 64; ++x) wide_mask.pixels[size_t(y * 64 + x)] = 255;
    }
    json out_req = {{"prompt", "a field"}, {"seed", 6}, {"steps", 6}, {"denoising_strength", 1.0},
                    {"init_images", {png_b64(wide)}}, {"mask", png_b64(wide_mask)}, {"inpainting_fill", 0}};
    auto [so, outp] = post("/sdapi/v1/img2img", out_req);
    ASSERT_EQ(so, 200) << outp.dump();
    EXPECT_EQ(decode_b64_png(outp["images"][0].get<std::string>()).width, 64);
    // Bad values are refused with the field named, before any work.
    for (auto [field, value] : {std::pair{"inpainting_fill", json(4)}, std::pair{"inpaint_full_res_padding", json(-1)},
                                std::pair{"inpaint_full_res_padding", json(257)}, std::pair{"inpainting_fill", json("fill")}}) {
        json r = req;
        r[field] = value;
        auto [s, e] = post("/sdapi/v1/img2img", r);
        EXPECT_EQ(s, 400) << field << " " << value.dump() << ": " << e.dump();
        EXPECT_NE(e["error"]["message"].get<std::string>().find(field), std::string::npos) << e.dump();
    }
    json blank = req;
    blank["mask"] = png_b64(Image{48, 32, 1, std::vector<uint8_t>(48 * 32, 0)});
    auto [sb, eb] = post("/sdapi/v1/img2img", blank);
    EXPECT_EQ(sb, 400) << eb.dump();
    EXPECT_NE(eb["error"]["message"].get<std::string>().find("the mask is blank"), std::string::npos) << eb.dump();
    // One painted pixel blurs away to nothing at mask_blur 64: a clear error from the job, not a crash. (The worker
    // finds it, and a failed job's error reaches the client as A1111's 500 "generation_failed".)
    Image dot{48, 32, 1, std::vector<uint8_t>(48 * 32, 0)};
    dot.pixels[16 * 48 + 24] = 255;
    json blurred_away = req;
    blurred_away["mask"] = png_b64(dot);
    blurred_away["mask_blur"] = 64;
    auto [sd, ed] = post("/sdapi/v1/img2img", blurred_away);
    EXPECT_EQ(sd, 500) << ed.dump();
    EXPECT_TRUE(is_error_envelope(ed, "generation_failed")) << ed.dump();
    EXPECT_NE(ed.dump().find("the mask is blank once blurred by 64 px"), std::string::npos) << ed.dump();
    EXPECT_EQ(post("/sdapi/v1/img2img", req).first, 200);  // the worker is still there
    json no_full_res = req;
    no_full_res["inpaint_full_res"] = false;  // then the size must be the init image's
    EXPECT_EQ(post("/sdapi/v1/img2img", no_full_res).first, 400);
}

// The history: search by prompt, filter by model, remove a finished job with its images.
TEST_F(Http, HistorySearchFilterAndPurge) {
    start();
    std::vector<std::string> ids;
    for (const char* prompt : {"a Red circle", "a blue square", "a red square"}) {
        auto [s, j] = post("/v1/jobs", {{"prompt", prompt}, {"steps", 2}, {"seed", 1}});
        ASSERT_EQ(s, 202) << j.dump();
        ids.push_back(j["id"]);
    }
    for (const std::string& id : ids) ASSERT_EQ(wait_job(id)["status"], "done");
    auto [s1, red] = get("/v1/jobs?q=RED");
    ASSERT_EQ(s1, 200) << red.dump();
    ASSERT_EQ(red["jobs"].size(), 2u) << red.dump();
    EXPECT_EQ(red["jobs"][0]["id"], ids[2]);  // newest first
    EXPECT_EQ(red["jobs"][1]["id"], ids[0]);
    EXPECT_EQ(get("/v1/jobs?q=red%20square").second["jobs"].size(), 1u);
    EXPECT_EQ(get("/v1/jobs?model=tiny").second["jobs"].size(), 3u);
    EXPECT_EQ(get("/v1/jobs?model=other&q=red").second["jobs"].size(), 0u);
    EXPECT_EQ(get("/v1/jobs?q=%25").second["jobs"].size(), 0u);  // no wildcard: a literal %
    EXPECT_EQ(get("/v1/jobs?q=" + std::string(1001, 'a')).first, 400);

    // Purge: the record and its images go; a second purge finds nothing; a plain DELETE still only cancels.
    ASSERT_EQ(client_->Get("/v1/jobs/" + ids[0] + "/images/0")->status, 200);
    auto d = client_->Delete("/v1/jobs/" + ids[0] + "?purge=1");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->status, 200) << d->body;
    EXPECT_EQ(json::parse(d->body), json({{"id", ids[0]}, {"deleted", true}}));
    EXPECT_EQ(get("/v1/jobs/" + ids[0]).first, 404);
    EXPECT_EQ(client_->Get("/v1/jobs/" + ids[0] + "/images/0")->status, 404);
    EXPECT_FALSE(std::filesystem::exists(data_ / "images" / ids[0]));
    EXPECT_EQ(client_->Delete("/v1/jobs/" + ids[0] + "?purge=1")->status, 404);
    EXPECT_EQ(get("/v1/jobs?q=red").second["jobs"].size(), 1u);
    EXPECT_EQ(client_->Delete("/v1/jobs/" + ids[1])->status, 200);
    EXPECT_EQ(get("/v1/jobs/" + ids[1]).first, 200);  // a finished job's cancel leaves it

    // A job still running cannot be purged: 409, cancel first.
    auto [sl, long_job] = post("/v1/jobs", {{"prompt", "slow"}, {"width", 128}, {"height", 128}, {"steps", 150}});
    ASSERT_EQ(sl, 202);
    const std::string lid = long_job["id"];
    auto busy = client_->Delete("/v1/jobs/" + lid + "?purge=1");
    ASSERT_TRUE(busy);
    EXPECT_EQ(busy->status, 409) << busy->body;
    EXPECT_TRUE(is_error_envelope(json::parse(busy->body), "conflict")) << busy->body;
    EXPECT_EQ(client_->Delete("/v1/jobs/" + lid)->status, 200);
    EXPECT_NE(wait_job(lid)["status"], "running");
    EXPECT_EQ(client_->Delete("/v1/jobs/" + lid + "?purge=1")->status, 200);
}

// --taesd sd=FILE: while a client asks for previews, the worker draws them with the tiny autoencoder (8x the
// latent: 256x256 for this 128x128 job on the embedded model, whose VAE would give 128x128 and the linear map
// 32x32), every --preview-every steps.
TEST_F(Http, PreviewsComeFromTheTinyAutoencoder) {
    server::ServeOptions o;
    o.limits.taesd["sd"] = std::string(EASEL_GOLDEN_DIR) + "/taesd/tiny4_decoder.safetensors";
    o.limits.preview_every = 2;
    start(o);
    auto [s, j] = post("/v1/jobs", {{"prompt", "a red circle"}, {"width", 128}, {"height", 128}, {"steps", 150}});
    ASSERT_EQ(s, 202) << j.dump();
    const std::string id = j["id"];
    // Until the worker hears that a client watches, it keeps the cheap 32x32 preview of the latent (at most every
    // 250 ms), so the first answers may carry one of those; the tiny autoencoder's must follow.
    const std::string prefix = "data:image/png;base64,";
    int cheap = 0, tiny = 0;
    for (int i = 0; i < 1500 && tiny == 0; ++i) {
        const std::string preview = get("/v1/jobs/" + id + "?preview=1").second.value("preview", "");
        if (preview.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        ASSERT_EQ(preview.rfind(prefix, 0), 0u) << preview.substr(0, 40);
        const Image img = decode_b64_png(preview.substr(prefix.size()));
        if (img.width == 32 && img.height == 32) {
            ++cheap;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } else {
            EXPECT_EQ(img.width, 256);
            EXPECT_EQ(img.height, 256);
            ++tiny;
        }
    }
    EXPECT_EQ(tiny, 1) << "no preview from the tiny autoencoder while the job ran (" << cheap << " cheap ones seen)";
    EXPECT_EQ(del("/v1/jobs/" + id).first, 200);
    EXPECT_EQ(wait_job(id)["status"], "cancelled");
}

TEST_F(Http, ModelsDirAndSwitchingTheCheckpoint) {
    // Two entries for the same weights: the diffusers folder and the LDM single file (with its yaml).
    const auto dir = fresh_dir("models");
    namespace fs = std::filesystem;
    fs::create_directory_symlink(tiny_model_dir(), dir / "a-folder");
    fs::create_symlink(tiny_model_dir() + "/easel-tiny.safetensors", dir / "b-file.safetensors");
    fs::create_symlink(tiny_model_dir() + "/easel-tiny.yaml", dir / "b-file.yaml");
    std::ofstream(dir / "notes.txt") << "not a model";
    server::ServeOptions o;
    o.models_dir = dir.string();
    o.load.vocab_path = tiny_model_dir() + "/tokenizer";
    start(o);
    auto [sm, models] = get("/sdapi/v1/sd-models");
    ASSERT_EQ(sm, 200);
    ASSERT_EQ(models.size(), 2u) << models.dump();
    EXPECT_EQ(models[0]["title"], "a-folder");
    EXPECT_EQ(models[1]["title"], "b-file.safetensors");
    EXPECT_EQ(models[1]["model_name"], "b-file");
    EXPECT_EQ(get("/sdapi/v1/options").second["sd_model_checkpoint"], "a-folder");
    auto [sv, v1] = get("/v1/models");
    EXPECT_EQ(v1["models"][1]["loaded"], false) << "loaded when first needed";

    const json req = {{"prompt", "a yellow circle on a purple background"}, {"seed", 5}, {"steps", 6}, {"width", 32}, {"height", 32}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    EXPECT_EQ(json::parse(r1["info"].get<std::string>())["sd_model_name"], "a-folder");
    // A1111 clients switch models through the options (the title with a hash suffix is accepted too).
    auto [so, oo] = post("/sdapi/v1/options", {{"sd_model_checkpoint", "b-file.safetensors [0123456789]"}});
    ASSERT_EQ(so, 200) << oo.dump();
    EXPECT_EQ(get("/sdapi/v1/options").second["sd_model_checkpoint"], "b-file.safetensors");
    EXPECT_EQ(get("/v1/models").second["models"][1]["loaded"], true);
    auto [s2, r2] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s2, 200) << r2.dump();
    EXPECT_EQ(json::parse(r2["info"].get<std::string>())["sd_model_name"], "b-file");
    // The same weights through either loader give the same pixels.
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, decode_b64_png(r2["images"][0]).pixels) << "folder and single file differ";
    // A per-request override picks the other model without changing the default.
    json over = req;
    over["override_settings"] = {{"sd_model_checkpoint", "a-folder"}};
    auto [s3, r3] = post("/sdapi/v1/txt2img", over);
    ASSERT_EQ(s3, 200) << r3.dump();
    EXPECT_EQ(json::parse(r3["info"].get<std::string>())["sd_model_name"], "a-folder");
    EXPECT_EQ(get("/sdapi/v1/options").second["sd_model_checkpoint"], "b-file.safetensors");
    stop();
    fs::remove_all(dir);
}

TEST_F(Http, JobApiStreamsProgressAndKeepsImages) {
    start();
    auto [st, sub] = post("/v1/jobs", {{"prompt", "a small black circle at the top on a yellow background"}, {"seed", 11}});
    ASSERT_EQ(st, 202) << sub.dump();
    const std::string id = sub["id"];
    EXPECT_EQ(sub["queue_position"], 0);

    // Server-Sent Events: progress events, then "done" with the finished job.
    std::string stream;
    auto r = client_->Get(("/v1/jobs/" + id + "/events").c_str(), [&](const char* data, size_t n) {
        stream.append(data, n);
        return true;
    });
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    const size_t done_at = stream.find("event: done\ndata: ");
    ASSERT_NE(done_at, std::string::npos) << stream.substr(0, 500);
    const size_t data_start = done_at + std::string("event: done\ndata: ").size();
    const json final_job = json::parse(stream.substr(data_start, stream.find("\n\n", data_start) - data_start));
    EXPECT_EQ(final_job["status"], "done");

    const json job = wait_job(id);
    ASSERT_EQ(job["status"], "done") << job.dump();
    // Our API defaults to the model's native size, 20 steps and Euler a.
    EXPECT_EQ(job["params"]["width"], 32);
    EXPECT_EQ(job["params"]["steps"], 20);
    EXPECT_EQ(job["params"]["sampler_name"], "Euler a");
    // ... and the model's recommended CFG scale (the embedded model carries one; GET /v1/models shows it).
    const json listed = get("/v1/models").second["models"][0];
    ASSERT_TRUE(listed["cfg_scale"].is_number()) << listed.dump();
    EXPECT_EQ(job["params"]["cfg_scale"], listed["cfg_scale"]);
    EXPECT_EQ(listed["family"], "sd") << listed.dump();  // the page's model picker shows it
    EXPECT_EQ(job["images"].size(), 1u);
    EXPECT_EQ(job["images"][0]["seed"], 11);
    auto png = client_->Get(job["images"][0]["url"].get<std::string>().c_str());
    ASSERT_TRUE(png);
    EXPECT_EQ(png->status, 200);
    EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
    auto text = read_png_text(reinterpret_cast<const uint8_t*>(png->body.data()), png->body.size());
    ASSERT_TRUE(text);
    EXPECT_NE(text->at("parameters").find("Seed: 11"), std::string::npos);
    auto [s404, e404] = get("/v1/jobs/" + id + "/images/1");
    EXPECT_EQ(s404, 404);
    EXPECT_TRUE(is_error_envelope(e404, "not_found"));

    auto [sl, list] = get("/v1/jobs?limit=5");
    ASSERT_EQ(sl, 200);
    ASSERT_FALSE(list["jobs"].empty());
    EXPECT_EQ(list["jobs"][0]["id"], id);
    auto [sbad, bad] = get("/v1/jobs?limit=0");
    EXPECT_EQ(sbad, 400);
    auto [sunk, unk] = get("/v1/jobs/0123456789abcdef");
    EXPECT_EQ(sunk, 404);
    EXPECT_TRUE(is_error_envelope(unk, "not_found"));
}

// A batch is sampled together: the job stays at image 0 (the group's first) and its share done moves with the
// whole batch's steps, never going back while each image is decoded; every image keeps its own seed.
TEST_F(Http, ABatchProgressesTogether) {
    start();
    auto [st, sub] = post("/v1/jobs", {{"prompt", "a red circle"}, {"seed", 5}, {"steps", 8}, {"batch_size", 3}});
    ASSERT_EQ(st, 202) << sub.dump();
    const std::string id = sub["id"];
    std::string stream;
    auto r = client_->Get(("/v1/jobs/" + id + "/events").c_str(), [&](const char* data, size_t n) {
        stream.append(data, n);
        return true;
    });
    ASSERT_TRUE(r);
    std::vector<double> shares;
    for (size_t at = stream.find("event: progress\ndata: "); at != std::string::npos;
         at = stream.find("event: progress\ndata: ", at + 1)) {
        const size_t from = at + std::string("event: progress\ndata: ").size();
        const json j = json::parse(stream.substr(from, stream.find("\n\n", from) - from));
        if (j["status"] != "running") continue;
        shares.push_back(j["progress"].get<double>());
        EXPECT_EQ(j["image_index"], 0) << "the three images are one group: " << j.dump();
    }
    ASSERT_FALSE(shares.empty()) << stream.substr(0, 500);
    for (size_t i = 1; i < shares.size(); ++i) EXPECT_GE(shares[i], shares[i - 1]) << "event " << i;
    EXPECT_LE(shares.back(), 1.0);
    const json job = wait_job(id);
    ASSERT_EQ(job["status"], "done") << job.dump();
    ASSERT_EQ(job["images"].size(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(job["images"][size_t(i)]["seed"], 5 + i);
}

TEST_F(Http, CancelInterruptAndTheBoundedQueue) {
    server::ServeOptions o;
    o.limits.queue_size = 2;
    start(o);
    // A job long enough to still be running when we act on it (128x128 on the tiny model: ~0.1 s a step).
    const json slow = {{"prompt", "a red circle"}, {"width", 128}, {"height", 128}, {"steps", 150}};
    auto [s1, j1] = post("/v1/jobs", slow);
    ASSERT_EQ(s1, 202) << j1.dump();
    for (int i = 0; i < 200 && get("/v1/jobs/" + j1["id"].get<std::string>()).second["status"] != "running"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto [s2, j2] = post("/v1/jobs", slow);
    auto [s3, j3] = post("/v1/jobs", slow);
    ASSERT_EQ(s2, 202);
    ASSERT_EQ(s3, 202);
    EXPECT_EQ(j2["queue_position"], 1);
    EXPECT_EQ(j3["queue_position"], 2);
    auto r4 = client_->Post("/v1/jobs", slow.dump(), "application/json");
    ASSERT_TRUE(r4);
    EXPECT_EQ(r4->status, 429);
    EXPECT_FALSE(r4->get_header_value("Retry-After").empty());
    EXPECT_NE(r4->body.find("the queue is full (2 jobs waiting)"), std::string::npos) << r4->body;

    // Cancel a queued job, then the running one.
    auto [sc, c3] = del("/v1/jobs/" + j3["id"].get<std::string>());
    ASSERT_EQ(sc, 200);
    EXPECT_EQ(c3["status"], "cancelled");
    auto [sc1, c1] = del("/v1/jobs/" + j1["id"].get<std::string>());
    ASSERT_EQ(sc1, 200);
    EXPECT_EQ(wait_job(j1["id"])["status"], "cancelled");

    // A1111's interrupt ends the running job (j2) with the image reached so far.
    const std::string id2 = j2["id"];
    // Wait until it has made a step (so it has a latent to preview), however slow the machine.
    for (int i = 0; i < 1500; ++i) {
        const json j = get("/v1/jobs/" + id2).second;
        if (j["status"] == "running" && j["step"].get<int>() >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto [sp, prog] = get("/sdapi/v1/progress");
    ASSERT_EQ(sp, 200);
    EXPECT_GT(prog["state"]["sampling_steps"].get<int>(), 0) << prog.dump();
    EXPECT_TRUE(prog["current_image"].is_string()) << "a live preview while running";
    auto [spv, pv] = get("/v1/jobs/" + id2 + "?preview=1");
    EXPECT_EQ(spv, 200);
    EXPECT_EQ(pv.value("preview", "").rfind("data:image/png;base64,", 0), 0u) << pv.dump().substr(0, 300);
    auto [si, ni] = post_raw("/sdapi/v1/interrupt", "");
    EXPECT_EQ(si, 200);
    const json j2done = wait_job(id2);
    EXPECT_EQ(j2done["status"], "done") << j2done.dump();
    EXPECT_EQ(j2done["images"].size(), 1u);
    EXPECT_TRUE(j2done.value("interrupted", false));
}

TEST_F(Http, SkipMovesToTheNextImageAndRetentionDeletesOldJobs) {
    server::ServeOptions o;
    o.limits.keep_jobs = 1;
    start(o);
    // Two images; A1111's skip during the first ends it early (decoded as it stands) and the second runs in full.
    auto [st, sub] = post("/v1/jobs", {{"prompt", "a red circle"}, {"width", 128}, {"height", 128}, {"steps", 100}, {"n_iter", 2}, {"seed", 3}});
    ASSERT_EQ(st, 202) << sub.dump();
    const std::string id = sub["id"];
    for (int i = 0; i < 1500; ++i) {
        const json j = get("/v1/jobs/" + id).second;
        if (j["status"] == "running" && j["step"].get<int>() >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(post_raw("/sdapi/v1/skip", "").first, 200);
    const json done = wait_job(id);
    ASSERT_EQ(done["status"], "done") << done.dump();
    ASSERT_EQ(done["images"].size(), 2u) << "skip ends one image, not the job";
    EXPECT_EQ(done["images"][1]["seed"], 4);
    EXPECT_FALSE(done.value("interrupted", false));
    auto first = client_->Get(done["images"][0]["url"].get<std::string>().c_str());
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 200);

    // keep_jobs 1: the next finished job pushes this one (and its images) out.
    auto [s2, j2] = post("/v1/jobs", {{"prompt", "a blue square"}, {"steps", 2}});
    ASSERT_EQ(s2, 202);
    EXPECT_EQ(wait_job(j2["id"])["status"], "done");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // retention runs after the job is recorded
    EXPECT_EQ(get("/v1/jobs/" + id).first, 404);
    EXPECT_EQ(client_->Get(done["images"][0]["url"].get<std::string>().c_str())->status, 404);
    EXPECT_FALSE(std::filesystem::exists(data_ / "images" / id)) << "its images are deleted too";
    EXPECT_TRUE(std::filesystem::exists(data_ / "images" / j2["id"].get<std::string>()));
}

TEST_F(Http, BadRequestsGetTheEnvelopeAndTheServerStaysUp) {
    server::ServeOptions o;
    o.limits.max_body_bytes = 4096;
    start(o);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"/v1/jobs", "{not json"},
        {"/v1/jobs", "[]"},
        {"/v1/jobs", ""},
        {"/v1/jobs", R"({"steps": -1})"},
        {"/v1/jobs", R"({"model": "other"})"},
        {"/sdapi/v1/txt2img", R"({"width": "wide"})"},
        {"/sdapi/v1/img2img", R"({"init_images": "notalist"})"},
        {"/sdapi/v1/img2img", R"({"init_images": [12]})"},
        {"/sdapi/v1/png-info", R"({"image": "AAAA"})"},
        {"/sdapi/v1/options", R"({"sd_model_checkpoint": 7})"},
        {"/v1/jobs", std::string(5000, ' ')},
        {"/v1/jobs", "{\"prompt\": \"\xff\xfe\"}"},
        {"/v1/jobs", R"({"steps": 1000000000})"},
        {"/v1/jobs", R"({"width": -64})"},
        {"/v1/jobs", R"({"seed": 1e30})"},
        {"/v1/jobs", R"({"batch_size": 99999999999999999999})"},
        {"/v1/jobs", R"({"cfg_scale": -5})"},
        {"/v1/jobs", R"({"model": "../../../etc/passwd"})"},
        {"/sdapi/v1/txt2img", R"({"override_settings": {"sd_model_checkpoint": "../tiny"}})"},
        {"/sdapi/v1/options", R"({"sd_model_checkpoint": "/etc/passwd"})"},
    };
    for (const auto& [path, body] : cases) {
        auto r = client_->Post(path.c_str(), body, "application/json");
        ASSERT_TRUE(r) << path << " " << body.substr(0, 40) << ": no answer";
        EXPECT_GE(r->status, 400) << path << " " << body.substr(0, 40);
        EXPECT_LT(r->status, 500) << path << " " << body.substr(0, 40) << ": " << r->body;
        const json j = json::parse(r->body, nullptr, false);
        EXPECT_TRUE(j.is_object() && j.contains("error") && j["error"].contains("message")) << path << ": " << r->body;
    }
    auto big = client_->Post("/v1/jobs", std::string(5000, ' '), "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 413);
    auto [sm, model] = post("/v1/jobs", {{"model", "other"}});
    EXPECT_EQ(sm, 404);
    EXPECT_NE(model["error"]["message"].get<std::string>().find("no model 'other'; this server has tiny"), std::string::npos);
    // Sizes on the 8-pixel grid that the model's UNet cannot take (the embedded model needs multiples of 16): refused
    // before any work, naming the field and the multiple, on both APIs; this used to abort the whole server.
    for (const char* path : {"/v1/jobs", "/sdapi/v1/txt2img"}) {
        auto [s40, e40] = post(path, {{"prompt", "x"}, {"width", 40}, {"height", 40}, {"steps", 1}});
        EXPECT_EQ(s40, 400) << path << ": " << e40.dump();
        EXPECT_TRUE(is_error_envelope(e40, "invalid_argument")) << e40.dump();
        EXPECT_NE(e40.dump().find("multiple of 16"), std::string::npos) << e40.dump();
        EXPECT_NE(e40.dump().find("width"), std::string::npos) << e40.dump();
    }
    auto [sok, ok] = get("/v1/models");  // still serving
    EXPECT_EQ(sok, 200);
    EXPECT_EQ(ok["models"][0]["width"], 32);
}

TEST_F(Http, SlowClientsAreCutOffAndOthersAreServed) {
    server::ServeOptions o;
    o.limits.read_timeout_s = 1;
    start(o);
    // A client that sends half a request and then nothing.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string partial = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), ssize_t(partial.size()));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(get("/v1/models").first, 200) << "others are served meanwhile";
    // The server answers or closes within its read timeout (1 s) plus slack; it never waits for the rest.
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 10000), 1) << "the stalled connection was not closed";
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("stalled client: %s after %.1f s\n", n > 0 ? std::string(buf, size_t(std::min<ssize_t>(n, 12))).c_str() : "closed", waited);
    EXPECT_LT(waited, 8.0);
    if (n > 0) {
        EXPECT_EQ(std::string(buf, 9), "HTTP/1.1 ") << "anything it sends is an HTTP answer";
    }
    close(fd);
    EXPECT_EQ(get("/v1/models").first, 200);
}

TEST_F(Http, ApiKeysQuotasRateLimitsAndIsolation) {
    auto alice = server::create_key(data_.string(), "alice", /*quota=*/3, /*rate=*/0);
    auto bob = server::create_key(data_.string(), "bob", 0, /*rate=*/4);
    ASSERT_TRUE(alice && bob);
    start();
    const std::string ka = alice->first, kb = bob->first;
    auto [s0, e0] = get("/v1/models");
    EXPECT_EQ(s0, 401);
    EXPECT_TRUE(is_error_envelope(e0, "unauthenticated")) << e0.dump();
    auto [sw, ew] = get("/v1/models", "easel_0000000000000000000000000000000000000000");
    EXPECT_EQ(sw, 401);
    auto page = client_->Get("/");  // the page itself is public; it asks for a key
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    // Probes are public; /metrics needs a key, and a key's caller sees no other key's usage.
    for (const char* probe : {"/healthz", "/readyz"}) {
        auto r = client_->Get(probe);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200) << probe << ": " << r->body;
    }
    EXPECT_EQ(get("/metrics").first, 401);
    auto metrics = client_->Get("/metrics", auth(ka));  // alice has no rate limit (bob's is counted below)
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->body.find("easel_workers_alive 1"), std::string::npos) << metrics->body;
    EXPECT_EQ(metrics->body.find("easel_key_images_today"), std::string::npos) << metrics->body;

    // Quota: 3 images a day for alice.
    auto [q1, j1] = post("/v1/jobs", {{"prompt", "a red circle"}, {"steps", 2}, {"batch_size", 2}}, ka);
    ASSERT_EQ(q1, 202) << j1.dump();
    auto rq = client_->Post("/v1/jobs", auth(ka), json{{"prompt", "x"}, {"steps", 2}, {"batch_size", 2}}.dump(), "application/json");
    ASSERT_TRUE(rq);
    EXPECT_EQ(rq->status, 429);
    EXPECT_NE(rq->body.find("the key 'alice' has used 2 of its 3 images today"), std::string::npos) << rq->body;
    EXPECT_FALSE(rq->get_header_value("Retry-After").empty());

    // Usage, as the page shows it: alice's 2 of 3 images; bob's rate and no quota; an open caller has no key.
    auto [su, ua] = get("/v1/usage", ka);
    ASSERT_EQ(su, 200) << ua.dump();
    EXPECT_EQ(ua["key"]["name"], "alice");
    EXPECT_EQ(ua["images_today"], 2);
    EXPECT_EQ(ua["quota_per_day"], 3);
    EXPECT_EQ(ua["images_left_today"], 1);
    EXPECT_TRUE(ua["rate_per_min"].is_null());
    EXPECT_EQ(ua["day"], server::utc_day(server::now_ms()));
    EXPECT_EQ(ua["resets_at"].get<std::string>().size(), 20u) << ua.dump();  // 2026-12-07T00:00:00Z
    EXPECT_NE(ua["resets_at"].get<std::string>().find("T00:00:00Z"), std::string::npos) << ua.dump();
    EXPECT_EQ(get("/v1/usage").first, 401);
    auto [sm, models] = get("/v1/models", ka);
    ASSERT_EQ(sm, 200);
    EXPECT_EQ(models["models"][0]["size_multiple"], 16) << models.dump();  // the embedded model: 4x down, sides of 4

    // Isolation: bob does not see alice's job.
    const std::string id = j1["id"];
    EXPECT_EQ(wait_job(id, ka)["status"], "done");
    auto [sb, eb] = get("/v1/jobs/" + id, kb);
    EXPECT_EQ(sb, 404);
    // Bob cannot purge alice's job either (it is not his to see), and his usage has a rate and no quota.
    auto rp = client_->Delete("/v1/jobs/" + id + "?purge=1", auth(kb));
    ASSERT_TRUE(rp);
    EXPECT_EQ(rp->status, 404) << rp->body;
    auto [sub, ub] = get("/v1/usage", kb);
    ASSERT_EQ(sub, 200) << ub.dump();
    EXPECT_EQ(ub["rate_per_min"], 4);
    EXPECT_TRUE(ub["quota_per_day"].is_null() && ub["images_left_today"].is_null()) << ub.dump();
    // Rate: bob has 4 requests a minute, and used three above.
    for (int i = 0; i < 1; ++i) EXPECT_EQ(get("/v1/models", kb).first, 200);
    auto rr = client_->Get("/v1/models", auth(kb));
    ASSERT_TRUE(rr);
    EXPECT_EQ(rr->status, 429);
    EXPECT_NE(rr->body.find("limited to 4 requests per minute"), std::string::npos) << rr->body;
    EXPECT_FALSE(rr->get_header_value("Retry-After").empty());

    // Keys are stored hashed: the database never holds a secret.
    {
        std::string bytes;  // WAL mode: recent writes are in the -wal file
        for (const char* file : {"easel.db", "easel.db-wal"}) {
            std::ifstream db(data_ / file, std::ios::binary);
            bytes.append((std::istreambuf_iterator<char>(db)), std::istreambuf_iterator<char>());
        }
        EXPECT_NE(bytes.find("alice"), std::string::npos) << "the check looks at the right bytes";
        EXPECT_EQ(bytes.find(ka), std::string::npos);
        EXPECT_EQ(bytes.find(kb), std::string::npos);
    }
    // Revocation takes effect at once, even from another process's `easel keys revoke`.
    ASSERT_TRUE(server::revoke_key(data_.string(), "alice"));
    auto [sr, er] = get("/v1/models", ka);
    EXPECT_EQ(sr, 401);
    EXPECT_NE(er["error"]["message"].get<std::string>().find("revoked"), std::string::npos);
    auto keys = server::list_keys(data_.string());
    ASSERT_TRUE(keys);
    ASSERT_EQ(keys->size(), 2u);
    EXPECT_EQ((*keys)[0].used_today, 2);
    EXPECT_TRUE((*keys)[0].revoked);
}

TEST_F(Http, BasicAuthAsA1111) {
    auto carol = server::create_key(data_.string(), "carol", 0, 0);
    ASSERT_TRUE(carol);
    server::ServeOptions o;
    o.api_auth = "user:secret";
    start(o);
    // The Basic-auth operator sees every key's usage in /metrics.
    auto metrics = client_->Get("/metrics", httplib::Headers{{"Authorization", "Basic dXNlcjpzZWNyZXQ="}});
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->body.find("easel_key_images_today{key=\"carol\"} 0"), std::string::npos) << metrics->body;
    EXPECT_EQ(get("/sdapi/v1/sd-models").first, 401);
    client_->set_basic_auth("user", "secret");
    EXPECT_EQ(get("/sdapi/v1/sd-models").first, 200);
    client_->set_basic_auth("user", "wrong");
    EXPECT_EQ(get("/sdapi/v1/sd-models").first, 401);
}

// An SDXL diffusers folder is served like any other model: A1111's txt2img makes an image of the requested size,
// and a size off its grid is a 400 naming the multiple, before the worker sees it.
TEST_F(Http, ServesAnSDXLModel) {
    const auto dir = fresh_dir("sdxl-models");
    std::filesystem::create_directory_symlink(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl", dir / "tiny-sdxl");
    server::ServeOptions o;
    o.models_dir = dir.string();
    start(o);
    const json req = {{"prompt", "a red circle on a blue background"}, {"seed", 3}, {"steps", 4}, {"width", 64}, {"height", 96}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    const Image img = decode_b64_png(r1["images"][0]);
    EXPECT_EQ(img.width, 64);
    EXPECT_EQ(img.height, 96);
    EXPECT_EQ(json::parse(r1["info"].get<std::string>())["sd_model_name"], "tiny-sdxl");
    json bad = req;
    bad["width"] = 60;
    auto [s2, r2] = post("/sdapi/v1/txt2img", bad);
    EXPECT_EQ(s2, 400) << r2.dump();
    EXPECT_NE(r2.dump().find("multiple of 8"), std::string::npos) << r2.dump();
}

// A1111's refiner_checkpoint / refiner_switch_at: the worker loads the refiner beside the base and the sampler
// switches to it (k-diffusion mode); the image is the library's for the same request, the infotext names the refiner.
// A refiner that is not served, or cannot finish the base's images, is refused before the job is queued.
TEST_F(Http, RunsAnSDXLRefiner) {
    const auto dir = fresh_dir("sdxl-refiner-models");
    std::filesystem::create_directory_symlink(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl", dir / "tiny-sdxl");
    std::filesystem::create_directory_symlink(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_refiner", dir / "tiny-refiner");
    std::filesystem::create_directory_symlink(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1", dir / "tiny-sd1");
    server::ServeOptions o;
    o.models_dir = dir.string();
    start(o);
    const json req = {{"prompt", "a red circle"}, {"seed", 3}, {"steps", 10}, {"width", 64}, {"height", 64},
                      {"sampler_name", "DPM++ 2M"}, {"scheduler", "karras"}, {"model", "tiny-sdxl"}, {"refiner_checkpoint", "tiny-refiner"},
                      {"refiner_switch_at", 0.6}};
    auto [s1, r1] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1, 200) << r1.dump();
    // The same set again at once: the worker keeps it merged for a job with the same set that follows within 2 s
    // ("kept from the job before" in its log), instead of taking it off and merging it again.
    auto [s1b, r1b] = post("/sdapi/v1/txt2img", req);
    ASSERT_EQ(s1b, 200) << r1b.dump();
    const std::string infotext = json::parse(r1["info"].get<std::string>())["infotexts"][0];
    EXPECT_NE(infotext.find("Refiner: tiny-refiner, Refiner switch at: 0.6"), std::string::npos) << infotext;

    auto base = load_model((dir / "tiny-sdxl").string(), LoadOptions{});
    auto refiner = load_model((dir / "tiny-refiner").string(), LoadOptions{});
    ASSERT_TRUE(base && refiner);
    GenerateParams p;
    p.prompt = "a red circle";
    p.seed = 3;
    p.steps = 10;
    p.width = p.height = 64;
    p.sampler = SamplerKind::DpmPP2M;
    p.schedule = ScheduleKind::Karras;
    p.refiner = refiner->get();
    p.refiner_switch_at = 0.6;
    auto want = generate(**base, p);
    ASSERT_TRUE(want) << want.error().to_string();
    EXPECT_EQ(decode_b64_png(r1["images"][0]).pixels, (*want)[0].image.pixels);

    json missing = req;
    missing["refiner_checkpoint"] = "nope";
    auto [s2, r2] = post("/sdapi/v1/txt2img", missing);
    EXPECT_EQ(s2, 404) << r2.dump();
    EXPECT_NE(r2.dump().find("refiner_checkpoint"), std::string::npos) << r2.dump();
    json wrong = req;
    wrong["refiner_checkpoint"] = "tiny-sd1";
    auto [s3, r3] = post("/sdapi/v1/txt2img", wrong);
    EXPECT_EQ(s3, 400) << r3.dump();
    EXPECT_NE(r3.dump().find("latent spaces differ"), std::string::npos) << r3.dump();
    json out_of_range = req;
    out_of_range["refiner_switch_at"] = 1.5;
    auto [s4, r4] = post("/sdapi/v1/txt2img", out_of_range);
    EXPECT_EQ(s4, 400) << r4.dump();
    EXPECT_NE(r4.dump().find("refiner_switch_at"), std::string::npos) << r4.dump();
}

TEST(ServeOptions, RefusesAnOpenAddressWithoutAuthentication) {
    auto dir = fresh_dir("open");
    server::ServeOptions o;
    o.host = "0.0.0.0";
    o.port = 0;
    o.data_dir = dir.string();
    o.models = {tiny_model_dir()};
    auto st = server::run_server(o);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().to_string().find("refusing to listen on 0.0.0.0 without authentication"), std::string::npos)
        << st.error().to_string();
    o.api_auth = "nocolon";
    auto st2 = server::run_server(o);
    ASSERT_FALSE(st2);
    EXPECT_NE(st2.error().to_string().find("--api-auth: expected user:password"), std::string::npos) << st2.error().to_string();
    std::filesystem::remove_all(dir);
}

}  // namespace

namespace {
// The pids of this process's worker children (`easel __worker`), from /proc.
std::vector<pid_t> worker_pids() {
    std::vector<pid_t> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(e.path() / "stat");
        std::string line;
        std::getline(stat, line);
        const size_t close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        std::string state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid != getpid() || state == "Z") continue;
        std::ifstream cmd(e.path() / "cmdline");
        std::string args((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
        if (args.find("__worker") != std::string::npos) out.push_back(pid_t(std::stoi(name)));
    }
    return out;
}
}  // namespace

// A job cancelled while its worker process starts (after the last one crashed) stays cancelled: it left the queue
// when this server's thread took it, so the DELETE asks it to stop rather than finishing it as a queued job that the
// thread then ran anyway (it went back to "running" and ended "done", seen by the browser test).
TEST_F(Http, AJobCancelledWhileItsWorkerStartsStaysCancelled) {
    ::setenv("EASEL_TEST_WORKER_CRASH", "CRASH-THE-WORKER", 1);
    start(server::ServeOptions{});
    auto submit = [&](const std::string& prompt) {
        auto [s, j] = post("/v1/jobs", {{"prompt", prompt}, {"steps", 4}, {"seed", 5}});
        EXPECT_EQ(s, 202) << j.dump();
        return j.value("id", std::string());
    };
    const std::string poison = submit("a red circle CRASH-THE-WORKER");
    const std::string victim = submit("a blue square");
    const std::string after = submit("a green triangle");
    // The poison job crashes two workers and is quarantined; then the thread takes the victim and starts a third
    // worker process. Cancel the victim in that window (the moment the poison job is seen failed).
    for (int i = 0; i < 3000 && get("/v1/jobs/" + poison).second.value("status", "") != "failed"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto [sc, c] = del("/v1/jobs/" + victim);
    ASSERT_EQ(sc, 200) << c.dump();
    // Jobs run in order: once the next one is done, the victim has been taken and dealt with.
    EXPECT_EQ(wait_job(after)["status"], "done");
    const json v = get("/v1/jobs/" + victim).second;
    EXPECT_EQ(v["status"], "cancelled") << v.dump();
    EXPECT_TRUE(!v.contains("images") || v["images"].empty()) << v.dump();
    auto m = client_->Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_NE(m->body.find("easel_jobs_finished_total{status=\"cancelled\"} 1\n"), std::string::npos) << m->body;
    EXPECT_NE(m->body.find("easel_jobs_finished_total{status=\"done\"} 1\n"), std::string::npos) << m->body;
    ::unsetenv("EASEL_TEST_WORKER_CRASH");
}

// Generation runs in a worker process: a job that crashes it (the test-only hook EASEL_TEST_WORKER_CRASH) is run
// once more in a fresh worker, then quarantined with the cause; one that hangs (EASEL_TEST_WORKER_HANG) fails at
// the job time limit; a worker killed from outside mid-job costs that job one retry. Through all of it the HTTP
// side answers and the other jobs finish.
TEST_F(Http, CrashingHangingAndKilledWorkersFailOnlyTheirJob) {
    ::setenv("EASEL_TEST_WORKER_CRASH", "CRASH-THE-WORKER", 1);
    ::setenv("EASEL_TEST_WORKER_HANG", "HANG-THE-WORKER", 1);
    server::ServeOptions o;
    o.limits.job_timeout_s = 3;
    start(o);
    auto submit = [&](const std::string& prompt, int steps) {
        auto [s, j] = post("/v1/jobs", {{"prompt", prompt}, {"steps", steps}, {"seed", 5}});
        EXPECT_EQ(s, 202) << j.dump();
        return j.value("id", std::string());
    };
    const std::string before = submit("a red circle", 4);
    const std::string poison = submit("a red circle CRASH-THE-WORKER", 4);
    const std::string after = submit("a blue square", 4);
    const std::string hang = submit("a green triangle HANG-THE-WORKER", 4);
    const std::string last = submit("a white square", 4);

    EXPECT_EQ(wait_job(before)["status"], "done");
    const json p = wait_job(poison);
    EXPECT_EQ(p["status"], "failed") << p.dump();
    const std::string why = p.value("error", std::string());
    EXPECT_NE(why.find("quarantined"), std::string::npos) << why;
    EXPECT_NE(why.find("2 times"), std::string::npos) << why;
    EXPECT_NE(why.find("signal 11"), std::string::npos) << why;
    std::printf("poison job: %s\n", why.c_str());
    EXPECT_EQ(wait_job(after)["status"], "done");
    const json h = wait_job(hang);
    EXPECT_EQ(h["status"], "failed") << h.dump();
    EXPECT_NE(h.value("error", std::string()).find("longer than the limit of 3 s"), std::string::npos) << h.dump();
    const json l = wait_job(last);
    EXPECT_EQ(l["status"], "done") << l.dump();
    ASSERT_EQ(l["images"].size(), 1u);
    auto png = client_->Get(l["images"][0]["url"].get<std::string>().c_str());
    ASSERT_TRUE(png);
    EXPECT_EQ(png->status, 200);

    // A worker killed mid-job (as the OOM killer would): the job runs again in a new worker and finishes. 50 steps:
    // long enough to be killed mid-way, short enough that the rerun (a new worker's load and all 50 steps) stays
    // within this server's 3 s job limit on a slow machine (150 steps timed out there about once in 8 runs).
    const std::string victim = submit("a purple circle", 50);
    for (int i = 0; i < 1000; ++i) {
        const json j = get("/v1/jobs/" + victim).second;
        if (j["status"] == "running" && j["step"].get<int>() >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::vector<pid_t> pids = worker_pids();
    ASSERT_EQ(pids.size(), 1u) << "one model, one worker";
    ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
    const json v = wait_job(victim);
    EXPECT_EQ(v["status"], "done") << v.dump();
    auto [sok, ok] = get("/v1/models");
    EXPECT_EQ(sok, 200);

    // What /metrics counted: 4 jobs done, 2 failed (one quarantined after 2 crashes, one timed out), 3 worker deaths
    // (the poison job twice, the kill), 1 worker alive now; /readyz and /healthz answer.
    auto m = client_->Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->status, 200);
    const std::string& text = m->body;
    for (const char* line : {"easel_jobs_finished_total{status=\"done\"} 4", "easel_jobs_finished_total{status=\"failed\"} 2",
                             "easel_jobs_quarantined_total 1", "easel_jobs_timed_out_total 1", "easel_worker_crashes_total 3",
                             "easel_workers_alive 1", "easel_queue_depth{model=\"tiny\"} 0",
                             "easel_job_latency_seconds_bucket{le=\"+Inf\"} 6", "easel_job_latency_seconds_count 6",
                             "# TYPE easel_job_latency_seconds histogram"})
        EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << "missing '" << line << "' in:\n" << text;
    auto ready = client_->Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;
    auto health = client_->Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    ::unsetenv("EASEL_TEST_WORKER_CRASH");
    ::unsetenv("EASEL_TEST_WORKER_HANG");
}

namespace {
std::string png_b64(int w, int h) {
    Image img;
    img.width = w;
    img.height = h;
    img.channels = 3;
    img.pixels.assign(size_t(w) * size_t(h) * 3, 128);
    auto png = encode_image(img, ImageFormat::Png);
    EXPECT_TRUE(png);
    return server::base64_encode(png->data(), png->size());
}
}  // namespace

// Every field at its edges, against the live server: each answer is 2xx or 4xx with the error envelope, every
// accepted job ends (done or failed, never stuck), and the server still serves afterwards.
TEST_F(Http, EveryFieldAtItsEdges) {
    start();
    std::string words;
    for (int i = 0; i < 10000; ++i) words += (i % 7 ? "circle " : "(red:1.3) ");
    const std::string small = png_b64(32, 32), tiny = png_b64(1, 1), odd = png_b64(40, 40), huge = png_b64(8192, 8192);
    const json base = {{"prompt", "a red circle"}, {"steps", 2}, {"width", 32}, {"height", 32}};
    struct Case {
        const char* path;
        json patch;
    };
    const std::vector<Case> cases = {
        {"/v1/jobs", {{"width", 40}}}, {"/v1/jobs", {{"height", 24}}}, {"/v1/jobs", {{"width", 0}}},
        {"/v1/jobs", {{"width", -32}}}, {"/v1/jobs", {{"width", 1e12}}}, {"/v1/jobs", {{"width", 8}}},
        {"/v1/jobs", {{"width", 513}}}, {"/v1/jobs", {{"width", "32"}}}, {"/v1/jobs", {{"width", nullptr}}},
        {"/v1/jobs", {{"width", 8192}, {"height", 8192}}}, {"/v1/jobs", {{"width", 31.5}}},
        {"/v1/jobs", {{"steps", 0}}}, {"/v1/jobs", {{"steps", -1}}}, {"/v1/jobs", {{"steps", 1e15}}},
        {"/v1/jobs", {{"steps", "many"}}}, {"/v1/jobs", {{"steps", true}}}, {"/v1/jobs", {{"steps", json::array()}}},
        {"/v1/jobs", {{"cfg_scale", -1}}}, {"/v1/jobs", {{"cfg_scale", 1e308}}}, {"/v1/jobs", {{"cfg_scale", "high"}}},
        {"/v1/jobs", {{"seed", -2}}}, {"/v1/jobs", {{"seed", 18446744073709551615ull}}}, {"/v1/jobs", {{"seed", -1e300}}},
        {"/v1/jobs", {{"batch_size", 0}}}, {"/v1/jobs", {{"batch_size", 100000}}}, {"/v1/jobs", {{"n_iter", -3}}},
        {"/v1/jobs", {{"sampler_name", "no such sampler"}}}, {"/v1/jobs", {{"scheduler", "nope"}}},
        {"/v1/jobs", {{"prompt", words}}}, {"/v1/jobs", {{"prompt", "((((((((a red circle"}}},
        {"/v1/jobs", {{"prompt", "a red circle))))))]]]]"}}}, {"/v1/jobs", {{"prompt", "(a:"}}},
        {"/v1/jobs", {{"prompt", "[a:b:"}}}, {"/v1/jobs", {{"prompt", "(red:1e308) BREAK BREAK BREAK"}}},
        {"/v1/jobs", {{"prompt", std::string("a\0b", 3)}}}, {"/v1/jobs", {{"prompt", 42}}},
        {"/v1/jobs", {{"negative_prompt", words}}},
        {"/sdapi/v1/txt2img", {{"width", 40}, {"height", 40}}}, {"/sdapi/v1/txt2img", {{"enable_hr", true}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({"!!!! not base64 !!!!"})}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({""})}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({"aGVsbG8="})}}},  // "hello": base64 but no image
        {"/sdapi/v1/img2img", {{"init_images", json::array({tiny})}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({tiny})}, {"width", nullptr}, {"height", nullptr}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({odd})}, {"width", 40}, {"height", 40}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({huge})}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small})}, {"mask", tiny}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small})}, {"mask", "%%%"}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small})}, {"denoising_strength", -0.5}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small})}, {"denoising_strength", 7}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small})}, {"mask", small}, {"mask_blur", -5}}},
        {"/sdapi/v1/img2img", {{"init_images", json::array({small, small})}}},
    };
    std::vector<std::string> accepted;
    int refused = 0;
    for (const Case& c : cases) {
        json body = base;
        for (auto& [k, v] : c.patch.items()) body[k] = v;
        auto r = client_->Post(c.path, body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
        const std::string what = std::string(c.path) + " " + c.patch.dump().substr(0, 80);
        ASSERT_TRUE(r) << what << ": no answer (is the server down?)";
        EXPECT_TRUE((r->status >= 200 && r->status < 300) || (r->status >= 400 && r->status < 500)) << what << ": " << r->status << " " << r->body.substr(0, 300);
        const json j = json::parse(r->body, nullptr, false);
        if (r->status >= 400) {
            ++refused;
            EXPECT_TRUE(is_error_envelope(j, j.value("error", json::object()).value("code", ""))) << what << ": " << r->body.substr(0, 300);
        } else if (j.contains("id")) {
            accepted.push_back(j["id"]);
        }
    }
    for (const std::string& id : accepted) {
        const json j = wait_job(id);
        const std::string s = j.value("status", "");
        EXPECT_TRUE(s == "done" || s == "failed") << id << ": " << j.dump().substr(0, 300);
    }
    std::printf("edges: %zu requests, %d refused with 4xx, %zu accepted and ended\n", cases.size(), refused, accepted.size());
    // An init image over the largest output size is refused from its header, before 200 MB of pixels are decoded.
    json big_init = base;
    big_init["init_images"] = json::array({huge});
    auto [sbig, ebig] = post("/sdapi/v1/img2img", big_init);
    EXPECT_EQ(sbig, 400);
    EXPECT_NE(ebig.dump().find("8192x8192; the limit is 4194304 pixels in all"), std::string::npos) << ebig.dump();
    auto [sok, ok] = get("/v1/models");
    EXPECT_EQ(sok, 200);
    auto [sgen, gen] = post("/sdapi/v1/txt2img", base);
    EXPECT_EQ(sgen, 200) << gen.dump().substr(0, 300);
}

// A1111's global routes (progress, interrupt, skip) act on the caller's own jobs: another key sees no progress or
// preview of them and cannot stop them. An admin key sees every key's jobs.
TEST_F(Http, A1111GlobalRoutesRespectTenants) {
    auto a = server::create_key(data_.string(), "tenant-a", 0, 0);
    auto b = server::create_key(data_.string(), "tenant-b", 0, 0);
    auto op = server::create_key(data_.string(), "operator", 0, 0, /*admin=*/true);
    ASSERT_TRUE(a && b && op);
    EXPECT_TRUE(op->second.admin);
    start();
    const std::string ka = a->first, kb = b->first, kop = op->first;
    auto [s, j] = post("/v1/jobs", {{"prompt", "a red circle"}, {"steps", 150}, {"seed", 3}}, ka);
    ASSERT_EQ(s, 202) << j.dump();
    const std::string id = j["id"];
    for (int i = 0; i < 1000; ++i) {
        const json st = get("/v1/jobs/" + id, ka).second;
        if (st["status"] == "running" && st["step"].get<int>() >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto [sb, pb] = get("/sdapi/v1/progress", kb);
    ASSERT_EQ(sb, 200);
    EXPECT_EQ(pb["state"]["job_count"], 0) << pb.dump().substr(0, 300);
    EXPECT_TRUE(pb["current_image"].is_null()) << "tenant b saw tenant a's preview";
    auto [sa, pa] = get("/sdapi/v1/progress", ka);
    ASSERT_EQ(sa, 200);
    EXPECT_EQ(pa["state"]["job_count"], 1) << pa.dump().substr(0, 300);
    auto [sop, pop] = get("/sdapi/v1/progress", kop);
    ASSERT_EQ(sop, 200);
    EXPECT_EQ(pop["state"]["job_count"], 1) << "the admin key sees tenant a's job: " << pop.dump().substr(0, 300);
    EXPECT_EQ(get("/v1/jobs/" + id, kop).first, 200);
    EXPECT_EQ(get("/v1/jobs/" + id, kb).first, 404);
    auto listed = get("/v1/jobs", kop).second;
    EXPECT_NE(listed.dump().find(id), std::string::npos) << listed.dump().substr(0, 300);
    auto metrics = client_->Get("/metrics", auth(kop));
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("easel_key_images_today{key=\"tenant-a\"} 1"), std::string::npos) << metrics->body;
    EXPECT_EQ(post_raw("/sdapi/v1/interrupt", "", kb).first, 200);
    EXPECT_EQ(post_raw("/sdapi/v1/skip", "", kb).first, 200);
    const json done = wait_job(id, ka);
    EXPECT_EQ(done["status"], "done") << done.dump().substr(0, 300);
    auto rec = get("/v1/jobs/" + id, ka).second;
    EXPECT_FALSE(rec.dump().find("\"interrupted\":true") != std::string::npos) << "tenant b interrupted tenant a's job";
}
