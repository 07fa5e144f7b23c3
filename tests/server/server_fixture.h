// A running `easel serve` for tests: run_server on a thread (port 0, a fresh data folder, the embedded model), an
// httplib client, and helpers for JSON requests.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/image.h"
#include "server/request.h"
#include "server/server.h"

namespace easel::testing {

using json = nlohmann::json;

// A PNG of a JSON answer (base64), decoded; and an image as the base64 PNG a request sends.
inline Image decode_b64_png(const std::string& b64) {
    auto bytes = server::base64_decode(b64, "image");
    EXPECT_TRUE(bytes);
    if (!bytes) return Image{};
    auto img = decode_image(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
    EXPECT_TRUE(img) << img.error().to_string();
    return img ? *img : Image{};
}

inline std::string png_b64(const Image& img) {
    auto png = encode_image(img, ImageFormat::Png, {});
    EXPECT_TRUE(png);
    return png ? server::base64_encode(png->data(), png->size()) : std::string();
}

inline std::string tiny_model_dir() { return std::string(EASEL_SOURCE_DIR) + "/models/tiny"; }

inline std::filesystem::path fresh_dir(const std::string& tag) {
    static int counter = 0;
    auto d = std::filesystem::temp_directory_path() /
             ("easel_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

class ServerFixture : public ::testing::Test {
protected:
    void start(server::ServeOptions o = {}) {
        if (o.data_dir.empty()) o.data_dir = data_.string();
        if (o.models.empty() && o.models_dir.empty()) o.models = {tiny_model_dir()};
        if (o.worker_exe.empty()) o.worker_exe = EASEL_CLI;  // the test binary is not easel: its workers are
        o.port = 0;
        auto port = std::make_shared<std::promise<int>>();
        auto set = std::make_shared<std::atomic<bool>>(false);
        auto f = port->get_future();
        o.on_listening = [port, set](int p) {
            if (!set->exchange(true)) port->set_value(p);
        };
        options_ = o;
        thread_ = std::thread([this, o, port, set] {
            auto st = server::run_server(o);
            if (!st) start_error_ = st.error().to_string();
            if (!set->exchange(true)) port->set_value(-1);
        });
        port_ = f.get();
        ASSERT_GT(port_, 0) << "the server did not start: " << start_error_;
        client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
        client_->set_read_timeout(120);
    }
    void stop() {
        if (thread_.joinable()) {
            server::stop_server();
            thread_.join();
        }
    }
    void SetUp() override { data_ = fresh_dir("server"); }
    void TearDown() override {
        stop();
        std::filesystem::remove_all(data_);
    }

    httplib::Headers auth(const std::string& key) const {
        return key.empty() ? httplib::Headers{} : httplib::Headers{{"Authorization", "Bearer " + key}};
    }
    // POST/GET/DELETE returning (status, parsed JSON body or null).
    std::pair<int, json> post(const std::string& path, const json& body, const std::string& key = "") {
        auto r = client_->Post(path.c_str(), auth(key), body.dump(), "application/json");
        return decode(r);
    }
    std::pair<int, json> post_raw(const std::string& path, const std::string& body, const std::string& key = "") {
        auto r = client_->Post(path.c_str(), auth(key), body, "application/json");
        return decode(r);
    }
    std::pair<int, json> get(const std::string& path, const std::string& key = "") { return decode(client_->Get(path.c_str(), auth(key))); }
    std::pair<int, json> del(const std::string& path, const std::string& key = "") { return decode(client_->Delete(path.c_str(), auth(key))); }

    // Polls a job until it is done, failed or cancelled.
    json wait_job(const std::string& id, const std::string& key = "", int timeout_s = 120) {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            auto [st, j] = get("/v1/jobs/" + id, key);
            if (st != 200) return j;
            const std::string s = j.value("status", "");
            if (s == "done" || s == "failed" || s == "cancelled") return j;
            if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(timeout_s)) return j;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    static std::pair<int, json> decode(const httplib::Result& r) {
        if (!r) return {0, json(nullptr)};
        json j = json::parse(r->body, nullptr, false);
        return {r->status, j.is_discarded() ? json(r->body) : j};
    }

    std::filesystem::path data_;
    server::ServeOptions options_;
    std::thread thread_;
    std::string start_error_;
    int port_ = 0;
    std::unique_ptr<httplib::Client> client_;
};

}  // namespace easel::testing
