// The server's pieces without HTTP: request parsing (A1111 field names, defaults, limits, refusals), base64,
// the SQLite store (jobs, restart re-queueing, retention, keys, usage) and the auth helpers.
#include <gtest/gtest.h>

#include <filesystem>

#include <sqlite3.h>

#include "server/auth.h"
#include "server/request.h"
#include "server/store.h"

using namespace easel;
using namespace easel::server;
namespace fs = std::filesystem;

namespace {

Result<GenerationRequest> parse(const std::string& body, RequestKind kind = RequestKind::Txt2Img, Limits lim = {}) {
    return parse_generation_request(json::parse(body), kind, a1111_defaults(), lim);
}

std::string message_of(const Result<GenerationRequest>& r) { return r ? std::string("(accepted)") : r.error().to_string(); }

TEST(Request, A1111DefaultsWhenFieldsAreMissing) {
    auto r = parse(R"({"prompt": "a cat"})");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->params.prompt, "a cat");
    EXPECT_EQ(r->params.width, 512);
    EXPECT_EQ(r->params.height, 512);
    EXPECT_EQ(r->params.steps, 50);
    EXPECT_EQ(r->params.sampler, SamplerKind::Euler);
    EXPECT_EQ(r->params.schedule, ScheduleKind::Default);
    EXPECT_DOUBLE_EQ(r->params.cfg_scale, 7.0);
    EXPECT_EQ(r->images(), 1);
    // seed -1 is resolved, and the resolved seed is what the stored parameters carry (a restart re-parses them).
    EXPECT_GE(r->params.seed, 0);
    EXPECT_EQ(r->parameters["seed"].get<int64_t>(), r->params.seed);
    auto again = parse_generation_request(r->parameters, RequestKind::Txt2Img, a1111_defaults(), {});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->params.seed, r->params.seed);
    EXPECT_EQ(again->params.steps, r->params.steps);
}

TEST(Request, SamplerNamesAliasesAndLegacyScheduleSuffixes) {
    struct Case {
        const char* body;
        SamplerKind sampler;
        ScheduleKind schedule;
    };
    const Case cases[] = {
        {R"({"sampler_name": "Euler a"})", SamplerKind::EulerAncestral, ScheduleKind::Default},
        {R"({"sampler_name": "k_euler_a"})", SamplerKind::EulerAncestral, ScheduleKind::Default},
        {R"({"sampler_index": "LMS"})", SamplerKind::Lms, ScheduleKind::Default},
        // A1111 v1.10: "automatic" means karras for DPM++ 2M and exponential for DPM++ 2M SDE.
        {R"({"sampler_name": "DPM++ 2M"})", SamplerKind::DpmPP2M, ScheduleKind::Karras},
        {R"({"sampler_name": "DPM++ 2M SDE"})", SamplerKind::DpmPP2MSde, ScheduleKind::Exponential},
        {R"({"sampler_name": "DPM++ 2M", "scheduler": "uniform"})", SamplerKind::DpmPP2M, ScheduleKind::Default},
        {R"({"sampler_name": "DPM++ 2M Karras"})", SamplerKind::DpmPP2M, ScheduleKind::Karras},
        {R"({"sampler_name": "LMS Karras"})", SamplerKind::Lms, ScheduleKind::Karras},
        {R"({"sampler_name": "Euler", "scheduler": "Karras"})", SamplerKind::Euler, ScheduleKind::Karras},
        {R"({"sampler_name": "Euler", "scheduler": "sgm_uniform"})", SamplerKind::Euler, ScheduleKind::SgmUniform},
        {R"({"sampler_name": "DDIM", "scheduler": "align_your_steps"})", SamplerKind::Ddim, ScheduleKind::AlignYourSteps},
    };
    for (const Case& c : cases) {
        auto r = parse(c.body);
        ASSERT_TRUE(r) << c.body << ": " << r.error().to_string();
        EXPECT_EQ(r->params.sampler, c.sampler) << c.body;
        EXPECT_EQ(r->params.schedule, c.schedule) << c.body;
    }
}

TEST(Request, BadFieldsAreNamedInTheError) {
    struct Case {
        const char* body;
        const char* expect;
    };
    const Case cases[] = {
        {R"({"steps": "ten"})", "steps: expected an integer, got a string"},
        {R"({"steps": 0})", "steps: must be between 1 and 150, got 0"},
        {R"({"steps": 20.5})", "steps: expected an integer, got 20.5"},
        {R"({"width": 513})", "width: 513x512 is not a multiple of 8"},
        {R"({"width": 4096})", "width: must be between 8 and 2048, got 4096"},
        {R"({"cfg_scale": "high"})", "cfg_scale: expected a number, got a string"},
        {R"({"prompt": 5})", "prompt: expected a string, got an integer"},
        {R"({"sampler_name": "Nope"})", "sampler_name: unknown sampler 'Nope'"},
        {R"({"scheduler": "nope"})", "scheduler: unknown scheduler 'nope'"},
        {R"({"batch_size": 8, "n_iter": 4})", "batch_size: batch_size x n_iter = 32 images; this server allows 16"},
        {R"({"seed": -2})", "seed: must be -1 (random) or 0..2^53"},
        {R"({"enable_hr": true})", "enable_hr: is not implemented by easel"},
        {R"({"subseed_strength": 0.3})", "subseed_strength: variation seeds are not implemented"},
        {R"({"alwayson_scripts": {"ADetailer": {}}})", "alwayson_scripts: easel has no script 'ADetailer'"},
        {R"({"alwayson_scripts": {"controlnet": {}}})", "alwayson_scripts.controlnet: expected {\"args\""},
        {R"({"alwayson_scripts": {"controlnet": {"args": [{"model": "m"}]}}})", "args[0]: no control image"},
        {R"({"alwayson_scripts": {"controlnet": {"args": [{"model": "m", "input_image": 3}]}}})", "args[0].input_image: expected a base64 image"},
        {R"({"override_settings": {"CLIP_stop_at_last_layers": 40}})", "CLIP_stop_at_last_layers: must be between 1 and 12"},
        {R"({"override_settings": 3})", "override_settings: expected an object"},
        {R"({"shift": 0})", "shift: must be in (0, 100], got 0"},
        {R"({"slg_layers": "7,x"})", "slg_layers: expected block numbers such as \"7,8,9\", got \"7,x\""},
        {R"({"slg_layers": [7, -1]})", "slg_layers: expected block numbers from 0, got -1"},
        {R"({"slg_layers": {"a": 1}})", "slg_layers: expected a list of block numbers"},
        {R"({"slg_scale": 3})", "slg_scale: goes with slg_layers"},
    };
    for (const Case& c : cases) {
        auto r = parse(c.body);
        EXPECT_FALSE(r) << c.body;
        EXPECT_NE(message_of(r).find(c.expect), std::string::npos) << c.body << " -> " << message_of(r);
    }
    auto arr = parse_generation_request(json::array(), RequestKind::Txt2Img, a1111_defaults(), {});
    ASSERT_FALSE(arr);
    EXPECT_NE(arr.error().to_string().find("expected a JSON object, got an array"), std::string::npos);
}

// SD3's skip-layer guidance and the flow shift, in easel's names (the CLI's flags), as a list or a string; the
// stored parameters keep them for a restart.
TEST(Request, ShiftAndSkipLayerGuidance) {
    auto r = parse(R"({"prompt": "a cat", "shift": 2.5, "slg_layers": [7, 8, 9], "slg_scale": 3, "slg_stop": 0.15})");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->params.shift, 2.5);
    EXPECT_EQ(r->params.slg.layers, (std::vector<int>{7, 8, 9}));
    EXPECT_DOUBLE_EQ(r->params.slg.scale, 3.0);
    EXPECT_DOUBLE_EQ(r->params.slg.start, 0.01);
    EXPECT_DOUBLE_EQ(r->params.slg.stop, 0.15);
    auto again = parse_generation_request(r->parameters, RequestKind::Txt2Img, a1111_defaults(), {});
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(again->params.slg.layers, r->params.slg.layers);
    auto s = parse(R"({"slg_layers": " 7, 8 ,9"})");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(s->params.slg.layers, (std::vector<int>{7, 8, 9}));
    auto none = parse(R"({"slg_layers": null})");
    ASSERT_TRUE(none) << none.error().to_string();
    EXPECT_TRUE(none->params.slg.layers.empty());
}

TEST(Request, Img2ImgNeedsOneInitImageOfTheOutputSize) {
    Image img;
    img.width = 16;
    img.height = 24;
    img.channels = 3;
    img.pixels.assign(16 * 24 * 3, 128);
    auto png = encode_image(img, ImageFormat::Png);
    ASSERT_TRUE(png);
    const std::string b64 = base64_encode(png->data(), png->size());

    auto none = parse(R"({"prompt": "x"})", RequestKind::Img2Img);
    EXPECT_NE(message_of(none).find("init_images: img2img needs init_images"), std::string::npos) << message_of(none);

    // Without width/height the output takes the image's size.
    auto r = parse(json{{"init_images", {b64}}, {"denoising_strength", 0.5}}.dump(), RequestKind::Img2Img);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->params.width, 16);
    EXPECT_EQ(r->params.height, 24);
    EXPECT_DOUBLE_EQ(r->params.denoising_strength, 0.5);
    ASSERT_TRUE(r->params.init_image);

    auto data_url = parse(json{{"init_images", {"data:image/png;base64," + b64}}}.dump(), RequestKind::Img2Img);
    EXPECT_TRUE(data_url) << message_of(data_url);

    auto mismatch = parse(json{{"init_images", {b64}}, {"width", 64}, {"height", 64}}.dump(), RequestKind::Img2Img);
    EXPECT_NE(message_of(mismatch).find("the init image is 16x24 but the request asks for 64x64"), std::string::npos) << message_of(mismatch);
    auto garbage = parse(R"({"init_images": ["!!!"]})", RequestKind::Img2Img);
    EXPECT_NE(message_of(garbage).find("init_images[0]: invalid base64 character at offset 0"), std::string::npos) << message_of(garbage);
    auto not_image = parse(json{{"init_images", {base64_encode(std::string("hello world"))}}}.dump(), RequestKind::Img2Img);
    EXPECT_FALSE(not_image);
    EXPECT_NE(message_of(not_image).find("init_images[0]"), std::string::npos) << message_of(not_image);

    // Inpainting: the mask must match the init image; invert works; masked content and "only masked" (whose width
    // and height are the size the masked box is inpainted at) are parsed; out of range values are refused.
    auto mask_ok = parse(json{{"init_images", {b64}}, {"mask", b64}, {"inpainting_mask_invert", 1}}.dump(), RequestKind::Img2Img);
    ASSERT_TRUE(mask_ok) << message_of(mask_ok);
    ASSERT_TRUE(mask_ok->params.mask);
    EXPECT_EQ(mask_ok->params.mask->pixels[0], 127);  // 255 - 128
    EXPECT_EQ(mask_ok->params.masked_content, MaskedContent::Original);
    EXPECT_FALSE(mask_ok->params.inpaint_only_masked);
    auto full_res = parse(json{{"init_images", {b64}}, {"mask", b64}, {"inpaint_full_res", true}, {"inpaint_full_res_padding", 0},
                               {"width", 64}, {"height", 64}}.dump(), RequestKind::Img2Img);
    ASSERT_TRUE(full_res) << message_of(full_res);
    EXPECT_TRUE(full_res->params.inpaint_only_masked);
    EXPECT_EQ(full_res->params.inpaint_padding, 0);
    EXPECT_EQ(full_res->params.width, 64);  // the processing size; the init image stays 16x24
    EXPECT_EQ(full_res->params.init_image->width, 16);
    auto full_res_no_mask = parse(json{{"init_images", {b64}}, {"inpaint_full_res", true}, {"width", 64}, {"height", 64}}.dump(),
                                  RequestKind::Img2Img);
    EXPECT_NE(message_of(full_res_no_mask).find("the init image is 16x24 but the request asks for 64x64"), std::string::npos);
    auto fill = parse(json{{"init_images", {b64}}, {"mask", b64}, {"inpainting_fill", 0}}.dump(), RequestKind::Img2Img);
    ASSERT_TRUE(fill) << message_of(fill);
    EXPECT_EQ(fill->params.masked_content, MaskedContent::Fill);
    auto bad_fill = parse(json{{"init_images", {b64}}, {"mask", b64}, {"inpainting_fill", 4}}.dump(), RequestKind::Img2Img);
    EXPECT_NE(message_of(bad_fill).find("inpainting_fill"), std::string::npos) << message_of(bad_fill);
    auto bad_pad = parse(json{{"init_images", {b64}}, {"mask", b64}, {"inpaint_full_res_padding", 999}}.dump(), RequestKind::Img2Img);
    EXPECT_NE(message_of(bad_pad).find("inpaint_full_res_padding"), std::string::npos) << message_of(bad_pad);
}

TEST(Request, Base64RoundTripAndErrors) {
    for (const std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
        const std::string e = base64_encode(s);
        auto d = base64_decode(e, "x");
        ASSERT_TRUE(d) << e;
        EXPECT_EQ(*d, s);
    }
    EXPECT_EQ(base64_encode(std::string("foobar")), "Zm9vYmFy");
    EXPECT_EQ(base64_encode(std::string("fo")), "Zm8=");
    EXPECT_EQ(*base64_decode("Zm9v\nYmFy", "x"), "foobar");
    EXPECT_FALSE(base64_decode("Zm8=Zm8=", "x"));  // data after padding
    EXPECT_FALSE(base64_decode("Z", "x"));         // truncated
}

TEST(Request, SamplerAndSchedulerListsAreA1111Shaped) {
    const json s = samplers_json();
    ASSERT_TRUE(s.is_array());
    bool euler_a = false;
    for (const json& e : s) {
        ASSERT_TRUE(e.contains("name") && e.contains("aliases") && e.contains("options"));
        if (e["name"] == "Euler a") euler_a = true;
        // Every listed name parses back.
        auto r = parse(json{{"sampler_name", e["name"]}}.dump());
        EXPECT_TRUE(r) << e.dump();
    }
    EXPECT_TRUE(euler_a);
    for (const json& e : schedulers_json()) {
        ASSERT_TRUE(e.contains("name") && e.contains("label"));
        auto r = parse(json{{"scheduler", e["name"]}}.dump());
        EXPECT_TRUE(r) << e.dump();
    }
}

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("easel_store_test_" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    // A queued txt2img job with an empty request, as submit() would store it.
    static JobRecord queued_job(const std::string& id, const std::string& model, int64_t created_ms) {
        JobRecord j;
        j.id = id;
        j.model = model;
        j.kind = "txt2img";
        j.request_json = "{}";
        j.status = "queued";
        j.created_ms = created_ms;
        return j;
    }
    fs::path dir_;
};

TEST_F(StoreTest, JobsSurviveReopeningAndRunningOnesAreQueuedAgain) {
    {
        auto s = Store::open((dir_ / "db").string());
        ASSERT_TRUE(s) << s.error().to_string();
        for (int i = 0; i < 4; ++i) {
            JobRecord j = queued_job("job" + std::to_string(i), "tiny", 1000 + i);
            ASSERT_TRUE((*s)->insert_job(j));
        }
        ASSERT_TRUE((*s)->set_running("job0", 2000));
        ASSERT_TRUE((*s)->finish_job("job1", "done", "", 3000, R"({"images":[]})"));
    }  // closed without finishing job0: what a crash leaves
    auto s = Store::open((dir_ / "db").string());
    ASSERT_TRUE(s);
    auto again = (*s)->requeue_unfinished();
    ASSERT_TRUE(again);
    ASSERT_EQ(again->size(), 3u);
    EXPECT_EQ((*again)[0].id, "job0");  // the cut-off job first, then in submission order
    EXPECT_EQ((*again)[0].status, "queued");
    EXPECT_EQ((*again)[1].id, "job2");
    auto one = (*s)->get_job("job1");
    ASSERT_TRUE(one && *one);
    EXPECT_EQ((*one)->status, "done");
    auto list = (*s)->list_jobs("", true, 10);
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 4u);
    EXPECT_EQ((*list)[0].id, "job3");  // newest first
}

// A job that was running each time the server stopped (what a job that crashes the process looks like) is run
// again once, then quarantined: it fails with the reason and no later restart replays it.
TEST_F(StoreTest, AJobCutOffTwiceIsQuarantined) {
    for (int run = 1; run <= 3; ++run) {
        auto s = Store::open((dir_ / "db").string());
        ASSERT_TRUE(s) << s.error().to_string();
        if (run == 1) {
            JobRecord j = queued_job("poison", "tiny", 1000);
            ASSERT_TRUE((*s)->insert_job(j));
            JobRecord k = queued_job("innocent", "tiny", 1001);
            ASSERT_TRUE((*s)->insert_job(k));
        } else {
            auto again = (*s)->requeue_unfinished();
            ASSERT_TRUE(again) << again.error().to_string();
            auto poison = (*s)->get_job("poison");
            ASSERT_TRUE(poison && *poison);
            if (run == 2) {
                ASSERT_EQ(again->size(), 2u);  // started once: queued again, ahead of the other
                EXPECT_EQ((*again)[0].id, "poison");
                EXPECT_EQ((*poison)->status, "queued");
            } else {
                ASSERT_EQ(again->size(), 1u);  // started twice: quarantined; the other job still runs
                EXPECT_EQ((*again)[0].id, "innocent");
                EXPECT_EQ((*poison)->status, "failed");
                EXPECT_NE((*poison)->error.find("quarantined"), std::string::npos) << (*poison)->error;
                EXPECT_NE((*poison)->error.find("2 times"), std::string::npos) << (*poison)->error;
                continue;
            }
        }
        ASSERT_TRUE((*s)->set_running("poison", 2000 + run));  // ... and the process dies mid-job
    }
}

// A database written before the attempts column (schema version 0) is migrated on open; one from a newer easel is
// refused instead of being used.
TEST_F(StoreTest, SchemaIsMigratedAndANewerOneRefused) {
    {
        auto s = Store::open((dir_ / "db").string());
        ASSERT_TRUE(s);
        JobRecord j = queued_job("old", "tiny", 1000);
        ASSERT_TRUE((*s)->insert_job(j));
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "db").c_str(), &db), SQLITE_OK);
    // Back to version 0's tables: the same columns but jobs.attempts and keys.admin, with a key in it.
    ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE jobs DROP COLUMN attempts; ALTER TABLE keys DROP COLUMN admin; "
                               "INSERT INTO keys (id, name, hash, quota_per_day, rate_per_min, created_ms) "
                               "VALUES ('k1', 'old-key', 'abc', 0, 0, 1); PRAGMA user_version = 0",
                           nullptr, nullptr, nullptr),
              SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
    {
        auto s = Store::open((dir_ / "db").string());
        ASSERT_TRUE(s) << s.error().to_string();
        ASSERT_TRUE((*s)->set_running("old", 2000));  // needs the attempts column
        auto again = (*s)->requeue_unfinished();
        ASSERT_TRUE(again) << again.error().to_string();
        EXPECT_EQ(again->size(), 1u);
        auto keys = (*s)->list_keys();  // the old key is kept, and is not an admin
        ASSERT_TRUE(keys) << keys.error().to_string();
        ASSERT_EQ(keys->size(), 1u);
        EXPECT_EQ((*keys)[0].name, "old-key");
        EXPECT_FALSE((*keys)[0].admin);
    }
    ASSERT_EQ(sqlite3_open((dir_ / "db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    auto newer = Store::open((dir_ / "db").string());
    ASSERT_FALSE(newer);
    EXPECT_NE(newer.error().to_string().find("schema version 99"), std::string::npos) << newer.error().to_string();
}

TEST_F(StoreTest, RetentionRemovesTheOldestFinishedJobs) {
    auto s = Store::open((dir_ / "db").string());
    ASSERT_TRUE(s);
    for (int i = 0; i < 5; ++i) {
        JobRecord j = queued_job("j" + std::to_string(i), "m", 0);
        ASSERT_TRUE((*s)->insert_job(j));
        if (i != 2) {
            ASSERT_TRUE((*s)->finish_job(j.id, "done", "", 1, "{}"));
        }
    }
    auto pruned = (*s)->prune_finished(2);
    ASSERT_TRUE(pruned);
    ASSERT_EQ(pruned->size(), 2u);  // j0 and j1 go; j2 is still queued; j3, j4 are kept
    EXPECT_EQ((*pruned)[0].id, "j1");
    EXPECT_EQ((*pruned)[1].id, "j0");
    EXPECT_TRUE((*s)->get_job("j2").value().has_value());
    EXPECT_FALSE((*s)->get_job("j0").value().has_value());
}

TEST_F(StoreTest, KeysAreStoredHashedAndCanBeRevoked) {
    auto s = Store::open((dir_ / "db").string());
    ASSERT_TRUE(s);
    const std::string secret = new_key_secret();
    EXPECT_EQ(secret.size(), 6u + 40u);
    KeyRecord k{new_key_id(), "alice", sha256_hex(secret), 10, 5, 1, false};
    ASSERT_TRUE((*s)->insert_key(k));
    KeyRecord dup = k;
    dup.id = new_key_id();
    auto st = (*s)->insert_key(dup);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().to_string().find("a key named 'alice' exists already"), std::string::npos);
    EXPECT_EQ((*s)->active_key_count().value(), 1);
    auto found = (*s)->find_key_by_hash(sha256_hex(secret));
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->name, "alice");
    EXPECT_FALSE((*s)->find_key_by_hash(sha256_hex(secret + "x")).value().has_value());
    ASSERT_TRUE((*s)->add_images(k.id, "2026-11-26", 3));
    ASSERT_TRUE((*s)->add_images(k.id, "2026-11-26", 4));
    EXPECT_EQ((*s)->images_on_day(k.id, "2026-11-26").value(), 7);
    EXPECT_EQ((*s)->images_on_day(k.id, "2026-11-27").value(), 0);
    ASSERT_TRUE((*s)->revoke_key("alice"));
    EXPECT_EQ((*s)->active_key_count().value(), 0);
    EXPECT_FALSE((*s)->revoke_key("bob"));
}

TEST(Auth, Sha256KnownAnswerAndBasicCredentials) {
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    BasicCredentials c;
    std::string err;
    ASSERT_TRUE(parse_basic_credentials("user:pa:ss,bob:x", &c, &err)) << err;
    EXPECT_TRUE(c.check(base64_encode(std::string("user:pa:ss"))));
    EXPECT_TRUE(c.check(base64_encode(std::string("bob:x"))));
    EXPECT_FALSE(c.check(base64_encode(std::string("bob:y"))));
    EXPECT_FALSE(c.check("%%%"));
    BasicCredentials bad;
    EXPECT_FALSE(parse_basic_credentials("nocolon", &bad, &err));
    EXPECT_NE(err.find("expected user:password"), std::string::npos);
}

TEST(Auth, RateLimiterSlidingMinute) {
    RateLimiter rl;
    int retry = 0;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.allow("k", 3, 1000 + i, &retry));
    EXPECT_FALSE(rl.allow("k", 3, 5000, &retry));
    EXPECT_EQ(retry, 56);  // the first hit (t=1000) leaves the window at t=61000
    EXPECT_TRUE(rl.allow("other", 3, 5000, &retry));
    EXPECT_TRUE(rl.allow("k", 3, 61001, &retry));
    EXPECT_TRUE(rl.allow("k", 0, 61001, &retry));  // 0 = unlimited
}

}  // namespace
