// A bounded load test of the real `easel serve` binary on 127.0.0.1: 20 concurrent clients submit 200 jobs to a
// queue of 16. Every submission must be accepted (202) or refused with 429 + Retry-After (refused jobs are sent
// again after a pause); every accepted job must finish with its image, none lost or duplicated; the server's
// peak RSS stays bounded and it stops cleanly.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "child_server.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// kB of a "VmHWM:" style line of /proc/PID/status.
long proc_status_kb(pid_t pid, const std::string& field) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

TEST(Load, TwentyClientsTwoHundredJobs) {
    constexpr int kClients = 20, kJobsPerClient = 10, kQueue = 16;
    const fs::path data = fs::temp_directory_path() / ("easel_load_" + std::to_string(getpid()));
    fs::remove_all(data);
    const easel::testing::Child server = easel::testing::start_server(data, {"--queue-size", std::to_string(kQueue)});
    ASSERT_GT(server.port, 0) << server.first_line;
    const pid_t pid = server.pid;
    const int port = server.port;

    const auto t0 = std::chrono::steady_clock::now();
    std::mutex mu;
    std::vector<std::string> accepted;
    std::atomic<int> refused{0}, unexpected{0}, missing_retry_after{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
        clients.emplace_back([&, c] {
            httplib::Client cl("127.0.0.1", port);
            cl.set_read_timeout(60);
            for (int i = 0; i < kJobsPerClient; ++i) {
                // A refused job is tried again after a pause (as a client honouring Retry-After would, faster),
                // for up to 3 minutes, so both the bound and the eventual completion of every job are exercised.
                const json body = {{"prompt", "a green triangle on a white background"}, {"seed", c * 1000 + i}, {"steps", 4}};
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
                while (std::chrono::steady_clock::now() < deadline) {
                    auto r = cl.Post("/v1/jobs", body.dump(), "application/json");
                    if (!r) {
                        ++unexpected;
                        std::fprintf(stderr, "no answer: %s\n", httplib::to_string(r.error()).c_str());
                        break;
                    }
                    if (r->status == 202) {
                        std::lock_guard<std::mutex> lk(mu);
                        accepted.push_back(json::parse(r->body)["id"]);
                        break;
                    }
                    if (r->status != 429) {
                        ++unexpected;
                        std::fprintf(stderr, "unexpected answer %d: %s\n", r->status, r->body.c_str());
                        break;
                    }
                    ++refused;
                    if (r->get_header_value("Retry-After").empty()) ++missing_retry_after;
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                }
            }
        });
    for (auto& t : clients) t.join();
    EXPECT_EQ(unexpected.load(), 0);
    EXPECT_EQ(missing_retry_after.load(), 0);
    EXPECT_EQ(int(accepted.size()), kClients * kJobsPerClient) << "every job is accepted in the end";
    EXPECT_GT(refused.load(), 0) << "the queue bound was never reached";
    EXPECT_EQ(std::set<std::string>(accepted.begin(), accepted.end()).size(), accepted.size()) << "duplicate job ids";

    // Every accepted job completes with its image.
    httplib::Client cl("127.0.0.1", port);
    cl.set_read_timeout(60);
    int done = 0;
    for (const std::string& id : accepted) {
        std::string status;
        json j;
        for (int k = 0; k < 3000 && status != "done" && status != "failed"; ++k) {
            auto r = cl.Get(("/v1/jobs/" + id).c_str());
            if (!r || r->status != 200) break;
            j = json::parse(r->body);
            status = j["status"];
            if (status != "done") std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        EXPECT_EQ(status, "done") << id << ": " << j.dump();
        if (status == "done" && j["images"].size() == 1u) ++done;
    }
    // The job list holds each accepted job exactly once and nothing else.
    auto list = cl.Get("/v1/jobs?limit=1000");
    ASSERT_TRUE(list);
    std::multiset<std::string> listed;
    ASSERT_EQ(list->status, 200) << list->body;
    const json listing = json::parse(list->body);
    for (const json& j : listing["jobs"]) listed.insert(j["id"].get<std::string>());
    EXPECT_EQ(listed, std::multiset<std::string>(accepted.begin(), accepted.end()));

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const long hwm_kb = proc_status_kb(pid, "VmHWM");
    std::printf("load: %d clients x %d jobs: %zu accepted, %d submissions refused with 429, %d done with an image, %.1f s, server peak RSS %.0f MiB\n",
                kClients, kJobsPerClient, accepted.size(), refused.load(), done, secs, double(hwm_kb) / 1024.0);
    EXPECT_EQ(done, int(accepted.size()));
    EXPECT_GT(hwm_kb, 0);
    EXPECT_LT(hwm_kb, 1024L * 1024L) << "peak RSS above 1 GiB";  // the tiny model needs tens of MiB
    auto alive = cl.Get("/v1/models");
    ASSERT_TRUE(alive);
    EXPECT_EQ(alive->status, 200);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
    fs::remove_all(data);
}

}  // namespace
