// The server's durable state in one SQLite database (WAL mode): jobs (their request, status and results), API
// keys (hashed) and per-key daily image counts. A queued job is a row before it is acknowledged, so it survives
// a crash or `kill -9` and runs after the restart. Every method is thread-safe.
//
//   EASEL_TRY_ASSIGN(auto store, Store::open(data_dir + "/easel.db"));
//   EASEL_TRY(store->insert_job(job));
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "auth.h"
#include "core/error.h"

struct sqlite3;

namespace easel::server {

struct JobRecord {
    std::string id;
    int64_t seq = 0;             // insertion order
    std::string key_id;          // "" when made without a key
    std::string model;           // the model's name
    std::string kind;            // "txt2img" or "img2img"
    std::string request_json;    // the request as received (what a restart re-parses)
    std::string status;          // queued, running, done, failed, cancelled
    std::string error;           // why it failed
    int64_t created_ms = 0, started_ms = 0, finished_ms = 0;
    std::string result_json;     // {"images":[{"file","seed","infotext"}], "info": {...}}
    // PostgreSQL only (pg_store.h): the live state a worker on another machine reports.
    std::string progress_json;   // {"step", "total_steps", "image_index", "image_count", "progress"} while running
    int64_t version = 0;         // bumped on every change (status, progress, preview)
    int attempts = 0;            // claims of the job by workers
};

constexpr int kStoreMaxAttempts = 2;

// Seconds from submission to the end of a job: the upper bounds of /metrics' easel_job_latency_seconds histogram
// (a tiny-model job takes ~0.1 s, an SD 1.5 job on a CPU a minute or more).
inline constexpr double kJobLatencyBounds[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};  // starts of a job that a restart found cut off, before it is quarantined

// A key's images, charged against its daily quota in the same transaction that queues its job (PostgreSQL front
// ends): a refusal is Error::exhausted with where() == "quota".
struct QuotaCharge {
    std::string key_id, key_name;
    std::string day;            // UTC, "2026-12-06"
    int64_t images = 0;
    int64_t quota = 0;          // per day; 0 = unlimited
};

// What GET /v1/jobs narrows the history to: jobs whose prompt contains `prompt` (case-insensitive; SQLite folds
// ASCII letters only) and that ran `model` (exact name); empty: any.
struct JobFilter {
    std::string prompt;
    std::string model;
};

struct KeyRecord {
    std::string id;
    std::string name;
    std::string hash;            // hex SHA-256 of the secret
    int64_t quota_per_day = 0;
    int64_t rate_per_min = 0;
    int64_t created_ms = 0;
    bool revoked = false;
    bool admin = false;          // sees (and may cancel) every key's jobs, and per-key usage in /metrics
};

// API keys and their usage, where every front end of a service reads them: the SQLite Store of one machine, or
// PostgreSQL (pg_store.h) shared by many. Quota charges and the request rate are exact over every process that
// shares the store.
class KeyStore {
public:
    virtual ~KeyStore() = default;
    virtual Status insert_key(const KeyRecord& key) = 0;
    virtual Result<std::vector<KeyRecord>> list_keys() = 0;
    virtual Result<std::optional<KeyRecord>> find_key_by_hash(const std::string& hash) = 0;
    virtual Status revoke_key(const std::string& id_or_name) = 0;  // not_found when no such key
    virtual Result<int64_t> active_key_count() = 0;
    virtual Result<int64_t> images_on_day(const std::string& key_id, const std::string& day) = 0;
    virtual Status add_images(const std::string& key_id, const std::string& day, int64_t n) = 0;
    // Adds n images to the key's count for `day` unless the sum would pass `quota` (0 = unlimited), in one atomic
    // step: nullopt when charged, else the count so far (nothing charged).
    virtual Result<std::optional<int64_t>> charge_images(const std::string& key_id, const std::string& day, int64_t n,
                                                         int64_t quota) = 0;
    // Records a request of `key_id` if it fits in `per_minute` (0 = unlimited) over a sliding one-minute window;
    // otherwise false, with the seconds until one fits.
    virtual Result<bool> allow_request(const std::string& key_id, int64_t per_minute, int64_t now_ms, int* retry_after_s) = 0;
};

class Store : public KeyStore {
public:
    static Result<std::unique_ptr<Store>> open(const std::string& path);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    Status insert_job(JobRecord& job);  // sets job.seq
    Status set_running(const std::string& id, int64_t started_ms);  // counts an attempt
    // Back to the queue: after a crash of its worker (the attempt counts) or a graceful stop (it does not).
    Status set_queued(const std::string& id, bool count_attempt);
    Status finish_job(const std::string& id, const std::string& status, const std::string& error, int64_t finished_ms,
                      const std::string& result_json);
    Result<std::optional<JobRecord>> get_job(const std::string& id);
    // Newest first; key_id empty = every key's.
    Result<std::vector<JobRecord>> list_jobs(const std::string& key_id, bool all_keys, int limit,
                                             const JobFilter& filter = {});
    // Removes a finished job (done, failed, cancelled) of `key_id` (all_keys: anyone's): the record, returned so
    // the caller deletes its images; nullopt when there is no such finished job.
    Result<std::optional<JobRecord>> delete_finished(const std::string& id, const std::string& key_id, bool all_keys);
    // Oldest first: what a restart must run again. Running jobs were cut off and go back to the queue, unless they
    // had been started kStoreMaxAttempts times: those fail as quarantined, so a job that crashes the server is not
    // replayed by every restart.
    Result<std::vector<JobRecord>> requeue_unfinished();
    // Finished jobs beyond the newest `keep`, oldest first (their images are deleted by the caller), removed.
    Result<std::vector<JobRecord>> prune_finished(int keep);

    Status insert_key(const KeyRecord& key) override;
    Result<std::vector<KeyRecord>> list_keys() override;
    Result<std::optional<KeyRecord>> find_key_by_hash(const std::string& hash) override;
    Status revoke_key(const std::string& id_or_name) override;
    Result<int64_t> active_key_count() override;
    Result<int64_t> images_on_day(const std::string& key_id, const std::string& day) override;
    Status add_images(const std::string& key_id, const std::string& day, int64_t n) override;
    Result<std::optional<int64_t>> charge_images(const std::string& key_id, const std::string& day, int64_t n,
                                                 int64_t quota) override;
    // One machine's requests: counted in this process (keys are per server here).
    Result<bool> allow_request(const std::string& key_id, int64_t per_minute, int64_t now_ms, int* retry_after_s) override;

private:
    Store() = default;
    Status exec(const char* sql);
    Status migrate();
    sqlite3* db_ = nullptr;
    std::string path_;
    std::mutex mu_;
    RateLimiter limiter_;
};

int64_t now_ms();
std::string utc_day(int64_t ms);  // "2026-11-26"

}  // namespace easel::server
