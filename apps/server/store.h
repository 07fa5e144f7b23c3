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
};

constexpr int kStoreMaxAttempts = 2;  // starts of a job that a restart found cut off, before it is quarantined

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

class Store {
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
    Result<std::vector<JobRecord>> list_jobs(const std::string& key_id, bool all_keys, int limit);
    // Oldest first: what a restart must run again. Running jobs were cut off and go back to the queue, unless they
    // had been started kStoreMaxAttempts times: those fail as quarantined, so a job that crashes the server is not
    // replayed by every restart.
    Result<std::vector<JobRecord>> requeue_unfinished();
    // Finished jobs beyond the newest `keep`, oldest first (their images are deleted by the caller), removed.
    Result<std::vector<JobRecord>> prune_finished(int keep);

    Status insert_key(const KeyRecord& key);
    Result<std::vector<KeyRecord>> list_keys();
    Result<std::optional<KeyRecord>> find_key_by_hash(const std::string& hash);
    Status revoke_key(const std::string& id_or_name);  // not_found when no such key
    Result<int64_t> active_key_count();
    Result<int64_t> images_on_day(const std::string& key_id, const std::string& day);
    Status add_images(const std::string& key_id, const std::string& day, int64_t n);

private:
    Store() = default;
    Status exec(const char* sql);
    Status migrate();
    sqlite3* db_ = nullptr;
    std::string path_;
    std::mutex mu_;
};

int64_t now_ms();
std::string utc_day(int64_t ms);  // "2026-11-26"

}  // namespace easel::server
