// The job queue: one worker process per model (apps/server/worker.h), driven by a thread of this process; jobs
// persisted in the Store before they are acknowledged, live progress (step, ETA, previews), cancellation, A1111's
// skip/interrupt, and change notification for Server-Sent Events and blocking /sdapi calls. This process holds
// each model's ModelSpec (configs, tokenizer: what validating a request needs), never its weights. A worker that
// crashes, is killed or exceeds Limits::job_timeout_s ends its job with the cause and is started again; a job that
// crashed its worker twice is quarantined (failed, with the reason).
//
//
// A front end of a PostgreSQL store (`easel serve --store postgresql://...`, jobs_cluster.cpp) is the same queue
// without workers: it validates and stores jobs, and reads their progress, previews and images from the store,
// where `easel worker` processes on any machines run them (cluster_worker.h).
//
//   JobQueue q(store, models, load_options, limits, data_dir + "/images", "/usr/bin/easel");
//   EASEL_TRY(q.start());                                  // re-queues what a previous run left unfinished
//   EASEL_TRY_ASSIGN(auto sub, q.submit(request, key_id)); // {id, queue_position}
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pg_store.h"
#include "request.h"
#include "store.h"

namespace easel::server {

struct ModelEntry {
    std::string name;   // file or folder name without extension (A1111's model_name)
    std::string title;  // file or folder name (A1111's title)
    std::string path;
};

// Who is asking: a key sees its own jobs only; Basic auth and an open server see all.
struct Caller {
    std::string key_id;
    bool all_jobs = true;
};

// A1111's info "job_timestamp": local time, YYYYmmddHHMMSS.
std::string job_timestamp(int64_t ms);

// A Prometheus label value with what its syntax needs escaped (backslash, double quote, newline).
std::string prometheus_label(const std::string& value);

class JobQueue {
public:
    JobQueue(Store& store, std::vector<ModelEntry> models, LoadOptions load, Limits limits, std::string image_dir,
             std::string worker_exe);
    // A front end of a shared PostgreSQL store: no worker processes here. `worker_max_age_ms`: a worker whose last
    // heartbeat is older is not counted as alive (/readyz, /metrics, "loaded").
    JobQueue(PgStore& cluster, std::vector<ModelEntry> models, LoadOptions load, Limits limits, int64_t worker_max_age_ms);
    ~JobQueue();
    JobQueue(const JobQueue&) = delete;
    JobQueue& operator=(const JobQueue&) = delete;

    // Loads the default model and re-queues the jobs a previous run left queued or running.
    Status start();
    void stop();

    const std::vector<ModelEntry>& models() const { return models_; }
    // The folder <lora:NAME> tags are looked up in (pipeline/lora.h find_lora_file); "" = none.
    void set_lora_dir(std::string dir) { lora_dir_ = std::move(dir); }
    void set_controlnet_dir(std::string dir) { controlnet_dir_ = std::move(dir); }
    void set_image_encoder_dir(std::string dir) { image_encoder_dir_ = std::move(dir); }
    const std::string& controlnet_dir() const { return controlnet_dir_; }
    const std::string& lora_dir() const { return lora_dir_; }
    // The folder of textual-inversion embeddings every job may use (pipeline/embeddings.h); "" = none.
    void set_embeddings_dir(std::string dir) { embeddings_dir_ = std::move(dir); }
    const std::string& embeddings_dir() const { return embeddings_dir_; }
    std::string default_model() const;
    const ModelEntry* find_model(const std::string& name_or_title) const;
    // Makes a model the default, loading it first (blocks until loaded; the error says why it could not be).
    Status set_default_model(const std::string& name_or_title);
    bool is_loaded(const std::string& name) const;
    // Native size of a loaded model (0 when not loaded).
    std::pair<int, int> native_size(const std::string& name) const;
    // The model's recommended guidance scale (ModelSpec::defaults); nullopt when it has none or is not loaded yet.
    std::optional<double> recommended_cfg_scale(const std::string& name) const;
    // The model's licence (--license, else what it names; pipeline/provenance.h); "" when unknown or not loaded.
    std::string model_license(const std::string& name) const;
    // The family that loads it ("sd", "sdxl", "sd3", "flux", ...); "" until it is loaded.
    std::string model_family(const std::string& name) const;
    // What the width and height must be multiples of (the latent grid's side multiple in pixels); 0 until loaded.
    int model_size_multiple(const std::string& name) const;
    // What the page offers for a loaded model beyond A1111's fields: the guidance a guidance-distilled model takes
    // (Flux dev: 3.5; nullopt for others), whether it samples a flow (a shift applies), and how many transformer
    // blocks skip-layer guidance may name (0: none). Empty until loaded.
    struct ModelControls {
        std::optional<double> distilled_guidance;
        bool flow = false;
        int skippable_blocks = 0;
    };
    std::optional<ModelControls> model_controls(const std::string& name) const;

    struct Submitted {
        std::string id;
        int queue_position = 0;
    };
    // `charge`: a front end of a PostgreSQL store charges the key's quota in the transaction that queues the job
    // (charges_on_submit()); the local queue leaves charging to its caller and ignores it.
    Result<Submitted> submit(const GenerationRequest& r, const Caller& caller, const QuotaCharge* charge = nullptr);
    bool charges_on_submit() const { return cluster_ != nullptr; }

    // Status of one job as /v1/jobs/{id} shows it; not_found for unknown ids and other keys' jobs.
    Result<json> job_json(const std::string& id, const Caller& caller, bool with_preview);
    Result<json> list_json(const Caller& caller, int limit, const JobFilter& filter = {});
    Result<json> cancel(const std::string& id, const Caller& caller);
    // Removes a finished job and its images from the history (DELETE /v1/jobs/{id}?purge=1): not_found for unknown
    // ids and other keys' jobs, refused (where "purge": HTTP 409) while it is queued or running.
    Result<json> purge(const std::string& id, const Caller& caller);
    // The PNG of a finished job's image `index`.
    Result<std::string> image_png(const std::string& id, int index, const Caller& caller);
    // What A1111's synchronous endpoints return once a job has finished: images as base64, parameters, info.
    Result<json> a1111_result(const std::string& id);
    // A1111's interrupt and skip: applied to every running job the caller can see (its own, or all).
    void interrupt_running(const Caller& caller);
    void skip_running(const Caller& caller);
    // /sdapi/v1/progress for the oldest running job the caller can see (or idle); queue counts are the caller's too.
    json a1111_progress(bool with_image, const Caller& caller);

    // Prometheus text exposition (version 0.0.4) of the queue since this process started: queue depth and running
    // jobs per model, finished jobs by outcome, worker processes alive and worker crashes, and a histogram of the
    // time from submission to the end of a job.
    std::string metrics_text() const;
    // Whether the default model's worker is up (its model loaded): /readyz. `why` says what is missing.
    bool ready(std::string* why) const;

    // Blocks until the job changes after `seen` or the timeout passes; returns the job's change counter.
    uint64_t wait_change(const std::string& id, uint64_t seen, int timeout_ms);
    bool is_terminal(const std::string& status) const {
        return status == "done" || status == "failed" || status == "cancelled";
    }

private:
    struct Job;
    struct Slot;
    Result<std::string> image_file(const std::string& id, int index, const Caller& caller);
    // The front end's side of each call (jobs_cluster.cpp), when cluster_ is set.
    Status cluster_start();
    Status cluster_set_spec(const std::string& name, std::unique_ptr<ModelSpec> spec, std::string error);
    Result<Submitted> cluster_submit(JobRecord& rec, const QuotaCharge* charge);
    Result<json> cluster_job_json(const std::string& id, const Caller& caller, bool with_preview);
    Result<json> cluster_list_json(const Caller& caller, int limit, const JobFilter& filter);
    Result<json> cluster_cancel(const std::string& id, const Caller& caller);
    Result<std::string> cluster_image_png(const std::string& id, int index, const Caller& caller);
    Result<json> cluster_a1111_result(const std::string& id);
    json cluster_a1111_progress(bool with_image, const Caller& caller);
    std::string cluster_metrics_text() const;
    bool cluster_ready(std::string* why) const;
    bool cluster_serves(const std::string& model) const;  // a live worker has the model
    uint64_t cluster_wait_change(const std::string& id, uint64_t seen, int timeout_ms);
    json cluster_record_json(const JobRecord& r, bool with_preview);
    void worker(Slot* slot);
    void run_job(Slot& slot, const std::shared_ptr<Job>& job);
    Status start_process(Slot& slot);  // spawns the slot's worker and waits until its model is loaded
    void requeue_crashed(Slot& slot, const std::shared_ptr<Job>& job, const std::string& cause);
    json result_json(const Slot& slot, const Job& job, const json& files, bool interrupted, const std::string& model_hash) const;
    void finish(const std::shared_ptr<Job>& job, const std::string& status, const std::string& error, const json& result);
    Slot& slot_for(const std::string& name);  // mu_ held
    void start_worker(Slot& slot);            // mu_ held
    json live_json(const Job& j, bool with_preview);  // mu_ held
    json record_json(const JobRecord& r) const;
    void prune();
    // The LoRAs the prompt's <lora:...> tags name, each read and matched against the model (`model_path`):
    // [{"path", "name", "te", "unet", "hash"}] for the worker. Errors name the tag (a 4xx for the client).
    Result<json> resolve_loras(const GenerationRequest& r, const std::string& model_path) const;
    // Files already read and matched (under checked_mu_): LoRAs, "model path, file path, size, modification time"
    // -> short hash; ControlNets below.
    mutable std::mutex checked_mu_;
    mutable std::map<std::string, std::string> lora_checked_;
    // The request's ControlNet units' files in the ControlNet folder, each checked against the model: [{"path"}];
    // an IP-Adapter unit's also names the image encoder that fits it: {"path", "encoder"}.
    Result<json> resolve_controlnets(const GenerationRequest& r, const ModelSpec& spec) const;
    Result<json> resolve_controlnet_files(const GenerationRequest& r, const ModelSpec& spec) const;  // paths unscrubbed
    mutable std::set<std::string> controlnet_checked_;  // "model path, file path, mtime"

    Store* store_ = nullptr;     // the local queue's SQLite store
    PgStore* cluster_ = nullptr;  // a front end's PostgreSQL store
    int64_t worker_max_age_ms_ = 0;
    std::vector<ModelEntry> models_;
    LoadOptions load_;
    Limits limits_;
    std::string image_dir_;
    std::string worker_exe_;
    std::string lora_dir_;
    std::string controlnet_dir_;
    std::string image_encoder_dir_;
    std::string embeddings_dir_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, std::unique_ptr<Slot>> slots_;          // by model name
    std::map<std::string, std::shared_ptr<Job>> active_;          // queued or running, by id
    std::map<std::string, std::shared_ptr<Job>> recent_;          // finished in this run (for wait_change)
    std::string default_model_;
    bool stopping_ = false;
    // Counters for metrics_text(), under mu_.
    std::map<std::string, int64_t> finished_by_status_;  // done, failed, cancelled
    int64_t quarantined_ = 0, timed_out_ = 0, worker_crashes_ = 0, worker_starts_ = 0;
    std::vector<int64_t> latency_buckets_;  // cumulative counts per kLatencyBounds entry, then +Inf
    double latency_sum_s_ = 0;
};

// Shared by `easel serve` and `easel worker` (server.cpp): the models of -m and --models-dir (empty, with `error`
// set, when there are none or one is missing), the program to start as each model's worker process, and the
// add-on folders (LoRAs, ControlNets, image encoders, embeddings: the flags, else beside the first model).
std::vector<ModelEntry> collect_models(const ServeOptions& o, std::string* error);
Result<std::string> resolve_worker_exe(const ServeOptions& o);
void configure_addon_dirs(JobQueue& queue, const ServeOptions& o, const std::vector<ModelEntry>& models);

}  // namespace easel::server
