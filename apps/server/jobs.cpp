#include "jobs.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/log.h"
#include "io/image.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/lora.h"
#include "runtime/ops.h"
#include "worker.h"

namespace easel::server {

namespace fs = std::filesystem;

enum StopFlag : int { kNone = 0, kSkip = 1, kInterrupt = 2, kCancel = 3 };

struct JobQueue::Job {
    std::string id;
    std::string model;
    std::string key_id;
    std::string kind;
    int64_t created_ms = 0;
    int64_t started_ms = 0;
    GenerationRequest req;
    std::string status = "queued";
    std::string phase;
    int image = 0, images = 1, step = 0, total = 0;
    int batch = 1;                     // images sampled together from `image` on (their steps advance as one)
    int64_t preview_wanted_ms = 0;     // a client asked for a preview at this time
    std::string preview_png;           // the newest preview the worker sent (real VAE when cheap, else A1111's linear map)
    std::atomic<int> stop{kNone};
    int crashes = 0;                   // worker processes this job brought down in this run
    uint64_t version = 1;

    // Share of the whole job done (images x steps), 0 unless sampling has started.
    double progress() const {
        return total > 0 ? std::clamp((image + double(batch) * step / total) / std::max(1, images), 0.0, 1.0) : 0.0;
    }
};

struct JobQueue::Slot {
    ModelEntry entry;
    std::unique_ptr<ModelSpec> spec;        // configs and tokenizer: what validation needs (no weights here)
    std::unique_ptr<WorkerProcess> proc;    // the model's worker process; null until started or after it ended
    std::atomic<bool> worker_alive{false};  // proc is set (read by metrics_text from other threads)
    bool loaded = false, failed = false;
    std::string load_error;
    std::deque<std::shared_ptr<Job>> queue;
    std::thread thread;
};

namespace {

std::string random_id() {
    std::random_device rd;
    std::string s;
    for (int i = 0; i < 3; ++i) s += fmt::format("{:08x}", uint32_t(rd()));
    return s;
}

std::string iso_time(int64_t ms) {
    if (ms <= 0) return "";
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, int(ms % 1000));
}

json strip_images(json params) {
    // The gallery and job status carry the parameters without the (large) base64 images.
    for (const char* k : {"init_images", "mask"})
        if (params.contains(k)) params[k] = "(omitted)";
    if (auto s = params.find("alwayson_scripts"); s != params.end() && s->is_object())
        for (auto& [name, script] : s->items())
            if (script.is_object() && script.contains("args") && script["args"].is_array())
                for (json& unit : script["args"])
                    if (unit.is_object())
                        for (const char* k : {"input_image", "image", "mask"})
                            if (unit.contains(k)) unit[k] = "(omitted)";
    return params;
}

}  // namespace

std::string job_timestamp(int64_t ms) {
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

JobQueue::JobQueue(Store& store, std::vector<ModelEntry> models, LoadOptions load, Limits limits, std::string image_dir,
                   std::string worker_exe)
    : store_(&store), models_(std::move(models)), load_(std::move(load)), limits_(limits), image_dir_(std::move(image_dir)),
      worker_exe_(std::move(worker_exe)) {
    if (!models_.empty()) default_model_ = models_.front().name;
}

JobQueue::JobQueue(PgStore& cluster, std::vector<ModelEntry> models, LoadOptions load, Limits limits, int64_t worker_max_age_ms)
    : cluster_(&cluster), worker_max_age_ms_(worker_max_age_ms), models_(std::move(models)), load_(std::move(load)),
      limits_(limits) {
    if (!models_.empty()) default_model_ = models_.front().name;
}

JobQueue::~JobQueue() { stop(); }

void JobQueue::stop() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) return;
        stopping_ = true;
        for (auto& [id, j] : active_) j->stop = kCancel;  // running jobs stop at the next step; the store keeps them queued
    }
    cv_.notify_all();
    for (auto& [name, s] : slots_)
        if (s->thread.joinable()) s->thread.join();
    for (auto& [name, s] : slots_) {  // closes the socket; the worker exits (or is killed)
        s->worker_alive = false;
        s->proc.reset();
    }
}

std::string JobQueue::default_model() const {
    std::lock_guard<std::mutex> lk(mu_);
    return default_model_;
}

const ModelEntry* JobQueue::find_model(const std::string& n) const {
    for (const ModelEntry& m : models_)
        if (m.name == n || m.title == n) return &m;
    // A1111 titles carry a hash suffix ("name.safetensors [abcdef1234]"): match on what precedes it.
    const size_t sp = n.find(" [");
    if (sp != std::string::npos) return find_model(n.substr(0, sp));
    return nullptr;
}

JobQueue::Slot& JobQueue::slot_for(const std::string& name) {
    auto it = slots_.find(name);
    if (it != slots_.end()) return *it->second;
    auto s = std::make_unique<Slot>();
    for (const ModelEntry& m : models_)
        if (m.name == name) s->entry = m;
    Slot& ref = *s;
    slots_[name] = std::move(s);
    return ref;
}

void JobQueue::start_worker(Slot& slot) {
    if (!slot.thread.joinable()) slot.thread = std::thread([this, &slot] { worker(&slot); });
}

Status JobQueue::start() {
    if (models_.empty()) return Error::not_found("no model to serve");
    if (cluster_) return cluster_start();
    EASEL_TRY(set_default_model(models_.front().name));
    EASEL_TRY_ASSIGN(std::vector<JobRecord> pending, store_->requeue_unfinished());
    int requeued = 0;
    for (const JobRecord& r : pending) {
        const ModelEntry* m = find_model(r.model);
        json body = json::parse(r.request_json, nullptr, false);
        auto parsed = body.is_discarded() ? Result<GenerationRequest>(Error::bad_file("database", "unreadable request"))
                                          : parse_generation_request(body, r.kind == "img2img" ? RequestKind::Img2Img : RequestKind::Txt2Img,
                                                                     a1111_defaults(), limits_);
        if (!m || !parsed) {
            const std::string why = !m ? fmt::format("model '{}' is not served by this server any more", r.model)
                                       : "after a restart: " + parsed.error().to_string();
            EASEL_TRY(store_->finish_job(r.id, "failed", why, now_ms(), "{}"));
            continue;
        }
        auto job = std::make_shared<Job>();
        job->id = r.id;
        job->model = m->name;
        job->key_id = r.key_id;
        job->kind = r.kind;
        job->created_ms = r.created_ms;
        job->req = std::move(parsed).value();
        job->images = job->req.images();
        std::lock_guard<std::mutex> lk(mu_);
        Slot& s = slot_for(m->name);
        s.queue.push_back(job);
        active_[job->id] = job;
        start_worker(s);
        ++requeued;
    }
    if (requeued) log_info("serve", "{} unfinished job(s) from the previous run are queued again", requeued);
    cv_.notify_all();
    return ok();
}

Status JobQueue::set_default_model(const std::string& name_or_title) {
    const ModelEntry* m = find_model(name_or_title);
    if (!m) {
        std::string names;
        for (const ModelEntry& e : models_) names += (names.empty() ? "" : ", ") + e.title;
        return Error::not_found(fmt::format("no model '{}'; this server has {}", name_or_title, names));
    }
    std::unique_lock<std::mutex> lk(mu_);
    Slot& s = slot_for(m->name);
    if (!cluster_) start_worker(s);  // a front end loaded every model's spec at start (cluster_start)
    cv_.wait(lk, [&] { return s.loaded || s.failed || stopping_; });
    if (s.failed) return Error::bad_file(m->path, s.load_error);
    default_model_ = m->name;
    return ok();
}

Status JobQueue::cluster_set_spec(const std::string& name, std::unique_ptr<ModelSpec> spec, std::string error) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        Slot& s = slot_for(name);
        s.loaded = spec != nullptr;
        s.failed = spec == nullptr;
        s.spec = std::move(spec);
        s.load_error = std::move(error);
    }
    cv_.notify_all();
    return ok();
}

bool JobQueue::is_loaded(const std::string& name) const {
    if (cluster_) return cluster_serves(name);
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    return it != slots_.end() && it->second->loaded;
}

std::pair<int, int> JobQueue::native_size(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return {0, 0};
    const int s = it->second->spec->native_image_side();
    return {s, s};
}

std::string JobQueue::model_license(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return {};
    return it->second->spec->license;
}

std::string JobQueue::model_family(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return {};
    return it->second->spec->family;
}

int JobQueue::model_size_multiple(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return 0;
    return it->second->spec->latent.image_multiple();
}

std::optional<JobQueue::ModelControls> JobQueue::model_controls(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return std::nullopt;
    const ModelSpec& m = *it->second->spec;
    ModelControls c;
    if (m.guidance == GuidanceMode::Distilled) c.distilled_guidance = m.default_guidance;
    c.flow = m.sampling && m.sampling->flow_shift().has_value();
    c.skippable_blocks = m.skippable_blocks;
    return c;
}

std::optional<double> JobQueue::recommended_cfg_scale(const std::string& name) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end() || !it->second->loaded) return std::nullopt;
    return it->second->spec->defaults.cfg_scale;
}

Status JobQueue::start_process(Slot& slot) {
    slot.worker_alive = false;
    slot.proc.reset();
    EASEL_TRY_ASSIGN(auto proc, WorkerProcess::spawn(worker_exe_, worker_init_json(slot.entry.path, load_, limits_)));
    // Loading takes seconds (minutes for a first load of a big model): wait, but not past a stop.
    for (;;) {
        json m;
        const auto got = proc->receive(m, 200);
        if (got == WorkerProcess::Got::Exited)
            return Error::io(fmt::format("the worker process for '{}' {} while loading the model", slot.entry.name,
                                         proc->exit_cause()));
        if (got == WorkerProcess::Got::Timeout) {
            std::lock_guard<std::mutex> lk(mu_);
            if (stopping_) return Error::cancelled("the server is stopping");
            continue;
        }
        const std::string type = m.value("type", "");
        if (type == "load_failed") return Error::bad_file(slot.entry.path, m.value("error", "the model could not be loaded"));
        if (type != "ready") continue;
        log_info("serve", "model '{}' loaded from {} in worker process {}", slot.entry.name, slot.entry.path, proc->pid());
        std::lock_guard<std::mutex> lk(mu_);
        slot.proc = std::move(proc);
        slot.worker_alive = true;
        ++worker_starts_;
        return ok();
    }
}

void JobQueue::worker(Slot* slot) {
    LoadOptions lo = load_;
    lo.with_vae_encoder = true;  // img2img and inpainting jobs need it (the worker loads it so)
    auto spec = load_model_spec(slot->entry.path, lo);
    Status started = spec ? start_process(*slot) : Status(spec.error());
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (started) {
            slot->spec = std::make_unique<ModelSpec>(std::move(spec).value());
            slot->loaded = true;
        } else {
            slot->failed = true;
            slot->load_error = started.error().to_string();
            log_warn("serve", "model '{}' failed to load: {}", slot->entry.name, slot->load_error);
        }
    }
    cv_.notify_all();
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !slot->queue.empty(); });
            if (stopping_) return;
            job = slot->queue.front();
            slot->queue.pop_front();
            // Running from the moment it leaves the queue, under the same lock: a DELETE from now on asks it to
            // stop (cancel() sees it running). Marked running only later, a DELETE between the two (while a fresh
            // worker process started, say) finished it as a queued job, and this thread then ran it anyway: the
            // job went from "cancelled" back to "running" and ended "done", finished twice in the store.
            job->status = "running";
            job->started_ms = now_ms();
            ++job->version;
            if (slot->failed) {
                lk.unlock();
                finish(job, "failed", "the model could not be loaded: " + slot->load_error, json::object());
                continue;
            }
        }
        cv_.notify_all();
        if (!slot->proc) {  // the last one crashed, was killed, or timed out: a fresh worker
            if (auto st = start_process(*slot); !st) {
                if (st.error().code() == ErrorCode::Cancelled) return;
                finish(job, "failed", "no worker process: " + st.error().to_string(), json::object());
                continue;
            }
        }
        if (job->stop.load() == kCancel) {  // cancelled while its worker process started: never sent to it
            {
                std::lock_guard<std::mutex> lk(mu_);
                if (stopping_) return;  // shutting down: the store keeps it queued for the next start
            }
            finish(job, "cancelled", "cancelled", json::object());
            continue;
        }
        (void)store_->set_running(job->id, job->started_ms);
        run_job(*slot, job);
        prune();
    }
}

void JobQueue::requeue_crashed(Slot& slot, const std::shared_ptr<Job>& job, const std::string& cause) {
    ++job->crashes;
    {
        std::lock_guard<std::mutex> lk(mu_);
        ++worker_crashes_;
    }
    log_warn("serve", "job {}: the worker process for '{}' {}", job->id, slot.entry.name, cause);
    if (job->crashes >= kStoreMaxAttempts) {
        finish(job, "failed",
               fmt::format("quarantined: this job brought down its worker process {} times (last: {}); it is not run "
                           "again", job->crashes, cause),
               json::object());
        return;
    }
    (void)store_->set_queued(job->id, /*count_attempt=*/true);
    {
        std::lock_guard<std::mutex> lk(mu_);
        job->status = "queued";
        job->step = job->total = 0;
        job->preview_png.clear();
        ++job->version;
        slot.queue.push_front(job);  // once more, first, in a fresh worker
    }
    cv_.notify_all();
}

void JobQueue::run_job(Slot& slot, const std::shared_ptr<Job>& job) {
    if (auto st = validate_params(job->req.params, *slot.spec); !st) {
        finish(job, "failed", st.error().to_string(), json::object());
        return;
    }
    json msg = {{"type", "job"}, {"id", job->id}, {"kind", job->kind}, {"request", job->req.parameters},
                {"dir", (fs::path(image_dir_) / job->id).string()}};
    if (!job->req.refiner.empty()) {
        const ModelEntry* rm = find_model(job->req.refiner);
        if (!rm) {
            finish(job, "failed", fmt::format("the refiner '{}' is not served by this server any more", job->req.refiner),
                   json::object());
            return;
        }
        msg["refiner"] = rm->path;
    }
    // The LoRAs again (files may have changed since the job was queued, or the server restarted).
    auto loras = resolve_loras(job->req, slot.entry.path);
    if (!loras) {
        finish(job, "failed", loras.error().to_string(), json::object());
        return;
    }
    if (!loras->empty()) msg["loras"] = *loras;
    auto controlnets = resolve_controlnets(job->req, *slot.spec);
    if (!controlnets) {
        finish(job, "failed", controlnets.error().to_string(), json::object());
        return;
    }
    if (!controlnets->empty()) msg["controlnets"] = *controlnets;
    if (!embeddings_dir_.empty()) msg["embeddings_dir"] = embeddings_dir_;
    if (!slot.proc->send(msg)) {
        // The worker died while idle (killed from outside, say): not this job's doing. A fresh one, then once more.
        json ignored;
        slot.proc->receive(ignored, 1000);
        log_warn("serve", "the idle worker process for '{}' {}; starting another", slot.entry.name, slot.proc->exit_cause());
        Status st = start_process(slot);
        if (!st || !slot.proc->send(msg)) {
            const std::string cause = !st ? st.error().to_string() : "its new worker process stopped answering";
            slot.worker_alive = false;
            slot.proc.reset();
            if (!st && st.error().code() == ErrorCode::Cancelled) return;
            finish(job, "failed", "no worker process: " + cause, json::object());
            return;
        }
    }
    WorkerProcess& proc = *slot.proc;
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + std::chrono::seconds(limits_.job_timeout_s);
    int64_t preview_sent_ms = 0;
    int stop_sent = kNone;
    std::optional<std::chrono::steady_clock::time_point> cancel_sent;
    for (;;) {
        // Forward what the HTTP side asked for since the last look: skip, interrupt, cancel, a preview.
        int flag = job->stop.load();
        bool stopping;
        int64_t wanted;
        {
            std::lock_guard<std::mutex> lk(mu_);
            stopping = stopping_;
            wanted = job->preview_wanted_ms;
        }
        if (stopping) flag = kCancel;
        if (flag != kNone && flag != stop_sent) {
            (void)proc.send({{"type", "stop"}, {"id", job->id}, {"flag", flag}});
            if (flag == kSkip) job->stop.compare_exchange_strong(flag, kNone);  // one skip per request
            else stop_sent = flag;
            if (flag == kCancel) cancel_sent = std::chrono::steady_clock::now();
        }
        if (wanted > preview_sent_ms) {
            (void)proc.send({{"type", "preview"}, {"id", job->id}});
            preview_sent_ms = wanted;
        }
        const auto now = std::chrono::steady_clock::now();
        const bool cancel_overdue = cancel_sent && now - *cancel_sent > std::chrono::seconds(10);
        if (now > deadline || cancel_overdue) {
            proc.kill_now();
            {
                std::lock_guard<std::mutex> lk(mu_);
                slot.worker_alive = false;
                slot.proc.reset();
                if (!cancel_overdue && !stopping) ++timed_out_;
            }
            if (stopping) return;  // the store keeps it: the next start runs it again
            if (cancel_overdue) finish(job, "cancelled", "cancelled (the worker did not stop in 10 s and was restarted)", json::object());
            else finish(job, "failed", fmt::format("the job ran longer than the limit of {} s (--job-timeout); its worker "
                                                   "process was stopped and is started again", limits_.job_timeout_s), json::object());
            return;
        }

        json m;
        const auto got = proc.receive(m, 100);
        if (got == WorkerProcess::Got::Timeout) continue;
        if (got == WorkerProcess::Got::Exited) {
            const std::string cause = proc.exit_cause();
            slot.worker_alive = false;
            slot.proc.reset();
            if (stopping) return;
            requeue_crashed(slot, job, cause);
            return;
        }
        const std::string type = m.value("type", "");
        if (m.value("id", "") != job->id) continue;
        if (type == "progress") {
            {
                std::lock_guard<std::mutex> lk(mu_);
                job->phase = m.value("phase", "");
                job->images = m.value("images", 1);
                // The decode of each image of a batch sampled together keeps the batch's place (its sampling is
                // done), so the share never goes back.
                if (job->phase == "sampling") {
                    job->image = m.value("image", 0);
                    job->step = m.value("step", 0);
                    job->total = m.value("total", 0);
                    job->batch = std::clamp(m.value("batch", 1), 1, std::max(1, job->images - job->image));
                } else if (job->phase != "decode") {
                    job->image = m.value("image", 0);
                }
                ++job->version;
            }
            cv_.notify_all();
        } else if (type == "preview") {
            auto png = base64_decode(m.value("png", ""), "preview");
            if (png) {
                std::lock_guard<std::mutex> lk(mu_);
                job->preview_png = std::move(png).value();
                ++job->version;
            }
            cv_.notify_all();
        } else if (type == "failed") {
            if (m.value("cancelled", false)) {
                if (stopping) {  // shutting down: back to the queue for the next start, not counted as an attempt
                    (void)store_->set_queued(job->id, /*count_attempt=*/false);
                    return;
                }
                finish(job, "cancelled", "cancelled", json::object());
            } else {
                finish(job, "failed", m.value("error", "failed"), json::object());
            }
            return;
        } else if (type == "done") {
            const json files = m.contains("images") && m["images"].is_array() ? m["images"] : json::array();
            finish(job, "done", "", result_json(slot, *job, files, m.value("interrupted", false), m.value("model_hash", "")));
            return;
        }
    }
}

// What a finished job stores: its image files (with seeds and infotexts) and A1111's info object.
json JobQueue::result_json(const Slot& slot, const Job& job, const json& files, bool interrupted,
                           const std::string& model_hash) const {
    json infotexts = json::array(), seeds = json::array(), prompts = json::array(), negs = json::array();
    for (const json& f : files) {
        infotexts.push_back(f.value("infotext", ""));
        seeds.push_back(f.value("seed", int64_t(0)));
        prompts.push_back(job.req.params.prompt);
        negs.push_back(job.req.params.negative_prompt);
    }
    const GenerateParams& p = job.req.params;
    json extra = json::object();
    if (p.schedule != ScheduleKind::Default) extra["Schedule type"] = schedule_display_name(p.schedule);
    json info = {
        {"prompt", p.prompt}, {"all_prompts", prompts}, {"negative_prompt", p.negative_prompt}, {"all_negative_prompts", negs},
        {"seed", p.seed}, {"all_seeds", seeds}, {"subseed", -1}, {"all_subseeds", seeds}, {"subseed_strength", 0},
        {"width", p.width}, {"height", p.height}, {"sampler_name", job.req.sampler_name}, {"cfg_scale", p.cfg_scale},
        {"steps", p.steps}, {"batch_size", p.batch_size}, {"restore_faces", false}, {"face_restoration_model", nullptr},
        {"sd_model_name", slot.spec->name},
        {"sd_model_hash", model_hash.empty() ? json(nullptr) : json(model_hash)}, {"sd_vae_name", nullptr}, {"sd_vae_hash", nullptr},
        {"seed_resize_from_w", -1}, {"seed_resize_from_h", -1},
        {"denoising_strength", p.init_image ? json(p.denoising_strength) : json(nullptr)},
        {"extra_generation_params", extra}, {"index_of_first_image", 0}, {"infotexts", infotexts}, {"styles", json::array()},
        {"job_timestamp", job_timestamp(job.started_ms)}, {"clip_skip", p.clip_skip},
        {"is_using_inpainting_conditioning", slot.spec->inpainting}, {"version", "easel 0.1.0"}};
    json result = {{"images", files}, {"info", info}};
    if (interrupted) result["interrupted"] = true;
    return result;
}

namespace {
constexpr const auto& kLatencyBounds = kJobLatencyBounds;
}  // namespace

void JobQueue::finish(const std::shared_ptr<Job>& job, const std::string& status, const std::string& error, const json& result) {
    const int64_t t = now_ms();
    if (auto st = store_->finish_job(job->id, status, error, t, safe_dump(result)); !st)
        log_warn("serve", "job {}: {}", job->id, st.error().to_string());
    {
        std::lock_guard<std::mutex> lk(mu_);
        ++finished_by_status_[status];
        if (error.rfind("quarantined", 0) == 0) ++quarantined_;
        const double secs = std::max(0.0, double(t - job->created_ms) / 1000.0);
        if (latency_buckets_.empty()) latency_buckets_.assign(std::size(kLatencyBounds) + 1, 0);
        for (size_t i = 0; i < std::size(kLatencyBounds); ++i)
            if (secs <= kLatencyBounds[i]) ++latency_buckets_[i];
        ++latency_buckets_.back();
        latency_sum_s_ += secs;
        job->status = status;
        ++job->version;
        active_.erase(job->id);
        recent_[job->id] = job;
        if (recent_.size() > 256) {
            auto oldest = std::min_element(recent_.begin(), recent_.end(),
                                           [](const auto& a, const auto& b) { return a.second->created_ms < b.second->created_ms; });
            recent_.erase(oldest);
        }
    }
    cv_.notify_all();
}

void JobQueue::prune() {
    auto pruned = store_->prune_finished(limits_.keep_jobs);
    if (!pruned) return;
    for (const JobRecord& r : *pruned) {
        std::error_code ec;
        fs::remove_all(fs::path(image_dir_) / r.id, ec);
    }
}

Result<json> JobQueue::resolve_controlnets(const GenerationRequest& r, const ModelSpec& spec) const {
    Result<json> out = resolve_controlnet_files(r, spec);
    if (out) return out;
    // A client learns names, not the server's folders: the folders' paths leave the message.
    std::string msg = out.error().message();
    for (const auto& [dir, name] : {std::pair{controlnet_dir_, "the ControlNet folder"},
                                    std::pair{image_encoder_dir_, "the image encoder folder"}}) {
        if (dir.empty()) continue;
        for (const std::string& d : {fs::absolute(dir).lexically_normal().string(), dir})
            for (size_t at; !d.empty() && (at = msg.find(d)) != std::string::npos;) {
                const bool inside = at + d.size() < msg.size() && msg[at + d.size()] == '/';
                msg.replace(at, d.size() + (inside ? 1 : 0), inside ? "" : name);
            }
    }
    return Error(out.error().code(), msg, out.error().where());
}

Result<json> JobQueue::resolve_controlnet_files(const GenerationRequest& r, const ModelSpec& spec) const {
    json out = json::array();
    for (size_t i = 0; i < r.controlnets.size(); ++i) {
        const std::string where = fmt::format("alwayson_scripts.controlnet.args[{}].model", i);
        auto path = find_controlnet(controlnet_dir_, r.controlnets[i].model);
        if (!path) return Error(path.error().code(), path.error().message(), where);
        // Read (its names and config, no weights) and matched to the model once per file version.
        std::error_code ec;
        const std::string key = fmt::format("{}\n{}\n{}", spec.path, *path,
                                            fs::last_write_time(*path, ec).time_since_epoch().count());
        bool known = false;
        {
            std::lock_guard<std::mutex> lk(checked_mu_);
            known = controlnet_checked_.count(key) > 0;
        }
        const ControlRequest& unit = r.controlnets[i];
        if (unit.ip_adapter) {
            // Checked on every request: the encoder found depends on the unit's module as well as the file.
            auto cfg = check_ip_adapter(*path, spec.info);
            if (!cfg) return Error(cfg.error().code(), cfg.error().to_string(), where);
            const std::string encoder = find_image_encoder(*path, *cfg, image_encoder_dir_,
                                                           ip_adapter_module_width(unit.module));
            if (encoder.empty())
                return Error::not_found(fmt::format("no image encoder for {} that the preprocessor {} names (a CLIP "
                                                    "image encoder {}) in {}, nor beside the adapter",
                                                    unit.model, unit.module,
                                                    cfg->reads_penultimate() ? fmt::format("with {}-wide hidden states", cfg->embed_dim)
                                                                             : fmt::format("with {}-wide image embeddings", cfg->embed_dim),
                                                    image_encoder_dir_.empty() ? "(no --image-encoder-dir)" : image_encoder_dir_),
                                        fmt::format("alwayson_scripts.controlnet.args[{}]", i));
            out.push_back({{"path", *path}, {"encoder", encoder}});
            continue;
        }
        if (!known) {
            auto cfg = check_controlnet(*path, spec.info);
            if (!cfg) return Error(cfg.error().code(), cfg.error().to_string(), where);
            std::lock_guard<std::mutex> lk(checked_mu_);
            if (controlnet_checked_.size() >= 256) controlnet_checked_.clear();
            controlnet_checked_.insert(key);
        }
        out.push_back({{"path", *path}});
    }
    return out;
}

Result<json> JobQueue::resolve_loras(const GenerationRequest& r, const std::string& model_path) const {
    EASEL_TRY_ASSIGN(ExtraNetworks x, parse_extra_networks(r.params.prompt));
    json out = json::array();
    if (x.loras.empty()) return out;
    std::optional<ModelSpec> spec;  // the model's, read only when a LoRA file must be read
    for (const LoraTag& t : x.loras) {
        // Only names in the server's LoRA folder: a request never names a file path.
        if (t.name.find('/') != std::string::npos || t.name.find("..") != std::string::npos)
            return Error::invalid_argument(fmt::format("<lora:{}>: a LoRA is named by its file name in the server's LoRA "
                                                       "folder, not by a path", t.name), "prompt");
        if (lora_dir_.empty())
            return Error::not_found(fmt::format("<lora:{}>: this server has no LoRA folder (easel serve --lora-dir)", t.name),
                                    "prompt");
        auto path = find_lora_file(lora_dir_, t.name, /*allow_path=*/false);
        if (!path) return Error(path.error().code(), path.error().message(), "prompt");
        // Read once per file version (a 68 MB LoRA: 0.2 s of parsing and hashing), then remembered.
        std::error_code ec;
        const std::string key = fmt::format("{}\n{}\n{}\n{}", model_path, *path, fs::file_size(*path, ec),
                                            fs::last_write_time(*path, ec).time_since_epoch().count());
        std::string hash;
        {
            std::lock_guard<std::mutex> lk(checked_mu_);
            if (auto it = lora_checked_.find(key); it != lora_checked_.end()) hash = it->second;
        }
        if (hash.empty()) {
            if (!spec) {
                EASEL_TRY_ASSIGN(spec, load_model_spec(model_path, load_));
            }
            auto file = read_lora(*path, spec->info);
            if (!file) return Error(file.error().code(), fmt::format("<lora:{}>: {}", t.name, file.error().to_string()), "prompt");
            hash = (*file)->short_hash();
            std::lock_guard<std::mutex> lk(checked_mu_);
            if (lora_checked_.size() >= 256) lora_checked_.clear();
            lora_checked_[key] = hash;
        }
        out.push_back({{"path", *path}, {"name", t.name}, {"te", t.te}, {"unet", t.unet}, {"hash", hash}});
    }
    return out;
}

Result<JobQueue::Submitted> JobQueue::submit(const GenerationRequest& r, const Caller& caller, const QuotaCharge* charge) {
    std::string model = r.model.empty() ? default_model() : r.model;
    const ModelEntry* m = find_model(model);
    if (!m) {
        std::string names;
        for (const ModelEntry& e : models_) names += (names.empty() ? "" : ", ") + e.title;
        return Error::not_found(fmt::format("no model '{}'; this server has {}", model, names), "model");
    }
    // A refiner must be a served model that can finish this model's images; its spec (headers and configs, no
    // weights) is checked now, before the job is queued.
    std::optional<ModelSpec> refiner_spec;
    if (!r.refiner.empty()) {
        const ModelEntry* rm = find_model(r.refiner);
        if (!rm) {
            std::string names;
            for (const ModelEntry& e : models_) names += (names.empty() ? "" : ", ") + e.title;
            return Error::not_found(fmt::format("no model '{}'; this server has {}", r.refiner, names), "refiner_checkpoint");
        }
        auto spec = load_model_spec(rm->path, load_);
        if (!spec) return spec.error().within("refiner_checkpoint");
        refiner_spec = std::move(spec).value();
    }
    // <lora:...> tags and ControlNet units: every one resolves and fits the model before the job is queued.
    EASEL_TRY(resolve_loras(r, m->path));
    if (!r.controlnets.empty()) {
        if (!r.refiner.empty()) return Error::unsupported("ControlNet units with a refiner", "refiner_checkpoint");
        EASEL_TRY_ASSIGN(ModelSpec spec, load_model_spec(m->path, load_));
        EASEL_TRY(resolve_controlnets(r, spec));
    }
    auto job = std::make_shared<Job>();
    job->id = random_id();
    job->model = m->name;
    job->key_id = caller.key_id;
    job->kind = r.kind == RequestKind::Img2Img ? "img2img" : "txt2img";
    job->created_ms = now_ms();
    job->req = r;
    job->images = r.images();
    auto record = [&] {  // what the store keeps: the request as received (a restart or a worker parses it again)
        JobRecord rec;
        rec.id = job->id;
        rec.key_id = caller.key_id;
        rec.model = m->name;
        rec.kind = job->kind;
        rec.request_json = safe_dump(r.parameters);
        return rec;
    };
    if (cluster_) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            if (stopping_) return Error::exhausted("the server is shutting down");
            Slot& s = slot_for(m->name);
            if (s.loaded)
                if (auto st = validate_params(r.params, *s.spec, refiner_spec ? &*refiner_spec : nullptr); !st) return st.error();
        }
        JobRecord rec = record();
        return cluster_submit(rec, charge);
    }
    int position = 0;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) return Error::exhausted("the server is shutting down");
        size_t queued = 0;
        for (const auto& [name, s] : slots_) queued += s->queue.size();
        if (int(queued) >= limits_.queue_size)
            return Error::exhausted(fmt::format("the queue is full ({} jobs waiting); retry later", queued));
        Slot& s = slot_for(m->name);
        if (s.loaded) {
            if (auto st = validate_params(r.params, *s.spec, refiner_spec ? &*refiner_spec : nullptr); !st) return st.error();
        }
        JobRecord rec = record();
        rec.status = "queued";
        rec.created_ms = job->created_ms;
        EASEL_TRY(store_->insert_job(rec));  // durable before it is acknowledged
        position = int(s.queue.size());
        for (const auto& [id, j] : active_)
            if (j->model == m->name && j->status == "running") ++position;
        s.queue.push_back(job);
        active_[job->id] = job;
        start_worker(s);
    }
    cv_.notify_all();
    return Submitted{job->id, position};
}

json JobQueue::live_json(const Job& j, bool with_preview) {
    json o;
    o["id"] = j.id;
    o["status"] = j.status;
    o["model"] = j.model;
    o["kind"] = j.kind;
    int position = 0;
    if (j.status == "queued") {
        auto it = slots_.find(j.model);
        if (it != slots_.end())
            for (const auto& q : it->second->queue) {
                if (q->id == j.id) break;
                ++position;
            }
        for (const auto& [id, other] : active_)
            if (other->model == j.model && other->status == "running") ++position;
    }
    o["queue_position"] = position;
    o["step"] = j.step;
    o["total_steps"] = j.total;
    o["image_index"] = j.image;
    o["image_count"] = j.images;
    const double progress = j.status == "running" ? j.progress() : 0.0;
    o["progress"] = progress;
    const double elapsed = j.started_ms ? double(now_ms() - j.started_ms) / 1000.0 : 0.0;
    o["eta_s"] = progress > 0.01 ? json(elapsed / progress - elapsed) : json(nullptr);
    o["error"] = nullptr;
    o["images"] = json::array();
    o["params"] = strip_images(j.req.parameters);
    o["created"] = iso_time(j.created_ms);
    o["started"] = j.started_ms ? json(iso_time(j.started_ms)) : json(nullptr);
    o["finished"] = nullptr;
    if (with_preview && j.status == "running") {
        const std::string& png = j.preview_png;
        if (!png.empty()) o["preview"] = "data:image/png;base64," + base64_encode(png);
    }
    return o;
}

json JobQueue::record_json(const JobRecord& r) const {
    json o;
    o["id"] = r.id;
    o["status"] = r.status;
    o["model"] = r.model;
    o["kind"] = r.kind;
    o["queue_position"] = 0;
    json params = json::parse(r.request_json, nullptr, false);
    json result = json::parse(r.result_json.empty() ? "{}" : r.result_json, nullptr, false);
    const int steps = params.is_object() && params.contains("steps") && params["steps"].is_number_integer() ? params["steps"].get<int>() : 0;
    o["step"] = r.status == "done" ? steps : 0;
    o["total_steps"] = steps;
    o["progress"] = r.status == "done" ? 1.0 : 0.0;
    o["eta_s"] = r.status == "done" ? json(0.0) : json(nullptr);
    o["error"] = r.error.empty() ? json(nullptr) : json(r.error);
    json images = json::array();
    if (result.is_object() && result.contains("images") && result["images"].is_array()) {
        int n = 0;
        for (const json& im : result["images"]) {
            json e = {{"url", fmt::format("/v1/jobs/{}/images/{}", r.id, n++)}};
            if (im.is_object() && im.contains("seed")) e["seed"] = im["seed"];
            if (im.is_object() && im.contains("infotext")) e["infotext"] = im["infotext"];
            images.push_back(e);
        }
        o["image_count"] = n;
    }
    if (result.is_object() && result.contains("interrupted")) o["interrupted"] = true;
    o["images"] = images;
    o["params"] = params.is_discarded() ? json::object() : strip_images(params);
    o["created"] = iso_time(r.created_ms);
    o["started"] = r.started_ms ? json(iso_time(r.started_ms)) : json(nullptr);
    o["finished"] = r.finished_ms ? json(iso_time(r.finished_ms)) : json(nullptr);
    return o;
}

Result<json> JobQueue::job_json(const std::string& id, const Caller& caller, bool with_preview) {
    if (cluster_) return cluster_job_json(id, caller, with_preview);
    {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = active_.find(id);
        if (it != active_.end()) {
            Job& j = *it->second;
            if (!caller.all_jobs && j.key_id != caller.key_id) return Error::not_found(fmt::format("no job '{}'", id));
            if (with_preview) j.preview_wanted_ms = now_ms();
            return live_json(j, with_preview);
        }
    }
    EASEL_TRY_ASSIGN(auto rec, store_->get_job(id));
    if (!rec || (!caller.all_jobs && rec->key_id != caller.key_id)) return Error::not_found(fmt::format("no job '{}'", id));
    return record_json(*rec);  // finished (or between the store and the queue: what the store says)
}

Result<json> JobQueue::list_json(const Caller& caller, int limit, const JobFilter& filter) {
    if (cluster_) return cluster_list_json(caller, limit, filter);
    EASEL_TRY_ASSIGN(auto recs, store_->list_jobs(caller.key_id, caller.all_jobs, limit, filter));
    json jobs = json::array();
    for (const JobRecord& r : recs) {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = active_.find(r.id);
        jobs.push_back(it != active_.end() ? live_json(*it->second, false) : record_json(r));
    }
    return json{{"jobs", jobs}};
}

Result<json> JobQueue::cancel(const std::string& id, const Caller& caller) {
    if (cluster_) return cluster_cancel(id, caller);
    std::shared_ptr<Job> queued;
    {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = active_.find(id);
        if (it == active_.end()) {
            // Finished (or unknown): nothing to cancel.
        } else {
            Job& j = *it->second;
            if (!caller.all_jobs && j.key_id != caller.key_id) return Error::not_found(fmt::format("no job '{}'", id));
            if (j.status == "queued") {
                auto sit = slots_.find(j.model);
                if (sit != slots_.end()) {
                    auto& q = sit->second->queue;
                    q.erase(std::remove(q.begin(), q.end(), it->second), q.end());
                }
                queued = it->second;
            } else {
                j.stop = kCancel;
                ++j.version;
            }
        }
    }
    if (queued) finish(queued, "cancelled", "cancelled", json::object());
    cv_.notify_all();
    return job_json(id, caller, false);
}

Result<json> JobQueue::purge(const std::string& id, const Caller& caller) {
    std::optional<JobRecord> gone;
    if (cluster_) {
        EASEL_TRY_ASSIGN(gone, cluster_->delete_finished(id, caller.key_id, caller.all_jobs));
    } else {
        EASEL_TRY_ASSIGN(gone, store_->delete_finished(id, caller.key_id, caller.all_jobs));
    }
    if (!gone) {
        // Why not: unknown (or another key's), or not finished yet.
        EASEL_TRY_ASSIGN(auto rec, cluster_ ? cluster_->get_job(id) : store_->get_job(id));
        if (!rec || (!caller.all_jobs && rec->key_id != caller.key_id)) return Error::not_found(fmt::format("no job '{}'", id));
        return Error::refused(fmt::format("job '{}' is {}: cancel it first (DELETE without purge), then remove it", id,
                                          rec->status), "purge");
    }
    if (!cluster_) {
        std::error_code ec;
        fs::remove_all(fs::path(image_dir_) / gone->id, ec);
    }
    return json{{"id", gone->id}, {"deleted", true}};
}

Result<std::string> JobQueue::image_file(const std::string& id, int index, const Caller& caller) {
    EASEL_TRY_ASSIGN(auto rec, store_->get_job(id));
    if (!rec || (!caller.all_jobs && rec->key_id != caller.key_id)) return Error::not_found(fmt::format("no job '{}'", id));
    json result = json::parse(rec->result_json.empty() ? "{}" : rec->result_json, nullptr, false);
    if (!result.is_object() || !result.contains("images") || !result["images"].is_array() || index < 0 ||
        index >= int(result["images"].size()))
        return Error::not_found(fmt::format("job '{}' has no image {} (status {})", id, index, rec->status));
    const json& im = result["images"][size_t(index)];
    if (!im.is_object() || !im.contains("file") || !im["file"].is_string()) return Error::not_found("the image record is damaged");
    return im["file"].get<std::string>();
}

Result<std::string> JobQueue::image_png(const std::string& id, int index, const Caller& caller) {
    if (cluster_) return cluster_image_png(id, index, caller);
    EASEL_TRY_ASSIGN(std::string path, image_file(id, index, caller));
    auto bytes = read_whole_file(path);
    if (!bytes) return Error::not_found("the image file is gone (retention limit)");
    return std::move(bytes).value();
}

Result<json> JobQueue::a1111_result(const std::string& id) {
    if (cluster_) return cluster_a1111_result(id);
    EASEL_TRY_ASSIGN(auto rec, store_->get_job(id));
    if (!rec) return Error::not_found(fmt::format("no job '{}'", id));
    if (rec->status == "failed") return Error::invalid_argument(rec->error);
    json result = json::parse(rec->result_json.empty() ? "{}" : rec->result_json, nullptr, false);
    json params = json::parse(rec->request_json, nullptr, false);
    json images = json::array();
    json info = json::object();
    if (result.is_object()) {
        if (result.contains("images") && result["images"].is_array())
            for (const json& im : result["images"]) {
                if (!im.is_object() || !im.contains("file") || !im["file"].is_string()) continue;
                images.push_back(base64_encode(read_whole_file(im["file"].get<std::string>()).value_or("")));
            }
        if (result.contains("info")) info = result["info"];
    }
    return json{{"images", images}, {"parameters", params.is_discarded() ? json::object() : params}, {"info", safe_dump(info)}};
}

namespace {
bool sees(const Caller& c, const std::string& key_id) { return c.all_jobs || key_id == c.key_id; }
}  // namespace

void JobQueue::interrupt_running(const Caller& caller) {
    if (cluster_) {
        (void)cluster_->set_control_running(caller.key_id, caller.all_jobs, kControlInterrupt);
        return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [id, j] : active_)
        if (j->status == "running" && sees(caller, j->key_id)) j->stop = kInterrupt;
}

void JobQueue::skip_running(const Caller& caller) {
    if (cluster_) {
        (void)cluster_->set_control_running(caller.key_id, caller.all_jobs, kControlSkip);
        return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [id, j] : active_)
        if (j->status == "running" && sees(caller, j->key_id)) j->stop = kSkip;
}

json JobQueue::a1111_progress(bool with_image, const Caller& caller) {
    if (cluster_) return cluster_a1111_progress(with_image, caller);
    std::lock_guard<std::mutex> lk(mu_);
    Job* running = nullptr;
    int queued = 0;
    for (const auto& [id, j] : active_) {
        if (!sees(caller, j->key_id)) continue;
        if (j->status == "running" && (!running || j->started_ms < running->started_ms)) running = j.get();
        if (j->status == "queued") ++queued;
    }
    json state = {{"skipped", false}, {"interrupted", false}, {"job", ""}, {"job_count", queued + (running ? 1 : 0)},
                  {"job_timestamp", "0"}, {"job_no", 0}, {"sampling_step", 0}, {"sampling_steps", 0}};
    if (!running) return json{{"progress", 0.0}, {"eta_relative", 0.0}, {"state", state}, {"current_image", nullptr}, {"textinfo", nullptr}};
    Job& j = *running;
    if (with_image) j.preview_wanted_ms = now_ms();  // the worker sends previews while someone asks for them
    const double progress = j.progress();
    const double elapsed = double(now_ms() - j.started_ms) / 1000.0;
    state["skipped"] = j.stop == kSkip;
    state["interrupted"] = j.stop == kInterrupt;
    state["job"] = fmt::format("Batch {} out of {}", j.image + 1, j.images);
    state["job_timestamp"] = job_timestamp(j.started_ms);
    state["job_no"] = j.image;
    state["sampling_step"] = j.step;
    state["sampling_steps"] = j.total;
    json current = nullptr;
    if (with_image) {
        const std::string& png = j.preview_png;
        if (!png.empty()) current = base64_encode(png);
    }
    return json{{"progress", progress}, {"eta_relative", progress > 0.01 ? elapsed / progress - elapsed : 0.0}, {"state", state},
                {"current_image", current}, {"textinfo", nullptr}};
}

uint64_t JobQueue::wait_change(const std::string& id, uint64_t seen, int timeout_ms) {
    if (cluster_) return cluster_wait_change(id, seen, timeout_ms);
    std::unique_lock<std::mutex> lk(mu_);
    auto version = [&]() -> uint64_t {
        auto it = active_.find(id);
        if (it != active_.end()) return it->second->version;
        auto r = recent_.find(id);
        return r != recent_.end() ? r->second->version : UINT64_MAX;  // finished long ago or unknown
    };
    cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return stopping_ || version() != seen; });
    return version();
}

std::string prometheus_label(const std::string& value) {
    std::string e;
    for (char c : value) {
        if (c == '\\' || c == '"') e += '\\';
        if (c == '\n') {
            e += "\\n";
            continue;
        }
        e += c;
    }
    return e;
}

std::string JobQueue::metrics_text() const {
    if (cluster_) return cluster_metrics_text();
    std::lock_guard<std::mutex> lk(mu_);
    std::string o;
    auto family = [&](const char* name, const char* type, const char* help) {
        o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    family("easel_queue_depth", "gauge", "Jobs waiting, per model.");
    for (const auto& [name, s] : slots_) o += fmt::format("easel_queue_depth{{model=\"{}\"}} {}\n", prometheus_label(name), s->queue.size());
    family("easel_jobs_running", "gauge", "Jobs running, per model.");
    std::map<std::string, int> running;
    for (const auto& [id, j] : active_)
        if (j->status == "running") ++running[j->model];
    for (const auto& [name, s] : slots_) o += fmt::format("easel_jobs_running{{model=\"{}\"}} {}\n", prometheus_label(name), running[name]);
    family("easel_jobs_finished_total", "counter", "Jobs that ended since this process started, by outcome.");
    for (const char* st : {"done", "failed", "cancelled"}) {
        auto it = finished_by_status_.find(st);
        o += fmt::format("easel_jobs_finished_total{{status=\"{}\"}} {}\n", st, it == finished_by_status_.end() ? 0 : it->second);
    }
    family("easel_jobs_quarantined_total", "counter", "Jobs failed for bringing down their worker process twice.");
    o += fmt::format("easel_jobs_quarantined_total {}\n", quarantined_);
    family("easel_jobs_timed_out_total", "counter", "Jobs failed for running past --job-timeout.");
    o += fmt::format("easel_jobs_timed_out_total {}\n", timed_out_);
    family("easel_workers_alive", "gauge", "Worker processes running, one per loaded model.");
    int alive = 0;
    for (const auto& [name, s] : slots_) alive += s->worker_alive ? 1 : 0;
    o += fmt::format("easel_workers_alive {}\n", alive);
    family("easel_worker_starts_total", "counter", "Worker processes started (a model loaded).");
    o += fmt::format("easel_worker_starts_total {}\n", worker_starts_);
    family("easel_worker_crashes_total", "counter", "Worker processes that died during a job (crash, signal, out of memory).");
    o += fmt::format("easel_worker_crashes_total {}\n", worker_crashes_);
    family("easel_job_latency_seconds", "histogram", "Seconds from submission to the end of a job.");
    const std::vector<int64_t> b = latency_buckets_.empty() ? std::vector<int64_t>(std::size(kLatencyBounds) + 1, 0) : latency_buckets_;
    for (size_t i = 0; i < std::size(kLatencyBounds); ++i)
        o += fmt::format("easel_job_latency_seconds_bucket{{le=\"{}\"}} {}\n", kLatencyBounds[i], b[i]);
    o += fmt::format("easel_job_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", b.back());
    o += fmt::format("easel_job_latency_seconds_sum {}\n", latency_sum_s_);
    o += fmt::format("easel_job_latency_seconds_count {}\n", b.back());
    return o;
}

bool JobQueue::ready(std::string* why) const {
    if (cluster_) return cluster_ready(why);
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) {
        *why = "the server is stopping";
        return false;
    }
    auto it = slots_.find(default_model_);
    if (it == slots_.end() || !it->second->loaded) {
        *why = fmt::format("the default model '{}' is not loaded", default_model_);
        return false;
    }
    if (it->second->failed) {
        *why = "the default model failed to load: " + it->second->load_error;
        return false;
    }
    return true;
}

}  // namespace easel::server
