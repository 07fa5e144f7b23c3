#include "cluster_worker.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "auth.h"
#include "core/log.h"
#include "jobs.h"
#include "pg_store.h"

namespace easel::server {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop = true; }

const Caller kAll{"", true};

// Waits (up to `limit`) for a local job to end.
void wait_terminal(JobQueue& q, const std::string& local_id, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    uint64_t seen = 0;
    while (Clock::now() < deadline) {
        seen = q.wait_change(local_id, seen, 250);
        auto j = q.job_json(local_id, kAll, false);
        if (!j || q.is_terminal((*j)["status"].get<std::string>())) return;
    }
}

// The PNG of a "data:image/png;base64,..." preview ("" when there is none).
std::string preview_png(const json& job) {
    if (!job.contains("preview") || !job["preview"].is_string()) return {};
    const std::string url = job["preview"].get<std::string>();
    const size_t comma = url.find(',');
    auto png = base64_decode(std::string_view(url).substr(comma == std::string::npos ? 0 : comma + 1), "preview");
    return png ? std::move(png).value() : std::string();
}

struct Context {
    PgStore& pg;
    JobQueue& q;
    Store& local;
    fs::path image_dir;
    int64_t lease_ms;
    Limits limits;
    std::function<void()> maintain;  // worker heartbeat and lease reaping, at most once a second
};

// Runs one claimed job in the local queue, relaying progress, previews and stop requests through the store, and
// stores its end (with the images) if the claim still holds.
void run_claimed(Context& cx, const PgStore::Claim& c) {
    const JobRecord& r = c.job;
    auto fail = [&](const std::string& why) {
        if (auto st = cx.pg.finish_claimed(r.id, c.token, "failed", why, "{}", {}); !st)
            log_warn("worker", "job {}: {}", r.id, st.error().to_string());
    };
    json body = json::parse(r.request_json, nullptr, false);
    if (!body.is_object()) return fail("the stored request is not a JSON object");
    auto parsed = parse_generation_request(body, r.kind == "img2img" ? RequestKind::Img2Img : RequestKind::Txt2Img,
                                           a1111_defaults(), cx.limits);
    if (!parsed) return fail(parsed.error().to_string());
    parsed->model = r.model;
    auto sub = cx.q.submit(*parsed, kAll);
    if (!sub) return fail(sub.error().to_string());
    const std::string local_id = sub->id;
    log_info("worker", "job {} (attempt {}) runs here as {}", r.id, r.attempts, local_id);

    const auto beat_every = std::chrono::milliseconds(std::max<int64_t>(250, cx.lease_ms / 4));
    uint64_t seen = 0;
    std::string sent_progress, sent_preview;
    bool want_preview = false;
    auto last_beat = Clock::now();
    for (;;) {
        seen = cx.q.wait_change(local_id, seen, 250);
        auto j = cx.q.job_json(local_id, kAll, want_preview);
        if (!j) return fail("the local job is gone: " + j.error().to_string());
        const std::string status = (*j)["status"].get<std::string>();
        if (cx.q.is_terminal(status)) break;
        if (g_stop) {  // a graceful stop: the job goes back to the queue, its attempt not counted
            cx.q.stop();
            if (auto st = cx.pg.release_claimed(r.id, c.token); !st) log_warn("worker", "job {}: {}", r.id, st.error().to_string());
            return;
        }
        cx.maintain();
        std::string progress;
        if (status == "running")
            progress = safe_dump({{"step", (*j)["step"]}, {"total_steps", (*j)["total_steps"]}, {"image_index", (*j)["image_index"]},
                                  {"image_count", (*j)["image_count"]}, {"progress", (*j)["progress"]}, {"eta_s", (*j)["eta_s"]}});
        std::string preview = preview_png(*j);
        if (preview == sent_preview) preview.clear();
        if (progress == sent_progress) progress.clear();
        const auto now = Clock::now();
        const bool changed = !progress.empty() || !preview.empty();
        if (now - last_beat < (changed ? std::chrono::milliseconds(200) : beat_every)) continue;
        auto beat = cx.pg.heartbeat(r.id, c.token, cx.lease_ms, progress, preview);
        last_beat = now;
        if (!beat) {  // the store is unreachable: go on; the lease decides whether the result will count
            log_warn("worker", "job {}: heartbeat failed: {}", r.id, beat.error().to_string());
            continue;
        }
        if (!*beat) {
            log_warn("worker", "job {}: its lease was lost (it was queued again or ended elsewhere); dropping it", r.id);
            (void)cx.q.cancel(local_id, kAll);
            wait_terminal(cx.q, local_id, std::chrono::seconds(15));
            return;
        }
        if (!progress.empty()) sent_progress = progress;
        if (!preview.empty()) sent_preview = preview;
        want_preview = (*beat)->preview_wanted_age_ms >= 0 && (*beat)->preview_wanted_age_ms < 3000;
        switch ((*beat)->control) {
            case kControlSkip: cx.q.skip_running(kAll); break;
            case kControlInterrupt: cx.q.interrupt_running(kAll); break;
            case kControlCancel: (void)cx.q.cancel(local_id, kAll); break;
            default: break;
        }
    }

    auto rec = cx.local.get_job(local_id);
    if (!rec || !*rec) return fail("the local record of the job is gone");
    json result = json::parse((*rec)->result_json.empty() ? "{}" : (*rec)->result_json, nullptr, false);
    if (!result.is_object()) result = json::object();
    std::vector<std::string> pngs;
    if ((*rec)->status == "done" && result.contains("images") && result["images"].is_array())
        for (json& im : result["images"]) {  // the files move into the store; their local paths mean nothing elsewhere
            const std::string path = im.is_object() ? im.value("file", "") : "";
            auto bytes = read_whole_file(path);
            if (!bytes) return fail(fmt::format("the image file {} is missing", path));
            pngs.push_back(std::move(*bytes));
            im.erase("file");
        }
    std::error_code ec;
    fs::remove_all(cx.image_dir / local_id, ec);
    auto stored = cx.pg.finish_claimed(r.id, c.token, (*rec)->status, (*rec)->error, safe_dump(result), pngs);
    if (!stored)
        log_warn("worker", "job {}: its result could not be stored ({}); it runs again once its lease lapses", r.id,
                 stored.error().to_string());
    else if (!*stored)
        log_warn("worker", "job {}: its lease was lost before it ended; the result is dropped (it runs elsewhere)", r.id);
}

}  // namespace

void stop_cluster_worker() { g_stop = true; }

Status run_cluster_worker(const ServeOptions& o, const ClusterWorkerOptions& w) {
    if (!is_postgres_url(o.store))
        return Error::invalid_argument(fmt::format("expected a postgresql://... URL, got '{}'", o.store), "--store");
    if (w.lease_s < 2 || w.lease_s > 3600)
        return Error::invalid_argument(fmt::format("must be between 2 and 3600 seconds, got {}", w.lease_s), "--lease");
    // The schema is the front ends' to change (`easel serve --store URL` or `--migrate`): refuse an older one.
    EASEL_TRY_ASSIGN(auto pg, PgStore::open(o.store, PgStore::Migrate::Refuse));
    std::string err;
    std::vector<ModelEntry> models = collect_models(o, &err);
    if (models.empty()) return Error::not_found(err);
    EASEL_TRY_ASSIGN(std::string exe, resolve_worker_exe(o));

    // This machine's queue keeps its scratch state (a SQLite file, image files before they move to the store) in a
    // temporary folder removed at the end.
    std::string tmpl = (fs::temp_directory_path() / "easel-worker-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return Error::io("cannot create a temporary folder", tmpl);
    struct Cleanup {
        fs::path p;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(p, ec);
        }
    } cleanup{tmpl};
    EASEL_TRY_ASSIGN(auto local, Store::open((cleanup.p / "jobs.db").string()));
    Limits lim = o.limits;
    lim.queue_size = 4;
    lim.keep_jobs = 2;
    JobQueue q(*local, models, o.load, lim, (cleanup.p / "images").string(), exe);
    configure_addon_dirs(q, o, models);
    EASEL_TRY(q.start());  // the first model loads in its worker process

    char host[256] = {};
    gethostname(host, sizeof host - 1);
    const std::string id = fmt::format("{}:{}:{}", host, getpid(), random_hex(3));
    std::vector<std::string> names;
    for (const ModelEntry& m : models) names.push_back(m.name);
    EASEL_TRY(pg->register_worker(id, host, getpid(), names));

    g_stop = false;
    struct sigaction sa {}, old_int {}, old_term {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    auto last = Clock::now() - std::chrono::hours(1);
    Context cx{*pg, q, *local, cleanup.p / "images", int64_t(w.lease_s) * 1000, o.limits, {}};
    cx.maintain = [&] {
        if (Clock::now() - last < std::chrono::seconds(1)) return;
        last = Clock::now();
        (void)pg->worker_heartbeat(id);
        if (auto reaped = pg->reap_expired(); reaped && (reaped->first || reaped->second))
            log_warn("worker", "{} job(s) whose worker was lost are queued again, {} quarantined", reaped->first, reaped->second);
    };
    std::string joined;
    for (const std::string& n : names) joined += (joined.empty() ? "" : ", ") + n;
    log_info("worker", "worker {} claims jobs for {}", id, joined);
    if (w.on_ready) w.on_ready(id);
    int finished = 0;
    while (!g_stop) {
        cx.maintain();
        auto claim = pg->claim_job(id, names, cx.lease_ms);
        if (!claim) {
            log_warn("worker", "cannot claim a job: {}", claim.error().to_string());
            std::this_thread::sleep_for(std::chrono::seconds(1));
            continue;
        }
        if (!*claim) {
            std::this_thread::sleep_for(std::chrono::milliseconds(w.poll_ms));
            continue;
        }
        run_claimed(cx, **claim);
        if (++finished % 20 == 0) (void)pg->prune_finished(o.limits.keep_jobs);
    }
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    (void)pg->remove_worker(id);
    q.stop();
    return ok();
}

}  // namespace easel::server
