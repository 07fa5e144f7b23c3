// easel on PostgreSQL with the real binaries: a PostgreSQL server started for the test, 2 front ends (`easel serve
// --store`) and 3 workers (`easel worker`) with the embedded model, 20 clients with 4 API keys submitting 200 jobs
// each through either front end. Meanwhile one worker is killed with SIGKILL mid-job twice (started again each
// time), and one front end once. Afterwards: no accepted job is lost or failed, each has exactly one result and image, each key
// was charged exactly its quota (its clients ask for more), the queue bound answered 429, and a restarted front end
// serves what the others accepted.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "child_server.h"
#include "postgres_server.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using easel::testing::Child;

namespace {

void kill_and_reap(Child& c, int sig) {
    if (c.pid <= 0) return;
    kill(c.pid, sig);
    int st = 0;
    waitpid(c.pid, &st, 0);
    c.pid = -1;
}

// Every process the test started, killed (and reaped) however the test ends, so a failed assertion leaves none
// behind holding ctest's output pipe.
struct Reaper {
    std::vector<Child*> children;
    ~Reaper() {
        for (Child* c : children) kill_and_reap(*c, SIGKILL);
    }
};

Child start_worker(const std::string& url, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"worker", "--store", url, "--lease", "3", "--keep-jobs", "100000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return easel::testing::start_easel(args);
}

TEST(Cluster, TwoFrontEndsThreeWorkersSurviveKills) {
    constexpr int kClients = 20, kJobsPerClient = 200, kKeys = 4, kQueue = 48;
    constexpr int kQuota = kClients / kKeys * kJobsPerClient - 40;  // each key's clients ask for 40 images more
    easel::testing::TempPostgres pg;
    ASSERT_TRUE(pg.start()) << pg.error;
    const std::string url = pg.url();
    const fs::path scratch = fs::temp_directory_path() / ("easel_cluster_" + std::to_string(getpid()));
    fs::remove_all(scratch);
    const std::vector<std::string> fe_flags = {"--store", url, "--queue-size", std::to_string(kQueue), "--lease", "3"};

    // A worker refuses a store whose schema no front end has created yet.
    {
        Child early = start_worker(url);
        int st = 0;
        waitpid(early.pid, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0) << "a worker ran on a store without the schema";
    }
    Child fe[2] = {easel::testing::start_server(scratch / "fe0", fe_flags), easel::testing::start_server(scratch / "fe1", fe_flags)};
    Child workers[3];
    Reaper reaper{{&fe[0], &fe[1], &workers[0], &workers[1], &workers[2]}};
    ASSERT_GT(fe[0].port, 0) << fe[0].first_line;
    ASSERT_GT(fe[1].port, 0) << fe[1].first_line;

    // API keys live in the store: created once, every front end knows them.
    std::vector<std::string> secrets;
    for (int k = 0; k < kKeys; ++k) {
        Child c = easel::testing::start_easel({"keys", "create", "--store", url, "--name", "client" + std::to_string(k), "--quota",
                                               std::to_string(kQuota)});
        int st = 0;
        waitpid(c.pid, &st, 0);
        ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ASSERT_EQ(c.first_line.rfind("easel_", 0), 0u) << c.first_line;
        secrets.push_back(c.first_line);
    }
    for (Child& w : workers) {
        w = start_worker(url);
        ASSERT_EQ(w.first_line.rfind("easel worker: ready", 0), 0u) << w.first_line;
    }

    std::atomic<int> ports[2];
    ports[0] = fe[0].port;
    ports[1] = fe[1].port;
    std::mutex mu;
    std::vector<std::pair<std::string, int>> accepted;  // job id, key
    std::atomic<int> quota_refused{0}, queue_full{0}, unexpected{0}, lost_answers{0};
    std::atomic<bool> clients_done{false};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
        clients.emplace_back([&, c] {
            const int key = c % kKeys;
            int side = c % 2;
            for (int i = 0; i < kJobsPerClient; ++i) {
                const json body = {{"prompt", "a green triangle"}, {"seed", c * 1000 + i}, {"steps", 1}, {"width", 16}, {"height", 16}};
                for (int tries = 0; tries < 20000; ++tries) {
                    httplib::Client cl("127.0.0.1", ports[side].load());
                    cl.set_connection_timeout(2);
                    cl.set_read_timeout(30);
                    auto r = cl.Post("/v1/jobs", {{"Authorization", "Bearer " + secrets[size_t(key)]}}, body.dump(), "application/json");
                    if (!r) {  // that front end is gone (killed): the other one takes over; the job may have been queued
                        ++lost_answers;
                        side = 1 - side;
                        std::this_thread::sleep_for(std::chrono::milliseconds(50));
                        continue;
                    }
                    if (r->status == 202) {
                        std::lock_guard<std::mutex> lk(mu);
                        accepted.emplace_back(json::parse(r->body)["id"].get<std::string>(), key);
                        break;
                    }
                    const json e = json::parse(r->body, nullptr, false);
                    const std::string code = e.is_object() && e.contains("error") ? e["error"].value("code", "") : "";
                    if (r->status == 429 && code == "quota_exceeded") {
                        ++quota_refused;
                        break;
                    }
                    if (r->status == 429 && !r->get_header_value("Retry-After").empty()) {
                        ++queue_full;
                        std::this_thread::sleep_for(std::chrono::milliseconds(30));
                        continue;
                    }
                    ++unexpected;
                    std::fprintf(stderr, "unexpected answer %d: %s\n", r->status, r->body.c_str());
                    break;
                }
            }
        });

    // Chaos while the clients run: a worker killed mid-job twice (workers are always busy: the queue is full), then
    // a front end; each started again.
    std::thread chaos([&] {
        auto pause = [&](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
        pause(3000);
        kill_and_reap(workers[0], SIGKILL);
        workers[0] = start_worker(url);
        pause(3000);
        kill_and_reap(workers[0], SIGKILL);  // the same worker, started again, killed again
        workers[0] = start_worker(url);
        pause(2000);
        kill_and_reap(fe[0], SIGKILL);
        fe[0] = easel::testing::start_server(scratch / "fe0", fe_flags);
        ports[0] = fe[0].port;
    });
    for (auto& t : clients) t.join();
    chaos.join();
    clients_done = true;
    const double submit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(unexpected.load(), 0);
    EXPECT_GT(queue_full.load(), 0) << "the queue bound was never reached";
    ASSERT_GT(fe[0].port, 0) << "the front end did not start again: " << fe[0].first_line;

    // Every accepted job ends done, with one image, whichever front end is asked (the restarted one included).
    httplib::Client cl("127.0.0.1", fe[0].port);
    cl.set_read_timeout(30);
    std::map<std::string, int> status_count;
    int with_image = 0, rerun = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    for (size_t n = 0; n < accepted.size(); ++n) {
        const auto& [id, key] = accepted[n];
        const httplib::Headers auth = {{"Authorization", "Bearer " + secrets[size_t(key)]}};
        json j = json::object();
        std::string status;
        while (std::chrono::steady_clock::now() < deadline) {
            auto r = cl.Get(("/v1/jobs/" + id).c_str(), auth);
            if (!r || r->status != 200) {
                ADD_FAILURE() << id << ": " << (r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error()));
                break;
            }
            j = json::parse(r->body);
            status = j["status"];
            if (status != "queued" && status != "running") break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ++status_count[status];
        EXPECT_EQ(status, "done") << id << ": " << j.dump();
        if (j.value("attempts", 0) > 1) ++rerun;
        if (status == "done" && j["images"].size() == 1u && n % 50 == 0) {  // a sample of the images, from the store
            auto png = cl.Get(("/v1/jobs/" + id + "/images/0").c_str(), auth);
            ASSERT_TRUE(png);
            EXPECT_EQ(png->status, 200);
            EXPECT_EQ(png->body.substr(0, 4), "\x89PNG");
        }
        if (status == "done" && j["images"].size() == 1u) ++with_image;
    }
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(with_image, int(accepted.size()));
    EXPECT_GE(rerun, 1) << "no job was cut off by a killed worker and run again";

    // Each key: charged exactly its quota, and exactly that many jobs exist for it, none twice.
    int64_t listed_total = 0;
    for (int k = 0; k < kKeys; ++k) {
        auto r = cl.Get("/v1/jobs?limit=1000", {{"Authorization", "Bearer " + secrets[size_t(k)]}});
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        std::multiset<std::string> ids;
        int done = 0;
        const json listing = json::parse(r->body);
        for (const json& j : listing["jobs"]) {
            ids.insert(j["id"].get<std::string>());
            done += j["status"] == "done";
        }
        EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "a job listed twice";
        EXPECT_EQ(int(ids.size()), kQuota) << "key " << k << ": jobs in the store";
        EXPECT_EQ(done, kQuota) << "key " << k;
        listed_total += int64_t(ids.size());
        std::set<std::string> mine;
        for (const auto& [id, key] : accepted)
            if (key == k) mine.insert(id);
        for (const std::string& id : mine) EXPECT_EQ(ids.count(id), 1u) << "accepted job " << id << " is missing";
    }
    // The cluster's counters agree: as many results as jobs, none quarantined or failed.
    auto metrics = cl.Get("/metrics", {{"Authorization", "Bearer " + secrets[0]}});
    ASSERT_TRUE(metrics);
    const std::string m = metrics->body;
    EXPECT_NE(m.find(fmt::format("easel_jobs_finished_total{{status=\"done\"}} {}\n", listed_total)), std::string::npos) << m;
    EXPECT_NE(m.find("easel_jobs_finished_total{status=\"failed\"} 0\n"), std::string::npos) << m;
    EXPECT_NE(m.find("easel_jobs_quarantined_total 0\n"), std::string::npos) << m;
    EXPECT_NE(m.find("easel_workers_alive 3\n"), std::string::npos) << m;
    auto ready = cl.Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;

    std::printf("cluster: 2 front ends, 3 workers, %d clients x %d submissions: %zu accepted (+%lld whose answer was lost; "
                "%d submissions found their front end gone), %d refused for quota, %d answers 429 queue full, %d jobs run "
                "twice after a worker was killed; %.1f s to submit, %.1f s until all done (%.1f jobs/s)\n",
                kClients, kJobsPerClient, accepted.size(), static_cast<long long>(listed_total) - static_cast<long long>(accepted.size()),
                lost_answers.load(), quota_refused.load(), queue_full.load(), rerun, submit_s, total_s, double(listed_total) / total_s);
    // A graceful stop of each.
    for (Child* c : reaper.children) {
        kill_and_reap(*c, SIGTERM);
        c->pid = -1;
    }
    fs::remove_all(scratch);
}

// What a client sees of one job through another front end: live progress (Server-Sent Events) and previews from a
// worker on "another machine", a cancel sent to one front end and seen by the other, AUTOMATIC1111's synchronous
// txt2img, tenants kept apart, readiness that follows the workers, a worker's graceful stop that puts its job back,
// and a job that crashes its worker's model process twice quarantined.
TEST(Cluster, ProgressCancelTenantsAndReadinessAcrossFrontEnds) {
    easel::testing::TempPostgres pg;
    ASSERT_TRUE(pg.start()) << pg.error;
    const std::string url = pg.url();
    const fs::path scratch = fs::temp_directory_path() / ("easel_cluster2_" + std::to_string(getpid()));
    const std::vector<std::string> fe_flags = {"--store", url, "--lease", "3"};
    Child a = easel::testing::start_server(scratch / "a", fe_flags), b = easel::testing::start_server(scratch / "b", fe_flags);
    Child worker;
    Reaper reaper{{&a, &b, &worker}};
    ASSERT_GT(a.port, 0) << a.first_line;
    ASSERT_GT(b.port, 0) << b.first_line;
    httplib::Client ca("127.0.0.1", a.port), cb("127.0.0.1", b.port);
    ca.set_read_timeout(60);
    cb.set_read_timeout(60);

    // No worker yet: not ready, and the reason says so.
    auto ready = ca.Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 503);
    EXPECT_NE(ready->body.find("easel worker"), std::string::npos) << ready->body;

    std::string keys[2];
    for (int k = 0; k < 2; ++k) {
        Child c = easel::testing::start_easel({"keys", "create", "--store", url, "--name", "tenant" + std::to_string(k)});
        int st = 0;
        waitpid(c.pid, &st, 0);
        keys[k] = c.first_line;
    }
    const httplib::Headers k0 = {{"Authorization", "Bearer " + keys[0]}}, k1 = {{"Authorization", "Bearer " + keys[1]}};
    setenv("EASEL_TEST_WORKER_CRASH", "CRASH-HERE", 1);  // inherited by the worker, and by its model's process
    worker = start_worker(url);
    unsetenv("EASEL_TEST_WORKER_CRASH");
    ASSERT_EQ(worker.first_line.rfind("easel worker: ready", 0), 0u) << worker.first_line;
    ready = cb.Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;

    // A long job, submitted to A, followed on B.
    const json slow = {{"prompt", "a slow blue square"}, {"steps", 150}, {"width", 256}, {"height", 256}, {"seed", 3}};
    auto r = ca.Post("/v1/jobs", k0, slow.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 202) << r->body;
    const std::string id = json::parse(r->body)["id"];
    std::vector<std::string> events;
    std::mutex ev_mu;
    std::thread sse([&] {
        httplib::Client cs("127.0.0.1", b.port);
        cs.set_read_timeout(60);
        std::string buf;
        cs.Get(("/v1/jobs/" + id + "/events").c_str(), k0, [&](const char* data, size_t n) {
            buf.append(data, n);
            for (size_t e; (e = buf.find("\n\n")) != std::string::npos; buf.erase(0, e + 2)) {
                std::lock_guard<std::mutex> lk(ev_mu);
                events.push_back(buf.substr(0, e));
            }
            return true;
        });
    });
    // Progress and a preview reach B while the job runs on the worker.
    json seen;
    bool preview = false;
    for (int i = 0; i < 300 && !(preview && seen.value("step", 0) >= 2); ++i) {
        auto j = cb.Get(("/v1/jobs/" + id + "?preview=1").c_str(), k0);
        ASSERT_TRUE(j);
        ASSERT_EQ(j->status, 200) << j->body;
        seen = json::parse(j->body);
        preview = preview || (seen.contains("preview") && seen["preview"].get<std::string>().rfind("data:image/png;base64,", 0) == 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(seen["status"], "running") << seen.dump();
    EXPECT_GE(seen.value("step", 0), 2) << seen.dump();
    EXPECT_EQ(seen["total_steps"], 150);
    EXPECT_TRUE(preview) << "no preview reached the other front end";
    // Another key sees nothing of it, on either front end.
    auto other = cb.Get(("/v1/jobs/" + id).c_str(), k1);
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, 404);
    auto other_cancel = ca.Delete(("/v1/jobs/" + id).c_str(), k1);
    ASSERT_TRUE(other_cancel);
    EXPECT_EQ(other_cancel->status, 404);
    auto list1 = cb.Get("/v1/jobs", k1);
    ASSERT_TRUE(list1);
    EXPECT_EQ(json::parse(list1->body)["jobs"].size(), 0u);
    // Cancelled through A: the worker stops it, B's stream ends with it.
    auto cancel = ca.Delete(("/v1/jobs/" + id).c_str(), k0);
    ASSERT_TRUE(cancel);
    EXPECT_EQ(cancel->status, 200) << cancel->body;
    sse.join();
    {
        std::lock_guard<std::mutex> lk(ev_mu);
        ASSERT_FALSE(events.empty());
        EXPECT_EQ(events.front().rfind("event: progress", 0), 0u) << events.front();
        EXPECT_EQ(events.back().rfind("event: cancelled", 0), 0u) << events.back();
    }

    // AUTOMATIC1111's blocking txt2img through B.
    auto t2i = cb.Post("/sdapi/v1/txt2img", k0, json({{"prompt", "a red circle"}, {"steps", 2}, {"width", 32}, {"height", 32}}).dump(),
                       "application/json");
    ASSERT_TRUE(t2i);
    ASSERT_EQ(t2i->status, 200) << t2i->body.substr(0, 300);
    const json out = json::parse(t2i->body);
    ASSERT_EQ(out["images"].size(), 1u);
    EXPECT_EQ(out["images"][0].get<std::string>().rfind("iVBORw0KGgo", 0), 0u);  // a PNG
    EXPECT_NE(out["info"].get<std::string>().find("\"all_seeds\""), std::string::npos);
    // The history through either front end: found by its prompt on A, removed with its image on B.
    auto found = ca.Get("/v1/jobs?q=RED%20CIRCLE", k0);
    ASSERT_TRUE(found);
    const json hits = json::parse(found->body)["jobs"];
    ASSERT_FALSE(hits.empty()) << found->body;
    const std::string done_id = hits[0]["id"];
    EXPECT_EQ(json::parse(ca.Get("/v1/jobs?q=no%20such%20prompt", k0)->body)["jobs"].size(), 0u);
    auto other_purge = cb.Delete(("/v1/jobs/" + done_id + "?purge=1").c_str(), k1);
    ASSERT_TRUE(other_purge);
    EXPECT_EQ(other_purge->status, 404);
    auto purged = cb.Delete(("/v1/jobs/" + done_id + "?purge=1").c_str(), k0);
    ASSERT_TRUE(purged);
    EXPECT_EQ(purged->status, 200) << purged->body;
    EXPECT_EQ(ca.Get(("/v1/jobs/" + done_id + "/images/0").c_str(), k0)->status, 404);

    // A job that crashes the model's process: run again once, then quarantined; the worker keeps serving.
    auto poison = ca.Post("/v1/jobs", k0, json({{"prompt", "CRASH-HERE"}, {"steps", 2}}).dump(), "application/json");
    ASSERT_TRUE(poison);
    ASSERT_EQ(poison->status, 202);
    const std::string pid_ = json::parse(poison->body)["id"];
    json pj;
    for (int i = 0; i < 600; ++i) {
        pj = json::parse(cb.Get(("/v1/jobs/" + pid_).c_str(), k0)->body);
        if (pj["status"] != "queued" && pj["status"] != "running") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(pj["status"], "failed") << pj.dump();
    EXPECT_EQ(pj["error"].get<std::string>().rfind("quarantined", 0), 0u) << pj.dump();

    // A graceful stop of the worker puts its running job back in the queue, without counting the attempt.
    r = ca.Post("/v1/jobs", k0, slow.dump(), "application/json");
    ASSERT_TRUE(r);
    const std::string id2 = json::parse(r->body)["id"];
    for (int i = 0; i < 300; ++i) {
        auto j = json::parse(cb.Get(("/v1/jobs/" + id2).c_str(), k0)->body);
        if (j["status"] == "running" && j.value("step", 0) >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill_and_reap(worker, SIGTERM);
    auto back = json::parse(cb.Get(("/v1/jobs/" + id2).c_str(), k0)->body);
    EXPECT_EQ(back["status"], "queued") << back.dump();
    EXPECT_EQ(back["attempts"], 0) << back.dump();
    auto gone = cb.Delete(("/v1/jobs/" + id2).c_str(), k0);  // queued: cancelled at once, no worker needed
    ASSERT_TRUE(gone);
    EXPECT_EQ(json::parse(gone->body)["status"], "cancelled") << gone->body;
    fs::remove_all(scratch);
}

}  // namespace
