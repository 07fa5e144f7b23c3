// Fuzzes `easel serve` over HTTP: every input is one request to a live server (run_server in this process, on
// loopback, with the embedded model generating in its worker processes). Byte 0 picks the route and the rest is
// the body (or the job id in the path). The server must answer every request, with a status below 500: no input
// may crash it, hang it or reach an assertion. Small limits (64 px, 50 steps, 10 s a job) keep each request fast.
// EASEL_ROUTES_FUZZ_VERBOSE=1 prints each answer (route, status, the start of the body).
#include <atomic>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>
#include <httplib.h>

#include "server/server.h"

namespace {

struct LiveServer {
    int port = -1;
    std::unique_ptr<httplib::Client> client;
    std::thread thread;
};
std::atomic<bool> g_exiting{false};

LiveServer& live_server() {
    static LiveServer* s = [] {
        auto* live = new LiveServer();
        const auto dir = std::filesystem::temp_directory_path() / ("easel_routes_fuzz_" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        easel::server::ServeOptions o;
        o.data_dir = dir.string();
        o.models = {std::string(EASEL_SOURCE_DIR) + "/models/tiny"};
        o.port = 0;
        o.worker_exe = EASEL_CLI;
        o.limits.max_width = o.limits.max_height = 64;
        o.limits.max_steps = 50;  // A1111 img2img defaults to 50; the tiny model takes ~5 ms a step at 32 px
        o.limits.max_images = 2;
        o.limits.max_body_bytes = 1 << 20;
        o.limits.queue_size = 4;
        o.limits.keep_jobs = 20;
        o.limits.job_timeout_s = 10;
        auto port = std::make_shared<std::promise<int>>();
        auto fut = port->get_future();
        o.on_listening = [port](int p) { port->set_value(p); };
        live->thread = std::thread([o] {
            auto st = easel::server::run_server(o);
            if (g_exiting) return;
            std::fprintf(stderr, "routes fuzz: the server stopped: %s\n", st ? "ok" : st.error().to_string().c_str());
            std::abort();  // the server must never stop by itself
        });
        live->port = fut.get();
        if (live->port <= 0) std::abort();
        live->client = std::make_unique<httplib::Client>("127.0.0.1", live->port);
        live->client->set_read_timeout(60);
        // At exit (the replay's end), stop the server the way SIGTERM does before anything it uses is destroyed.
        std::atexit([] {
            g_exiting = true;
            easel::server::stop_server();
            live_server().thread.join();
        });
        return live;
    }();
    return *s;
}

}  // namespace

constexpr int kRoutes = 15;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    LiveServer& s = live_server();
    const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
    // A job id in a path: the body's hex-looking prefix (the route's pattern takes 1 to 64 hex digits).
    std::string id;
    for (char c : body) {
        if (id.size() == 64 || !std::isxdigit(static_cast<unsigned char>(c))) break;
        id += char(std::tolower(static_cast<unsigned char>(c)));
    }
    if (id.empty()) id = "0";
    // The body as a query value (the history search), every byte percent-encoded.
    std::string query;
    for (unsigned char c : body) query += fmt::format("%{:02X}", c);
    auto request = [&]() -> httplib::Result {
        switch (data[0] % kRoutes) {
            case 0: return s.client->Post("/v1/jobs", body, "application/json");
            case 1: return s.client->Post("/sdapi/v1/txt2img", body, "application/json");
            case 2: return s.client->Post("/sdapi/v1/img2img", body, "application/json");
            case 3: return s.client->Post("/sdapi/v1/options", body, "application/json");
            case 4: return s.client->Post("/sdapi/v1/png-info", body, "application/json");
            case 5: return s.client->Get(("/v1/jobs/" + id + "?preview=1").c_str());
            case 6: return s.client->Delete(("/v1/jobs/" + id).c_str());
            case 7: return s.client->Get(("/v1/jobs/" + id + "/images/0").c_str());
            case 8: return s.client->Get("/sdapi/v1/progress?skip_current_image=false");
            case 9: return s.client->Post("/sdapi/v1/interrupt", body, "application/json");
            case 10: return s.client->Post("/v1/verify", body, "image/png");
            case 11: return s.client->Post("/v1/verify", body, "application/json");
            case 12: return s.client->Get(("/v1/jobs?q=" + query + "&model=" + query.substr(0, 30)).c_str());
            case 13: return s.client->Delete(("/v1/jobs/" + id + "?purge=1").c_str());
            default: return s.client->Get("/v1/usage");
        }
    };
    const httplib::Result r = request();
    if (!r) {
        std::fprintf(stderr, "routes fuzz: no answer (route %d, %zu bytes)\n", data[0] % kRoutes, size);
        std::abort();
    }
    if (std::getenv("EASEL_ROUTES_FUZZ_VERBOSE")) std::fprintf(stderr, "route %d: %d %s\n", data[0] % kRoutes, r->status, r->body.substr(0, 100).c_str());
    if (r->status >= 500) {
        std::fprintf(stderr, "routes fuzz: status %d (route %d): %s\n", r->status, data[0] % kRoutes, r->body.substr(0, 500).c_str());
        std::abort();
    }
    return 0;
}
