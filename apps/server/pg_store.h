// The service's state in PostgreSQL (libpq), shared by any number of front ends (`easel serve --store
// postgresql://...`) and workers (`easel worker`) on any machines: jobs with their images, API keys, per-key usage
// and request windows, live workers, and cluster-wide counters for /metrics.
//
// A worker claims the oldest queued job of its models with a row lock that skips locked rows, under a lease that it
// renews with each heartbeat; a job whose lease runs out (its worker died or was cut off) is queued again by whoever
// notices, or quarantined once it has been claimed kStoreMaxAttempts times. A result is stored only by the claim
// that still holds the job (its token), in one transaction with the images, so a job has at most one result.
// Times are the database server's clock, so machines need not agree on theirs.
//
//   EASEL_TRY_ASSIGN(auto pg, PgStore::open("postgresql://easel@db/easel", PgStore::Migrate::AtStart));
//   EASEL_TRY_ASSIGN(auto claim, pg->claim_job(worker_id, {"model"}, 10'000));
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store.h"

struct pg_conn;

namespace easel::server {

// Control flags a front end leaves on a running job for its worker (JobQueue's stop flags).
enum JobControl : int { kControlNone = 0, kControlSkip = 1, kControlInterrupt = 2, kControlCancel = 3 };

// Whether a string names a PostgreSQL store ("postgresql://..." or "postgres://...") rather than a data folder.
bool is_postgres_url(const std::string& s);

class PgStore : public KeyStore {
public:
    static constexpr int kSchemaVersion = 1;
    // AtStart: create or upgrade the schema (logged), as `easel serve` does; Refuse: fail on an older schema, saying
    // to run `easel serve --migrate`. A schema newer than this binary is always refused.
    enum class Migrate { AtStart, Refuse };
    static Result<std::unique_ptr<PgStore>> open(const std::string& url, Migrate migrate);
    ~PgStore() override;
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    class Conn;  // one libpq connection (pg_store.cpp)

    // The schema's version in the database (0 when it has none yet).
    Result<int> schema_version();

    // KeyStore.
    Status insert_key(const KeyRecord& key) override;
    Result<std::vector<KeyRecord>> list_keys() override;
    Result<std::optional<KeyRecord>> find_key_by_hash(const std::string& hash) override;
    Status revoke_key(const std::string& id_or_name) override;
    Result<int64_t> active_key_count() override;
    Result<int64_t> images_on_day(const std::string& key_id, const std::string& day) override;
    Status add_images(const std::string& key_id, const std::string& day, int64_t n) override;
    Result<std::optional<int64_t>> charge_images(const std::string& key_id, const std::string& day, int64_t n,
                                                 int64_t quota) override;
    Result<bool> allow_request(const std::string& key_id, int64_t per_minute, int64_t now_ms, int* retry_after_s) override;

    // Front ends.
    // Queues a job unless `queue_bound` jobs already wait (over every front end: exhausted) or `charge` does not
    // fit its key's quota (exhausted, where() "quota"); the charge and the job are one transaction. Sets seq and
    // created_ms; returns the job's position in its model's line (running jobs included).
    Result<int> submit_job(JobRecord& job, int queue_bound, const QuotaCharge* charge = nullptr);
    Result<std::optional<JobRecord>> get_job(const std::string& id);
    Result<std::vector<JobRecord>> list_jobs(const std::string& key_id, bool all_keys, int limit,
                                             const JobFilter& filter = {});
    // As Store::delete_finished; the images go with the record (ON DELETE CASCADE).
    Result<std::optional<JobRecord>> delete_finished(const std::string& id, const std::string& key_id, bool all_keys);
    // Queued and running jobs, oldest first.
    Result<std::vector<JobRecord>> active_jobs(const std::string& key_id, bool all_keys);
    // The job's change counter (nullopt: no such job).
    Result<std::optional<int64_t>> job_version(const std::string& id);
    Result<std::string> preview(const std::string& id);  // the newest preview PNG ("" when none)
    Result<std::optional<std::string>> image(const std::string& id, int index);  // a result PNG
    Result<int> image_count(const std::string& id);
    // Cancels a queued job at once (true), or asks the worker of a running one to stop (false).
    Result<bool> cancel(const std::string& id);
    // A stop flag for every running job of `key_id` (all keys when all_keys).
    Status set_control_running(const std::string& key_id, bool all_keys, JobControl flag);
    Status want_preview(const std::string& id);
    // Jobs waiting before this one in its model's line, running ones included.
    Result<int> queue_position(const std::string& id);
    Result<std::map<std::string, std::pair<int64_t, int64_t>>> queue_by_model();  // model -> (queued, running)
    Result<std::map<std::string, double>> counters();
    struct WorkerRow {
        std::string id, host;
        int64_t pid = 0;
        std::vector<std::string> models;
        int64_t heartbeat_age_ms = 0;
    };
    // Workers whose last heartbeat is at most `max_age_ms` old.
    Result<std::vector<WorkerRow>> live_workers(int64_t max_age_ms);

    // Workers.
    Status register_worker(const std::string& id, const std::string& host, int64_t pid, const std::vector<std::string>& models);
    Status worker_heartbeat(const std::string& id);
    Status remove_worker(const std::string& id);
    struct Claim {
        JobRecord job;
        std::string token;
    };
    Result<std::optional<Claim>> claim_job(const std::string& worker_id, const std::vector<std::string>& models, int64_t lease_ms);
    struct Beat {
        int control = kControlNone;
        int64_t preview_wanted_age_ms = -1;  // -1: nobody asked
    };
    // Renews the lease and stores what changed (progress JSON, a preview PNG; empty = unchanged). nullopt: the
    // lease is lost (the job was queued again or finished elsewhere) and the worker must drop the job. A skip is
    // handed out once.
    Result<std::optional<Beat>> heartbeat(const std::string& id, const std::string& token, int64_t lease_ms,
                                          const std::string& progress_json, const std::string& preview_png);
    // Ends the claimed job with its images in one transaction; false when the claim no longer holds it (nothing
    // is stored). `error` starting with "quarantined" or naming --job-timeout counts in the cluster's counters.
    Result<bool> finish_claimed(const std::string& id, const std::string& token, const std::string& status,
                                const std::string& error, const std::string& result_json, const std::vector<std::string>& pngs);
    // Back to the queue (a graceful stop of the worker: the attempt does not count).
    Status release_claimed(const std::string& id, const std::string& token);
    // Jobs whose lease ran out: queued again, or failed as quarantined after kStoreMaxAttempts claims. Returns how
    // many were queued again and how many quarantined.
    Result<std::pair<int, int>> reap_expired();
    // Removes finished jobs (and their images) beyond the newest `keep`.
    Result<int> prune_finished(int keep);

private:
    PgStore() = default;
    std::unique_ptr<Conn> acquire();
    void release(std::unique_ptr<Conn> c);
    Status migrate(Migrate m);
    std::string url_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Conn>> idle_;
    friend class PgLease;
};

}  // namespace easel::server
