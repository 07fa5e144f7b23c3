// How `easel serve --store postgresql://` scales with workers (`make bench-cluster`): a PostgreSQL server started
// for the run (as the tests start theirs), one front end, and 1, 2, then 3 `easel worker` processes with the
// embedded model; for each, a closed loop of clients that submit a job, follow it to its end and submit the next.
// Reports jobs per second and the p50/p99 latency from submission to the end of a job (the store's own times), and
// the same load on the single-machine `easel serve` (SQLite, its own worker process) for comparison.
//
//   easel_bench_cluster [--jobs 300] [--clients 8] [--steps 4] [--size 32]
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "child_server.h"
#include "postgres_server.h"

using json = nlohmann::json;
namespace fs = std::filesystem;
using easel::testing::Child;

namespace {

struct Settings {
    int jobs = 300, clients = 8, steps = 4, size = 32;
};

struct Outcome {
    double jobs_per_s = 0, p50_ms = 0, p99_ms = 0;
    int done = 0, failed = 0;
};

int64_t parse_iso_ms(const std::string& s) {  // "2026-12-06T03:26:30.909Z"
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return int64_t(timegm(&tm)) * 1000 + ms;
}

// A closed loop of `clients` clients over `jobs` jobs against the server on `port`.
Outcome run_load(int port, const Settings& s) {
    std::atomic<int> next{0}, failed{0};
    std::mutex mu;
    std::vector<double> latencies;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int c = 0; c < s.clients; ++c)
        ts.emplace_back([&] {
            httplib::Client cl("127.0.0.1", port);
            cl.set_read_timeout(120);
            for (int i; (i = next++) < s.jobs;) {
                const json body = {{"prompt", "a green triangle on a white background"}, {"seed", i}, {"steps", s.steps},
                                   {"width", s.size}, {"height", s.size}};
                auto r = cl.Post("/v1/jobs", body.dump(), "application/json");
                if (!r || r->status != 202) {
                    ++failed;
                    continue;
                }
                const std::string id = json::parse(r->body)["id"];
                for (;;) {
                    auto g = cl.Get(("/v1/jobs/" + id).c_str());
                    if (!g || g->status != 200) {
                        ++failed;
                        break;
                    }
                    const json j = json::parse(g->body);
                    const std::string st = j["status"];
                    if (st == "done") {
                        std::lock_guard<std::mutex> lk(mu);
                        latencies.push_back(double(parse_iso_ms(j["finished"]) - parse_iso_ms(j["created"])));
                        break;
                    }
                    if (st != "queued" && st != "running") {
                        ++failed;
                        break;
                    }
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
            }
        });
    for (auto& t : ts) t.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Outcome o;
    o.done = int(latencies.size());
    o.failed = failed;
    o.jobs_per_s = o.done / secs;
    std::sort(latencies.begin(), latencies.end());
    if (!latencies.empty()) {
        o.p50_ms = latencies[latencies.size() / 2];
        o.p99_ms = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
    }
    return o;
}

void stop(Child& c) {
    if (c.pid <= 0) return;
    kill(c.pid, SIGTERM);
    int st = 0;
    waitpid(c.pid, &st, 0);
    c.pid = -1;
}

void print(const char* what, const Outcome& o) {
    std::printf("| %-34s | %8.1f | %8.0f | %8.0f | %5d | %6d |\n", what, o.jobs_per_s, o.p50_ms, o.p99_ms, o.done, o.failed);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string f = argv[i];
        const int v = std::atoi(argv[i + 1]);
        if (f == "--jobs") s.jobs = v;
        else if (f == "--clients") s.clients = v;
        else if (f == "--steps") s.steps = v;
        else if (f == "--size") s.size = v;
        else {
            std::fprintf(stderr, "usage: easel_bench_cluster [--jobs N] [--clients N] [--steps N] [--size PX]\n");
            return 2;
        }
    }
    if (s.jobs < 1 || s.clients < 1 || s.steps < 1 || s.size < 16) {
        std::fprintf(stderr, "easel_bench_cluster: --jobs, --clients and --steps must be positive, --size at least 16\n");
        return 2;
    }
    std::printf("easel_bench_cluster: %d jobs (embedded model, %dx%d, %d steps), %d clients in a closed loop, %u CPUs\n\n",
                s.jobs, s.size, s.size, s.steps, s.clients, std::thread::hardware_concurrency());
    std::printf("| %-34s | %8s | %8s | %8s | %5s | %6s |\n|%s|%s|%s|%s|%s|%s|\n", "setup", "jobs/s", "p50 ms", "p99 ms", "done",
                "failed", std::string(36, '-').c_str(), std::string(10, '-').c_str(), std::string(10, '-').c_str(),
                std::string(10, '-').c_str(), std::string(7, '-').c_str(), std::string(8, '-').c_str());
    const fs::path scratch = fs::temp_directory_path() / ("easel_bench_cluster_" + std::to_string(getpid()));
    {
        // One machine, SQLite: `easel serve` alone.
        Child local = easel::testing::start_server(scratch / "local", {"--queue-size", "1000"});
        if (local.port <= 0) {
            std::fprintf(stderr, "easel serve did not start: %s\n", local.first_line.c_str());
            return 1;
        }
        print("easel serve (SQLite, 1 worker)", run_load(local.port, s));
        stop(local);
    }
    easel::testing::TempPostgres pg;
    if (!pg.start()) {
        std::fprintf(stderr, "%s\n", pg.error.c_str());
        return 1;
    }
    Child fe = easel::testing::start_server(scratch / "fe", {"--store", pg.url(), "--queue-size", "1000"});
    if (fe.port <= 0) {
        std::fprintf(stderr, "easel serve --store did not start: %s\n", fe.first_line.c_str());
        return 1;
    }
    std::vector<Child> workers;
    for (int n = 1; n <= 3; ++n) {
        workers.push_back(easel::testing::start_easel({"worker", "--store", pg.url(), "--keep-jobs", "100000"}));
        if (workers.back().first_line.rfind("easel worker: ready", 0) != 0) {
            std::fprintf(stderr, "easel worker did not start: %s\n", workers.back().first_line.c_str());
            return 1;
        }
        const std::string what = "PostgreSQL, 1 front end, " + std::to_string(n) + (n == 1 ? " worker" : " workers");
        print(what.c_str(), run_load(fe.port, s));
    }
    for (Child& w : workers) stop(w);
    stop(fe);
    std::error_code ec;
    fs::remove_all(scratch, ec);
    return 0;
}
