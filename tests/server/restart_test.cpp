// Durability: jobs queued in `easel serve` survive `kill -9` and run after a restart; `easel keys` from the
// command line. Runs the real binary (EASEL_CLI) as a child process.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "child_server.h"
#include "io/file_hash.h"
#include "io/image.h"
#include "io/xmp.h"
#include "server/request.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using easel::testing::Child;
using easel::testing::start_server;

std::string run_cli(const std::string& args) {
    std::string out;
    FILE* p = popen((std::string(EASEL_CLI) + " " + args + " 2>&1").c_str(), "r");
    if (!p) return out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
}

TEST(Restart, QueuedJobsSurviveKill9) {
    const fs::path data = fs::temp_directory_path() / ("easel_restart_" + std::to_string(getpid()));
    fs::remove_all(data);
    Child a = start_server(data);
    ASSERT_GT(a.port, 0) << "the server did not start";
    httplib::Client c("127.0.0.1", a.port);
    c.set_read_timeout(60);
    // Three jobs of ~1 s each on the tiny model; the first is cut off mid-run, the other two are still queued.
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        auto r = c.Post("/v1/jobs", json{{"prompt", "a blue square"}, {"seed", 100 + i}, {"width", 64}, {"height", 64}, {"steps", 40}}.dump(),
                        "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 202) << r->body;
        ids.push_back(json::parse(r->body)["id"]);
    }
    for (int i = 0; i < 500; ++i) {
        auto r = c.Get(("/v1/jobs/" + ids[0]).c_str());
        if (r && json::parse(r->body)["status"] == "running") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const auto t_kill = std::chrono::steady_clock::now();
    kill(a.pid, SIGKILL);
    int status = 0;
    waitpid(a.pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));

    Child b = start_server(data);
    ASSERT_GT(b.port, 0) << "the server did not restart";
    httplib::Client c2("127.0.0.1", b.port);
    c2.set_read_timeout(60);
    for (const std::string& id : ids) {
        std::string st;
        json j;
        for (int i = 0; i < 600 && st != "done" && st != "failed"; ++i) {
            auto r = c2.Get(("/v1/jobs/" + id).c_str());
            ASSERT_TRUE(r);
            ASSERT_EQ(r->status, 200) << r->body;
            j = json::parse(r->body);
            st = j["status"];
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        EXPECT_EQ(st, "done") << j.dump();
        ASSERT_EQ(j["images"].size(), 1u);
        auto png = c2.Get(j["images"][0]["url"].get<std::string>().c_str());
        ASSERT_TRUE(png);
        EXPECT_EQ(png->status, 200);
    }
    std::printf("restart: %zu jobs queued, the first one running, kill -9; restarted and all %zu done %.1f s after the kill\n",
                ids.size(), ids.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count());
    kill(b.pid, SIGTERM);  // a clean stop
    waitpid(b.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    fs::remove_all(data);
}

TEST(Keys, CreateListRevokeFromTheCommandLine) {
    const fs::path data = fs::temp_directory_path() / ("easel_keys_" + std::to_string(getpid()));
    fs::remove_all(data);
    const std::string d = " --data " + data.string();
    const std::string created = run_cli("keys create --name ci --quota 5 --rate 60" + d);
    EXPECT_NE(created.find("easel_"), std::string::npos) << created;
    EXPECT_NE(created.find("shown only now"), std::string::npos) << created;
    const std::string dup = run_cli("keys create --name ci" + d);
    EXPECT_NE(dup.find("error: --name: a key named 'ci' exists already"), std::string::npos) << dup;
    const std::string list = run_cli("keys list" + d);
    EXPECT_NE(list.find("ci"), std::string::npos) << list;
    EXPECT_NE(list.find("active"), std::string::npos) << list;
    EXPECT_EQ(list.find("easel_"), std::string::npos) << "the secret must not be listed: " << list;
    EXPECT_NE(run_cli("keys revoke ci" + d).find("revoked ci"), std::string::npos);
    EXPECT_NE(run_cli("keys list" + d).find("revoked"), std::string::npos);
    EXPECT_NE(run_cli("keys revoke nobody" + d).find("error: no key with the id or name 'nobody'"), std::string::npos);
    EXPECT_NE(run_cli("keys frobnicate" + d).find("unknown keys command"), std::string::npos);
    // Several -m flags are all kept (the first missing one is named; a parser keeping only the last would start).
    const std::string two = run_cli("serve -m /nonexistent/first.safetensors -m " + std::string(EASEL_SOURCE_DIR) + "/models/tiny --port 0" + d);
    EXPECT_NE(two.find("error: -m /nonexistent/first.safetensors: no such file or folder"), std::string::npos) << two;
    const std::string bad = run_cli("serve --port 99999" + d);
    EXPECT_NE(bad.find("error: --port: must be between 0 and 65535, got 99999"), std::string::npos) << bad;
    fs::remove_all(data);
}

// What the real server's images say about themselves: A1111's info.sd_model_hash and the infotext's "Model hash"
// (the first 10 hex digits of the file's SHA-256), and the XMP label with the model's licence (--license).
TEST(Restart, ImagesCarryTheModelHashAndLicence) {
    const std::string golden = EASEL_GOLDEN_DIR;
    const std::string model = golden + "/pipeline_sd1_single/tiny-sd1.safetensors";
    const fs::path data = fs::temp_directory_path() / ("easel_hash_" + std::to_string(getpid()));
    fs::remove_all(data);
    easel::testing::Child s = easel::testing::start_server(
        data, {"-m", model, "--vocab", golden + "/pipeline_sd1/tokenizer", "--license", "test-licence-2.0"});
    ASSERT_GT(s.port, 0) << s.first_line;
    httplib::Client cl("127.0.0.1", s.port);
    cl.set_read_timeout(60);
    auto r = cl.Post("/sdapi/v1/txt2img", json({{"prompt", "a red circle"}, {"steps", 1}, {"width", 32}, {"height", 32}}).dump(),
                     "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body.substr(0, 300);
    const json out = json::parse(r->body);
    const json info = json::parse(out["info"].get<std::string>());
    auto sha = easel::sha256_file(model);
    ASSERT_TRUE(sha);
    const std::string short_hash = sha->substr(0, 10);
    EXPECT_EQ(info["sd_model_hash"], short_hash) << info.dump().substr(0, 300);
    EXPECT_NE(info["infotexts"][0].get<std::string>().find("Model hash: " + short_hash + ", Model: tiny-sd1"), std::string::npos)
        << info["infotexts"][0];
    auto png = easel::server::base64_decode(out["images"][0].get<std::string>(), "image");
    ASSERT_TRUE(png);
    auto text = easel::read_image_text(reinterpret_cast<const uint8_t*>(png->data()), png->size());
    ASSERT_TRUE(text);
    const easel::XmpFields x = easel::parse_xmp((*text)[std::string(easel::kXmpKey)]);
    EXPECT_EQ(easel::xmp_value(x, "Iptc4xmpExt:DigitalSourceType"), easel::kIptcTrainedAlgorithmicMedia);
    EXPECT_EQ(easel::xmp_value(x, "easel:ModelLicense"), "test-licence-2.0");
    EXPECT_EQ(easel::xmp_value(x, "easel:ModelHash"), short_hash);
    auto models = cl.Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(json::parse(models->body)["models"][0]["license"], "test-licence-2.0");
    kill(s.pid, SIGTERM);
    int st = 0;
    waitpid(s.pid, &st, 0);
    fs::remove_all(data);
}

}  // namespace
