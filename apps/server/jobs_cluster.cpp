// JobQueue as a front end of a PostgreSQL store: jobs are validated here as on one machine, then stored; `easel
// worker` processes anywhere claim and run them and report progress, previews and images through the store, which
// every front end reads, so a client may ask any of them.
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "jobs.h"

namespace easel::server {

namespace {
bool sees(const Caller& c, const std::string& key_id) { return c.all_jobs || key_id == c.key_id; }
json parse_or_empty(const std::string& s) {
    json j = json::parse(s.empty() ? "{}" : s, nullptr, false);
    return j.is_object() ? j : json::object();
}
}  // namespace

Status JobQueue::cluster_start() {
    // What validation needs (configs, tokenizer) for every model, never the weights: those are the workers'.
    LoadOptions lo = load_;
    lo.with_vae_encoder = true;
    for (const ModelEntry& m : models_) {
        auto spec = load_model_spec(m.path, lo);
        if (!spec && &m == &models_.front()) return Error::bad_file(m.path, spec.error().to_string());
        if (!spec) log_warn("serve", "model '{}' cannot be read: {}", m.name, spec.error().to_string());
        EASEL_TRY(cluster_set_spec(m.name, spec ? std::make_unique<ModelSpec>(std::move(spec).value()) : nullptr,
                                   spec ? std::string() : spec.error().to_string()));
    }
    EASEL_TRY_ASSIGN(auto reaped, cluster_->reap_expired());
    if (reaped.first || reaped.second)
        log_info("serve", "{} job(s) whose worker was lost are queued again, {} quarantined", reaped.first, reaped.second);
    return ok();
}

Result<JobQueue::Submitted> JobQueue::cluster_submit(JobRecord& rec, const QuotaCharge* charge) {
    EASEL_TRY_ASSIGN(int position, cluster_->submit_job(rec, limits_.queue_size, charge));
    return Submitted{rec.id, position};
}

json JobQueue::cluster_record_json(const JobRecord& r, bool with_preview) {
    json o = record_json(r);
    o["attempts"] = r.attempts;  // claims by workers: 2 when its first worker was lost mid-job
    if (r.status == "queued") {
        auto pos = cluster_->queue_position(r.id);
        o["queue_position"] = pos ? *pos : 0;
    }
    if (r.status == "running") {
        // What the job's worker reported with its last heartbeat.
        const json p = parse_or_empty(r.progress_json);
        o["step"] = p.value("step", 0);
        o["total_steps"] = p.value("total_steps", o.value("total_steps", 0));
        o["image_index"] = p.value("image_index", 0);
        o["image_count"] = p.value("image_count", 1);
        o["progress"] = p.value("progress", 0.0);
        o["eta_s"] = p.contains("eta_s") ? p["eta_s"] : json(nullptr);
        if (with_preview)
            if (auto png = cluster_->preview(r.id); png && !png->empty()) o["preview"] = "data:image/png;base64," + base64_encode(*png);
    }
    return o;
}

Result<json> JobQueue::cluster_job_json(const std::string& id, const Caller& caller, bool with_preview) {
    EASEL_TRY_ASSIGN(auto rec, cluster_->get_job(id));
    if (!rec || !sees(caller, rec->key_id)) return Error::not_found(fmt::format("no job '{}'", id));
    if (with_preview && rec->status == "running") (void)cluster_->want_preview(id);  // its worker sends previews now
    return cluster_record_json(*rec, with_preview);
}

Result<json> JobQueue::cluster_list_json(const Caller& caller, int limit, const JobFilter& filter) {
    EASEL_TRY_ASSIGN(auto recs, cluster_->list_jobs(caller.key_id, caller.all_jobs, limit, filter));
    json jobs = json::array();
    for (const JobRecord& r : recs) jobs.push_back(cluster_record_json(r, false));
    return json{{"jobs", jobs}};
}

Result<json> JobQueue::cluster_cancel(const std::string& id, const Caller& caller) {
    EASEL_TRY_ASSIGN(auto rec, cluster_->get_job(id));
    if (!rec || !sees(caller, rec->key_id)) return Error::not_found(fmt::format("no job '{}'", id));
    if (!is_terminal(rec->status)) EASEL_TRY(cluster_->cancel(id));  // queued: at once; running: by its worker
    return cluster_job_json(id, caller, false);
}

Result<std::string> JobQueue::cluster_image_png(const std::string& id, int index, const Caller& caller) {
    EASEL_TRY_ASSIGN(auto rec, cluster_->get_job(id));
    if (!rec || !sees(caller, rec->key_id)) return Error::not_found(fmt::format("no job '{}'", id));
    EASEL_TRY_ASSIGN(auto png, cluster_->image(id, index));
    if (!png) return Error::not_found(fmt::format("job '{}' has no image {} (status {})", id, index, rec->status));
    return std::move(*png);
}

Result<json> JobQueue::cluster_a1111_result(const std::string& id) {
    EASEL_TRY_ASSIGN(auto rec, cluster_->get_job(id));
    if (!rec) return Error::not_found(fmt::format("no job '{}'", id));
    if (rec->status == "failed") return Error::invalid_argument(rec->error);
    const json result = parse_or_empty(rec->result_json);
    json params = json::parse(rec->request_json, nullptr, false);
    json images = json::array();
    EASEL_TRY_ASSIGN(int n, cluster_->image_count(id));
    for (int i = 0; i < n; ++i) {
        EASEL_TRY_ASSIGN(auto png, cluster_->image(id, i));
        if (png) images.push_back(base64_encode(*png));
    }
    return json{{"images", images}, {"parameters", params.is_discarded() ? json::object() : params},
                {"info", safe_dump(result.contains("info") ? result["info"] : json::object())}};
}

json JobQueue::cluster_a1111_progress(bool with_image, const Caller& caller) {
    json state = {{"skipped", false}, {"interrupted", false}, {"job", ""}, {"job_count", 0},
                  {"job_timestamp", "0"}, {"job_no", 0}, {"sampling_step", 0}, {"sampling_steps", 0}};
    json idle = {{"progress", 0.0}, {"eta_relative", 0.0}, {"state", state}, {"current_image", nullptr}, {"textinfo", nullptr}};
    auto active = cluster_->active_jobs(caller.key_id, caller.all_jobs);
    if (!active) return idle;
    const JobRecord* running = nullptr;
    for (const JobRecord& r : *active)
        if (r.status == "running" && (!running || r.started_ms < running->started_ms)) running = &r;
    state["job_count"] = int(active->size());
    idle["state"] = state;
    if (!running) return idle;
    const json p = parse_or_empty(running->progress_json);
    const int image = p.value("image_index", 0), images = p.value("image_count", 1);
    state["job"] = fmt::format("Batch {} out of {}", image + 1, images);
    state["job_timestamp"] = job_timestamp(running->started_ms);
    state["job_no"] = image;
    state["sampling_step"] = p.value("step", 0);
    state["sampling_steps"] = p.value("total_steps", 0);
    json current = nullptr;
    if (with_image) {
        (void)cluster_->want_preview(running->id);
        if (auto png = cluster_->preview(running->id); png && !png->empty()) current = base64_encode(*png);
    }
    const json eta = p.contains("eta_s") ? p["eta_s"] : json(0.0);
    return json{{"progress", p.value("progress", 0.0)}, {"eta_relative", eta.is_number() ? eta : json(0.0)}, {"state", state},
                {"current_image", current}, {"textinfo", nullptr}};
}

uint64_t JobQueue::cluster_wait_change(const std::string& id, uint64_t seen, int timeout_ms) {
    // Workers report through the store: poll the job's change counter (a few queries a second per waiting client).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto v = cluster_->job_version(id);
        const uint64_t now = !v ? seen : *v ? uint64_t(**v) : UINT64_MAX;  // a store error: unchanged, try again
        if (now != seen || std::chrono::steady_clock::now() >= deadline) return now;
        {
            std::lock_guard<std::mutex> lk(mu_);
            if (stopping_) return now;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

bool JobQueue::cluster_serves(const std::string& model) const {
    auto workers = cluster_->live_workers(worker_max_age_ms_);
    if (!workers) return false;
    for (const auto& w : *workers)
        for (const std::string& m : w.models)
            if (m == model) return true;
    return false;
}

bool JobQueue::cluster_ready(std::string* why) const {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) {
            *why = "the server is stopping";
            return false;
        }
    }
    auto workers = cluster_->live_workers(worker_max_age_ms_);
    if (!workers) {
        *why = workers.error().to_string();
        return false;
    }
    const std::string def = default_model();
    for (const auto& w : *workers)
        for (const std::string& m : w.models)
            if (m == def) return true;
    *why = fmt::format("no worker serving the default model '{}' has sent a heartbeat in the last {} s (start `easel worker "
                       "--store URL -m MODEL`)", def, worker_max_age_ms_ / 1000);
    return false;
}

std::string JobQueue::cluster_metrics_text() const {
    // Gauges are the store's now; counters are the whole cluster's since its database was created.
    std::string o;
    auto family = [&](const char* name, const char* type, const char* help) {
        o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    const auto lines = cluster_->queue_by_model();
    const auto counters = cluster_->counters();
    const auto workers = cluster_->live_workers(worker_max_age_ms_);
    if (!lines || !counters || !workers) {
        family("easel_store_up", "gauge", "Whether the PostgreSQL store answered.");
        return o + "easel_store_up 0\n";
    }
    auto count = [&](const std::string& name) {
        auto it = counters->find(name);
        return it == counters->end() ? 0.0 : it->second;
    };
    family("easel_store_up", "gauge", "Whether the PostgreSQL store answered.");
    o += "easel_store_up 1\n";
    family("easel_queue_depth", "gauge", "Jobs waiting, per model.");
    for (const ModelEntry& m : models_) {
        auto it = lines->find(m.name);
        o += fmt::format("easel_queue_depth{{model=\"{}\"}} {}\n", prometheus_label(m.name), it == lines->end() ? 0 : it->second.first);
    }
    family("easel_jobs_running", "gauge", "Jobs running, per model.");
    for (const ModelEntry& m : models_) {
        auto it = lines->find(m.name);
        o += fmt::format("easel_jobs_running{{model=\"{}\"}} {}\n", prometheus_label(m.name), it == lines->end() ? 0 : it->second.second);
    }
    family("easel_jobs_finished_total", "counter", "Jobs that ended, over the cluster, by outcome.");
    for (const char* st : {"done", "failed", "cancelled"})
        o += fmt::format("easel_jobs_finished_total{{status=\"{}\"}} {}\n", st, count(std::string("finished:") + st));
    family("easel_jobs_quarantined_total", "counter", "Jobs failed for bringing down their worker twice, or losing it on each claim.");
    o += fmt::format("easel_jobs_quarantined_total {}\n", count("quarantined"));
    family("easel_jobs_timed_out_total", "counter", "Jobs failed for running past --job-timeout.");
    o += fmt::format("easel_jobs_timed_out_total {}\n", count("timed_out"));
    family("easel_workers_alive", "gauge", "`easel worker` processes with a recent heartbeat.");
    o += fmt::format("easel_workers_alive {}\n", workers->size());
    family("easel_job_latency_seconds", "histogram", "Seconds from submission to the end of a job.");
    for (double b : kJobLatencyBounds)
        o += fmt::format("easel_job_latency_seconds_bucket{{le=\"{}\"}} {}\n", b, count(fmt::format("latency_le:{}", b)));
    o += fmt::format("easel_job_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", count("latency_count"));
    o += fmt::format("easel_job_latency_seconds_sum {}\n", count("latency_sum"));
    o += fmt::format("easel_job_latency_seconds_count {}\n", count("latency_count"));
    return o;
}

}  // namespace easel::server
