#include "pg_store.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/log.h"
#include "auth.h"

namespace easel::server {

bool is_postgres_url(const std::string& s) { return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0; }

namespace {

// A parameter of a statement: text, or bytes (bytea, sent in binary), or NULL.
struct Param {
    std::string value;
    bool binary = false;
    bool null = false;
    Param(std::string v) : value(std::move(v)) {}  // NOLINT: implicit from text
    Param(const char* v) : value(v) {}             // NOLINT
    Param(int64_t v) : value(std::to_string(v)) {}  // NOLINT
    Param(int v) : value(std::to_string(v)) {}      // NOLINT
    Param(bool v) : value(v ? "true" : "false") {}  // NOLINT
    static Param bytes(std::string v) {
        Param p(std::move(v));
        p.binary = true;
        return p;
    }
    static Param none() {
        Param p("");
        p.null = true;
        return p;
    }
};

// A result, cleared on scope exit.
class Rows {
public:
    explicit Rows(PGresult* r) : r_(r) {}
    PGresult* raw() const { return r_; }
    ~Rows() { PQclear(r_); }
    Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    Rows(const Rows&) = delete;
    Rows& operator=(const Rows&) = delete;
    int size() const { return PQntuples(r_); }
    bool null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r_, row, col), size_t(PQgetlength(r_, row, col)));
    }
    int64_t integer(int row, int col) const { return null(row, col) ? 0 : std::strtoll(PQgetvalue(r_, row, col), nullptr, 10); }
    double real(int row, int col) const { return null(row, col) ? 0.0 : std::strtod(PQgetvalue(r_, row, col), nullptr); }
    bool boolean(int row, int col) const { return !null(row, col) && PQgetvalue(r_, row, col)[0] == 't'; }

private:
    PGresult* r_;
};

// libpq's message on one line (it may span several: "...failed: ...\n\tIs the server running...?").
std::string one_line(std::string msg) {
    std::string o;
    bool space = false;
    for (char c : msg) {
        if (c == '\n' || c == '\t' || c == '\r') {
            space = !o.empty();
            continue;
        }
        if (space) o += "; ";
        space = false;
        o += c;
    }
    return o.empty() ? "the statement failed" : o;
}

// A PostgreSQL text[] literal of the given strings.
std::string text_array(const std::vector<std::string>& items) {
    std::string s = "{";
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) s += ',';
        s += '"';
        for (char c : items[i]) {
            if (c == '"' || c == '\\') s += '\\';
            s += c;
        }
        s += '"';
    }
    return s + "}";
}

constexpr const char* kJobColumns =
    "id, seq, key_id, model, kind, request_json, status, error, created_ms, started_ms, finished_ms, result_json, "
    "progress_json, version, attempts";

JobRecord read_job(const Rows& r, int row) {
    JobRecord j;
    j.id = r.text(row, 0);
    j.seq = r.integer(row, 1);
    j.key_id = r.text(row, 2);
    j.model = r.text(row, 3);
    j.kind = r.text(row, 4);
    j.request_json = r.text(row, 5);
    j.status = r.text(row, 6);
    j.error = r.text(row, 7);
    j.created_ms = r.integer(row, 8);
    j.started_ms = r.integer(row, 9);
    j.finished_ms = r.integer(row, 10);
    j.result_json = r.text(row, 11);
    j.progress_json = r.text(row, 12);
    j.version = r.integer(row, 13);
    j.attempts = int(r.integer(row, 14));
    return j;
}

constexpr const char* kKeyColumns = "id, name, hash, quota_per_day, rate_per_min, created_ms, revoked, admin";

KeyRecord read_key(const Rows& r, int row) {
    KeyRecord k;
    k.id = r.text(row, 0);
    k.name = r.text(row, 1);
    k.hash = r.text(row, 2);
    k.quota_per_day = r.integer(row, 3);
    k.rate_per_min = r.integer(row, 4);
    k.created_ms = r.integer(row, 5);
    k.revoked = r.boolean(row, 6);
    k.admin = r.boolean(row, 7);
    return k;
}

// Schema version 1, in one transaction. Every name starts with easel_, so the database may be shared.
constexpr const char* kSchemaV1[] = {
    "CREATE TABLE easel_schema (version integer NOT NULL)",
    "INSERT INTO easel_schema VALUES (0)",
    "CREATE FUNCTION easel_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS "
    "$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$",
    "CREATE TABLE easel_jobs (seq bigserial UNIQUE, id text PRIMARY KEY, key_id text NOT NULL DEFAULT '', "
    "model text NOT NULL, kind text NOT NULL, request_json text NOT NULL, status text NOT NULL, "
    "error text NOT NULL DEFAULT '', created_ms bigint NOT NULL, started_ms bigint NOT NULL DEFAULT 0, "
    "finished_ms bigint NOT NULL DEFAULT 0, result_json text NOT NULL DEFAULT '', attempts integer NOT NULL DEFAULT 0, "
    "worker text NOT NULL DEFAULT '', claim text NOT NULL DEFAULT '', lease_until_ms bigint NOT NULL DEFAULT 0, "
    "control integer NOT NULL DEFAULT 0, preview_wanted_ms bigint NOT NULL DEFAULT 0, "
    "progress_json text NOT NULL DEFAULT '', preview bytea, version bigint NOT NULL DEFAULT 1)",
    "CREATE INDEX easel_jobs_line ON easel_jobs (status, model, seq)",
    "CREATE INDEX easel_jobs_key ON easel_jobs (key_id, seq)",
    "CREATE TABLE easel_images (job_id text NOT NULL REFERENCES easel_jobs(id) ON DELETE CASCADE, n integer NOT NULL, "
    "png bytea NOT NULL, PRIMARY KEY (job_id, n))",
    "CREATE TABLE easel_keys (id text PRIMARY KEY, name text UNIQUE NOT NULL, hash text UNIQUE NOT NULL, "
    "quota_per_day bigint NOT NULL, rate_per_min bigint NOT NULL, created_ms bigint NOT NULL, "
    "revoked boolean NOT NULL DEFAULT false, admin boolean NOT NULL DEFAULT false)",
    "CREATE TABLE easel_usage (key_id text NOT NULL, day text NOT NULL, images bigint NOT NULL, PRIMARY KEY (key_id, day))",
    "CREATE TABLE easel_key_hits (key_id text NOT NULL, t_ms bigint NOT NULL)",
    "CREATE INDEX easel_key_hits_key ON easel_key_hits (key_id, t_ms)",
    "CREATE TABLE easel_workers (id text PRIMARY KEY, host text NOT NULL, pid bigint NOT NULL, models text NOT NULL, "
    "started_ms bigint NOT NULL, heartbeat_ms bigint NOT NULL)",
    "CREATE TABLE easel_counters (name text PRIMARY KEY, value double precision NOT NULL)",
};

// Adds $3 images to key $1's count for day $2 unless that passes the quota $4 (<= 0: unlimited); a row comes back
// when charged. One statement: the row lock of ON CONFLICT makes concurrent charges exact.
constexpr const char* kChargeSql =
    "INSERT INTO easel_usage (key_id, day, images) SELECT $1, $2, $3::bigint WHERE $4::bigint <= 0 OR $3::bigint <= $4::bigint "
    "ON CONFLICT (key_id, day) DO UPDATE SET images = easel_usage.images + EXCLUDED.images "
    "WHERE $4::bigint <= 0 OR easel_usage.images + EXCLUDED.images <= $4::bigint RETURNING images";

constexpr int64_t kMigrationLock = 0x6561736501;  // pg_advisory_lock keys ("ease" + n)
constexpr int64_t kSubmitLock = 0x6561736502;

}  // namespace

// One libpq connection. Statements are run with parameters (never spliced into the SQL).
class PgStore::Conn {
public:
    explicit Conn(PGconn* c) : c_(c) {}
    ~Conn() { PQfinish(c_); }
    bool connected() const { return PQstatus(c_) == CONNECTION_OK; }

    Result<Rows> exec(const char* sql, const std::vector<Param>& params = {}, bool binary_result = false) {
        std::vector<const char*> values;
        std::vector<int> lengths, formats;
        for (const Param& p : params) {
            values.push_back(p.null ? nullptr : p.value.data());
            lengths.push_back(int(p.value.size()));
            formats.push_back(p.binary ? 1 : 0);
        }
        Rows r(PQexecParams(c_, sql, int(params.size()), nullptr, values.data(), lengths.data(), formats.data(),
                            binary_result ? 1 : 0));
        const ExecStatusType st = PQresultStatus(r.raw());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            return Error::io(fmt::format("PostgreSQL: {}", one_line(PQerrorMessage(c_))));
        }
        return r;
    }
    Status run(const char* sql, const std::vector<Param>& params = {}) {
        EASEL_TRY_ASSIGN(Rows r, exec(sql, params));
        (void)r;
        return easel::ok();
    }

private:
    PGconn* c_;
};

// A connection borrowed from the pool for one call; it goes back unless it broke.
class PgLease {
public:
    explicit PgLease(PgStore& s) : s_(s), c_(s.acquire()) {}
    ~PgLease() {
        if (c_) s_.release(std::move(c_));
    }
    PgLease(const PgLease&) = delete;
    PgLease& operator=(const PgLease&) = delete;
    bool connected() const { return c_ && c_->connected(); }
    PgStore::Conn* operator->() { return c_.get(); }
    // BEGIN ... COMMIT around `body`; ROLLBACK when it fails.
    template <class F>
    auto transaction(F body) -> decltype(body()) {
        if (auto st = c_->run("BEGIN"); !st) return st.error();
        auto r = body();
        if (!r) {
            (void)c_->run("ROLLBACK");
            return r;
        }
        if (auto st = c_->run("COMMIT"); !st) return st.error();
        return r;
    }

private:
    PgStore& s_;
    std::unique_ptr<PgStore::Conn> c_;
};


std::unique_ptr<PgStore::Conn> PgStore::acquire() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        while (!idle_.empty()) {
            std::unique_ptr<Conn> c = std::move(idle_.back());
            idle_.pop_back();
            if (c->connected()) return c;
        }
    }
    return std::make_unique<Conn>(PQconnectdb(url_.c_str()));
}

void PgStore::release(std::unique_ptr<Conn> c) {
    if (!c->connected()) return;  // a broken connection is dropped; the next call opens a new one
    std::lock_guard<std::mutex> lk(mu_);
    if (idle_.size() < 16) idle_.push_back(std::move(c));
}

#define EASEL_PG_LEASE(name)                                                                                      \
    PgLease name(*this);                                                                                          \
    if (!name.connected()) return Error::io("PostgreSQL: cannot connect to " + redacted_url(url_), "--store")

namespace {
// The URL without its password, for messages.
std::string redacted_url(const std::string& url) {
    const size_t scheme = url.find("://");
    const size_t at = url.find('@');
    if (scheme == std::string::npos || at == std::string::npos) return url;
    const size_t colon = url.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon) + ":***" + url.substr(at);
}
}  // namespace

PgStore::~PgStore() = default;

Result<std::unique_ptr<PgStore>> PgStore::open(const std::string& url, Migrate m) {
    std::unique_ptr<PgStore> st(new PgStore());
    st->url_ = url;
    {
        auto c = st->acquire();
        if (!c->connected()) {
            // libpq's message says why (refused, no such database, authentication).
            PGconn* probe = PQconnectdb(url.c_str());
            const std::string msg = one_line(PQerrorMessage(probe));
            PQfinish(probe);
            return Error::io(fmt::format("cannot connect to PostgreSQL at {}: {}", redacted_url(url), msg), "--store");
        }
        st->release(std::move(c));
    }
    EASEL_TRY(st->migrate(m));
    return st;
}

Result<int> PgStore::schema_version() {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows t, c->exec("SELECT to_regclass('easel_schema') IS NOT NULL"));
    if (!t.boolean(0, 0)) return 0;
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT version FROM easel_schema"));
    return r.size() ? int(r.integer(0, 0)) : 0;
}

// Versioned schema changes, applied in order under an advisory lock (two front ends starting at once migrate
// once); a database newer than this binary is refused.
Status PgStore::migrate(Migrate m) {
    EASEL_TRY_ASSIGN(int version, schema_version());
    if (version > kSchemaVersion)
        return Error::unsupported(fmt::format("the database has easel schema version {}, this easel knows up to {}: it "
                                              "was written by a newer easel", version, kSchemaVersion), "--store");
    if (version == kSchemaVersion) return ok();
    if (m == Migrate::Refuse)
        return Error::refused(fmt::format("the database has easel schema version {}, this easel needs {}: run `easel serve "
                                          "--store URL --migrate` (or start `easel serve`) first", version, kSchemaVersion), "--store");
    EASEL_PG_LEASE(c);
    EASEL_TRY(c->run("SELECT pg_advisory_lock($1)", {kMigrationLock}));
    Status st = c.transaction([&]() -> Status {
        EASEL_TRY_ASSIGN(Rows t, c->exec("SELECT to_regclass('easel_schema') IS NOT NULL"));
        int v = 0;
        if (t.boolean(0, 0)) {
            EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT version FROM easel_schema FOR UPDATE"));
            v = r.size() ? int(r.integer(0, 0)) : 0;
        }
        if (v >= kSchemaVersion) return ok();  // another process migrated meanwhile
        if (v < 1)
            for (const char* sql : kSchemaV1) EASEL_TRY(c->run(sql));
        EASEL_TRY(c->run("UPDATE easel_schema SET version = $1", {kSchemaVersion}));
        log_warn("store", "PostgreSQL {}: the easel schema was migrated from version {} to {}", redacted_url(url_), v, kSchemaVersion);
        return ok();
    });
    (void)c->run("SELECT pg_advisory_unlock($1)", {kMigrationLock});
    return st;
}

// ---- keys ----

Status PgStore::insert_key(const KeyRecord& k) {
    EASEL_PG_LEASE(c);
    auto st = c->run("INSERT INTO easel_keys (id, name, hash, quota_per_day, rate_per_min, created_ms, revoked, admin) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     {k.id, k.name, k.hash, k.quota_per_day, k.rate_per_min, k.created_ms, k.revoked, k.admin});
    if (!st && st.error().to_string().find("easel_keys_name_key") != std::string::npos)
        return Error::invalid_argument(fmt::format("a key named '{}' exists already", k.name), "--name");
    return st;
}

Result<std::vector<KeyRecord>> PgStore::list_keys() {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("SELECT {} FROM easel_keys ORDER BY created_ms, name", kKeyColumns).c_str()));
    std::vector<KeyRecord> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(read_key(r, i));
    return out;
}

Result<std::optional<KeyRecord>> PgStore::find_key_by_hash(const std::string& hash) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("SELECT {} FROM easel_keys WHERE hash = $1", kKeyColumns).c_str(), {hash}));
    if (!r.size()) return std::optional<KeyRecord>();
    return std::optional<KeyRecord>(read_key(r, 0));
}

Status PgStore::revoke_key(const std::string& id_or_name) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("UPDATE easel_keys SET revoked = true WHERE id = $1 OR name = $1 RETURNING id", {id_or_name}));
    if (!r.size()) return Error::not_found(fmt::format("no key with the id or name '{}'", id_or_name));
    return ok();
}

Result<int64_t> PgStore::active_key_count() {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT count(*) FROM easel_keys WHERE NOT revoked"));
    return r.integer(0, 0);
}

Result<int64_t> PgStore::images_on_day(const std::string& key_id, const std::string& day) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT images FROM easel_usage WHERE key_id = $1 AND day = $2", {key_id, day}));
    return r.size() ? r.integer(0, 0) : 0;
}

Status PgStore::add_images(const std::string& key_id, const std::string& day, int64_t n) {
    EASEL_PG_LEASE(c);
    return c->run("INSERT INTO easel_usage (key_id, day, images) VALUES ($1, $2, $3) "
                  "ON CONFLICT (key_id, day) DO UPDATE SET images = easel_usage.images + EXCLUDED.images",
                  {key_id, day, n});
}

Result<std::optional<int64_t>> PgStore::charge_images(const std::string& key_id, const std::string& day, int64_t n, int64_t quota) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(kChargeSql,
                                     {key_id, day, n, quota}));
    if (r.size()) return std::optional<int64_t>();
    EASEL_TRY_ASSIGN(Rows u, c->exec("SELECT images FROM easel_usage WHERE key_id = $1 AND day = $2", {key_id, day}));
    return std::optional<int64_t>(u.size() ? u.integer(0, 0) : 0);
}

// The key's requests of the last minute (database clock), under a per-key transaction lock.
Result<bool> PgStore::allow_request(const std::string& key_id, int64_t per_minute, int64_t, int* retry_after_s) {
    if (per_minute <= 0) return true;
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<bool> {
        EASEL_TRY(c->run("SELECT pg_advisory_xact_lock(hashtext($1))", {key_id}));
        EASEL_TRY_ASSIGN(Rows now, c->exec("SELECT easel_now_ms()"));
        const int64_t t = now.integer(0, 0);
        EASEL_TRY(c->run("DELETE FROM easel_key_hits WHERE key_id = $1 AND t_ms <= $2", {key_id, t - 60000}));
        EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT count(*), min(t_ms) FROM easel_key_hits WHERE key_id = $1", {key_id}));
        if (r.integer(0, 0) >= per_minute) {
            *retry_after_s = std::max(1, int((r.integer(0, 1) + 60000 - t + 999) / 1000));
            return false;
        }
        EASEL_TRY(c->run("INSERT INTO easel_key_hits (key_id, t_ms) VALUES ($1, $2)", {key_id, t}));
        return true;
    });
}

// ---- jobs: front ends ----

namespace {
// Cluster-wide counters of a job that ended (status, latency histogram), inside the caller's transaction.
Status count_finished(PgStore::Conn& c, const std::string& status, const std::string& error, double secs) {
    std::string names = "{\"finished:" + status + "\",latency_count";
    for (double b : kJobLatencyBounds)
        if (secs <= b) names += fmt::format(",\"latency_le:{}\"", b);
    if (error.rfind("quarantined", 0) == 0) names += ",quarantined";
    if (error.find("--job-timeout") != std::string::npos) names += ",timed_out";
    names += "}";
    EASEL_TRY(c.run("INSERT INTO easel_counters (name, value) SELECT unnest($1::text[]), 1 "
                    "ON CONFLICT (name) DO UPDATE SET value = easel_counters.value + 1", {names}));
    return c.run("INSERT INTO easel_counters (name, value) VALUES ('latency_sum', $1::double precision) "
                 "ON CONFLICT (name) DO UPDATE SET value = easel_counters.value + EXCLUDED.value", {fmt::format("{}", secs)});
}
}  // namespace

Result<int> PgStore::submit_job(JobRecord& job, int queue_bound, const QuotaCharge* charge) {
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<int> {
        // One submission at a time over every front end, so the bound holds exactly.
        EASEL_TRY(c->run("SELECT pg_advisory_xact_lock($1)", {kSubmitLock}));
        EASEL_TRY_ASSIGN(Rows q, c->exec("SELECT count(*) FROM easel_jobs WHERE status = 'queued'"));
        if (q.integer(0, 0) >= queue_bound)
            return Error::exhausted(fmt::format("the queue is full ({} jobs waiting); retry later", q.integer(0, 0)));
        if (charge) {
            EASEL_TRY_ASSIGN(Rows u, c->exec(kChargeSql, {charge->key_id, charge->day, charge->images, charge->quota}));
            if (!u.size()) {
                EASEL_TRY_ASSIGN(Rows used, c->exec("SELECT images FROM easel_usage WHERE key_id = $1 AND day = $2",
                                                    {charge->key_id, charge->day}));
                return Error::exhausted(fmt::format("the key '{}' has used {} of its {} images today (UTC); this request "
                                                    "asks for {}", charge->key_name, used.size() ? used.integer(0, 0) : 0,
                                                    charge->quota, charge->images), "quota");
            }
        }
        EASEL_TRY_ASSIGN(Rows r, c->exec("INSERT INTO easel_jobs (id, key_id, model, kind, request_json, status, created_ms) "
                                         "VALUES ($1, $2, $3, $4, $5, 'queued', easel_now_ms()) RETURNING seq, created_ms",
                                         {job.id, job.key_id, job.model, job.kind, job.request_json}));
        job.seq = r.integer(0, 0);
        job.created_ms = r.integer(0, 1);
        job.status = "queued";
        EASEL_TRY_ASSIGN(Rows p, c->exec("SELECT count(*) FROM easel_jobs WHERE model = $1 AND (status = 'running' OR "
                                         "(status = 'queued' AND seq < $2))", {job.model, job.seq}));
        return int(p.integer(0, 0));
    });
}

Result<std::optional<JobRecord>> PgStore::get_job(const std::string& id) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("SELECT {} FROM easel_jobs WHERE id = $1", kJobColumns).c_str(), {id}));
    if (!r.size()) return std::optional<JobRecord>();
    return std::optional<JobRecord>(read_job(r, 0));
}

Result<std::vector<JobRecord>> PgStore::list_jobs(const std::string& key_id, bool all_keys, int limit, const JobFilter& filter) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("SELECT {} FROM easel_jobs WHERE ($1::boolean OR key_id = $2) AND ($4 = '' "
                                                 "OR strpos(lower(coalesce(request_json::jsonb->>'prompt', '')), lower($4)) "
                                                 "> 0) AND ($5 = '' OR model = $5) ORDER BY seq DESC LIMIT $3",
                                                 kJobColumns).c_str(),
                                     {all_keys, key_id, limit, filter.prompt, filter.model}));
    std::vector<JobRecord> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(read_job(r, i));
    return out;
}

Result<std::optional<JobRecord>> PgStore::delete_finished(const std::string& id, const std::string& key_id, bool all_keys) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("DELETE FROM easel_jobs WHERE id = $1 AND ($2::boolean OR key_id = $3) AND "
                                                 "status IN ('done', 'failed', 'cancelled') RETURNING {}", kJobColumns).c_str(),
                                     {id, all_keys, key_id}));
    if (!r.size()) return std::optional<JobRecord>();
    return std::optional<JobRecord>(read_job(r, 0));
}

Result<std::vector<JobRecord>> PgStore::active_jobs(const std::string& key_id, bool all_keys) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format("SELECT {} FROM easel_jobs WHERE status IN ('queued', 'running') AND "
                                                 "($1::boolean OR key_id = $2) ORDER BY seq", kJobColumns).c_str(),
                                     {all_keys, key_id}));
    std::vector<JobRecord> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(read_job(r, i));
    return out;
}

Result<std::optional<int64_t>> PgStore::job_version(const std::string& id) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT version FROM easel_jobs WHERE id = $1", {id}));
    if (!r.size()) return std::optional<int64_t>();
    return std::optional<int64_t>(r.integer(0, 0));
}

Result<std::string> PgStore::preview(const std::string& id) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT preview FROM easel_jobs WHERE id = $1 AND preview IS NOT NULL", {id}, true));
    return r.size() ? r.text(0, 0) : std::string();
}

Result<std::optional<std::string>> PgStore::image(const std::string& id, int index) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT png FROM easel_images WHERE job_id = $1 AND n = $2", {id, index}, true));
    if (!r.size()) return std::optional<std::string>();
    return std::optional<std::string>(r.text(0, 0));
}

Result<int> PgStore::image_count(const std::string& id) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT count(*) FROM easel_images WHERE job_id = $1", {id}));
    return int(r.integer(0, 0));
}

Result<bool> PgStore::cancel(const std::string& id) {
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<bool> {
        EASEL_TRY_ASSIGN(Rows r, c->exec("UPDATE easel_jobs SET status = 'cancelled', error = 'cancelled', finished_ms = "
                                         "easel_now_ms(), version = version + 1 WHERE id = $1 AND status = 'queued' "
                                         "RETURNING finished_ms - created_ms", {id}));
        if (r.size()) {
            EASEL_TRY(count_finished(*c.operator->(), "cancelled", "", double(r.integer(0, 0)) / 1000.0));
            return true;
        }
        EASEL_TRY(c->run("UPDATE easel_jobs SET control = $2, version = version + 1 WHERE id = $1 AND status = 'running'",
                         {id, int(kControlCancel)}));
        return false;
    });
}

Status PgStore::set_control_running(const std::string& key_id, bool all_keys, JobControl flag) {
    EASEL_PG_LEASE(c);
    return c->run("UPDATE easel_jobs SET control = $1, version = version + 1 WHERE status = 'running' AND "
                  "($2::boolean OR key_id = $3) AND control <> $4",
                  {int(flag), all_keys, key_id, int(kControlCancel)});
}

Status PgStore::want_preview(const std::string& id) {
    EASEL_PG_LEASE(c);
    return c->run("UPDATE easel_jobs SET preview_wanted_ms = easel_now_ms() WHERE id = $1 AND status = 'running'", {id});
}

Result<int> PgStore::queue_position(const std::string& id) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT count(*) FROM easel_jobs j, (SELECT model, seq FROM easel_jobs WHERE id = $1) me "
                                     "WHERE j.model = me.model AND (j.status = 'running' OR (j.status = 'queued' AND j.seq < me.seq))",
                                     {id}));
    return int(r.integer(0, 0));
}

Result<std::map<std::string, std::pair<int64_t, int64_t>>> PgStore::queue_by_model() {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT model, count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = "
                                     "'running') FROM easel_jobs WHERE status IN ('queued', 'running') GROUP BY model"));
    std::map<std::string, std::pair<int64_t, int64_t>> out;
    for (int i = 0; i < r.size(); ++i) out[r.text(i, 0)] = {r.integer(i, 1), r.integer(i, 2)};
    return out;
}

Result<std::map<std::string, double>> PgStore::counters() {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT name, value FROM easel_counters"));
    std::map<std::string, double> out;
    for (int i = 0; i < r.size(); ++i) out[r.text(i, 0)] = r.real(i, 1);
    return out;
}

Result<std::vector<PgStore::WorkerRow>> PgStore::live_workers(int64_t max_age_ms) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT id, host, pid, models, easel_now_ms() - heartbeat_ms FROM easel_workers "
                                     "WHERE heartbeat_ms >= easel_now_ms() - $1 ORDER BY started_ms", {max_age_ms}));
    std::vector<WorkerRow> out;
    for (int i = 0; i < r.size(); ++i) {
        WorkerRow w{r.text(i, 0), r.text(i, 1), r.integer(i, 2), {}, r.integer(i, 4)};
        const std::string models = r.text(i, 3);
        size_t start = 0;
        while (start < models.size()) {
            const size_t nl = models.find('\n', start);
            w.models.push_back(models.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
        out.push_back(std::move(w));
    }
    return out;
}

// ---- jobs: workers ----

Status PgStore::register_worker(const std::string& id, const std::string& host, int64_t pid, const std::vector<std::string>& models) {
    std::string joined;
    for (const std::string& m : models) joined += (joined.empty() ? "" : "\n") + m;
    EASEL_PG_LEASE(c);
    return c->run("INSERT INTO easel_workers (id, host, pid, models, started_ms, heartbeat_ms) VALUES ($1, $2, $3, $4, "
                  "easel_now_ms(), easel_now_ms()) ON CONFLICT (id) DO UPDATE SET heartbeat_ms = easel_now_ms()",
                  {id, host, pid, joined});
}

Status PgStore::worker_heartbeat(const std::string& id) {
    EASEL_PG_LEASE(c);
    return c->run("UPDATE easel_workers SET heartbeat_ms = easel_now_ms() WHERE id = $1", {id});
}

Status PgStore::remove_worker(const std::string& id) {
    EASEL_PG_LEASE(c);
    return c->run("DELETE FROM easel_workers WHERE id = $1", {id});
}

Result<std::optional<PgStore::Claim>> PgStore::claim_job(const std::string& worker_id, const std::vector<std::string>& models,
                                                         int64_t lease_ms) {
    EASEL_PG_LEASE(c);
    const std::string token = random_hex(16);
    EASEL_TRY_ASSIGN(Rows r, c->exec(fmt::format(
        "UPDATE easel_jobs SET status = 'running', worker = $1, claim = $2, lease_until_ms = easel_now_ms() + $3::bigint, "
        "attempts = attempts + 1, started_ms = easel_now_ms(), control = 0, progress_json = '', preview = NULL, "
        "version = version + 1 WHERE id = (SELECT id FROM easel_jobs WHERE status = 'queued' AND model = ANY($4::text[]) "
        "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {}", kJobColumns).c_str(),
        {worker_id, token, lease_ms, text_array(models)}));
    if (!r.size()) return std::optional<Claim>();
    return std::optional<Claim>(Claim{read_job(r, 0), token});
}

Result<std::optional<PgStore::Beat>> PgStore::heartbeat(const std::string& id, const std::string& token, int64_t lease_ms,
                                                        const std::string& progress_json, const std::string& preview_png) {
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<std::optional<Beat>> {
        EASEL_TRY_ASSIGN(Rows r, c->exec("SELECT control, CASE WHEN preview_wanted_ms > 0 THEN easel_now_ms() - "
                                         "preview_wanted_ms ELSE -1 END FROM easel_jobs WHERE id = $1 AND claim = $2 AND "
                                         "status = 'running' FOR UPDATE", {id, token}));
        if (!r.size()) return std::optional<Beat>();
        Beat b{int(r.integer(0, 0)), r.integer(0, 1)};
        const bool changed = !progress_json.empty() || !preview_png.empty();
        EASEL_TRY(c->run("UPDATE easel_jobs SET lease_until_ms = easel_now_ms() + $2::bigint, "
                         "progress_json = CASE WHEN $3 = '' THEN progress_json ELSE $3 END, "
                         "preview = COALESCE($4::bytea, preview), version = version + $5, "
                         "control = CASE WHEN control = $6 THEN 0 ELSE control END WHERE id = $1",
                         {id, lease_ms, progress_json, preview_png.empty() ? Param::none() : Param::bytes(preview_png),
                          changed ? 1 : 0, int(kControlSkip)}));
        return std::optional<Beat>(b);
    });
}

Result<bool> PgStore::finish_claimed(const std::string& id, const std::string& token, const std::string& status,
                                     const std::string& error, const std::string& result_json, const std::vector<std::string>& pngs) {
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<bool> {
        EASEL_TRY_ASSIGN(Rows r, c->exec("UPDATE easel_jobs SET status = $3, error = $4, result_json = $5, finished_ms = "
                                         "easel_now_ms(), claim = '', preview = NULL, version = version + 1 "
                                         "WHERE id = $1 AND claim = $2 AND status = 'running' RETURNING finished_ms - created_ms",
                                         {id, token, status, error, result_json}));
        if (!r.size()) return false;
        for (size_t i = 0; i < pngs.size(); ++i)
            EASEL_TRY(c->run("INSERT INTO easel_images (job_id, n, png) VALUES ($1, $2, $3)", {id, int(i), Param::bytes(pngs[i])}));
        EASEL_TRY(count_finished(*c.operator->(), status, error, double(r.integer(0, 0)) / 1000.0));
        return true;
    });
}

Status PgStore::release_claimed(const std::string& id, const std::string& token) {
    EASEL_PG_LEASE(c);
    return c->run("UPDATE easel_jobs SET status = 'queued', claim = '', worker = '', started_ms = 0, progress_json = '', "
                  "preview = NULL, attempts = greatest(attempts - 1, 0), version = version + 1 "
                  "WHERE id = $1 AND claim = $2 AND status = 'running'", {id, token});
}

Result<std::pair<int, int>> PgStore::reap_expired() {
    EASEL_PG_LEASE(c);
    return c.transaction([&]() -> Result<std::pair<int, int>> {
        EASEL_TRY_ASSIGN(Rows r, c->exec(
            "UPDATE easel_jobs SET "
            "status = CASE WHEN control = $2 THEN 'cancelled' WHEN attempts >= $1 THEN 'failed' ELSE 'queued' END, "
            "error = CASE WHEN control = $2 THEN 'cancelled' WHEN attempts >= $1 THEN 'quarantined: the worker running it "
            "was lost (no heartbeat within its lease) on each of its ' || attempts || ' claims; it is not run again' "
            "ELSE error END, "
            "finished_ms = CASE WHEN control = $2 OR attempts >= $1 THEN easel_now_ms() ELSE 0 END, "
            "started_ms = CASE WHEN control = $2 OR attempts >= $1 THEN started_ms ELSE 0 END, "
            "claim = '', worker = '', control = 0, progress_json = '', preview = NULL, version = version + 1 "
            "WHERE status = 'running' AND lease_until_ms < easel_now_ms() RETURNING status, error, finished_ms - created_ms",
            {kStoreMaxAttempts, int(kControlCancel)}));
        int requeued = 0, quarantined = 0;
        for (int i = 0; i < r.size(); ++i) {
            const std::string st = r.text(i, 0);
            if (st == "queued") {
                ++requeued;
                continue;
            }
            if (st == "failed") ++quarantined;
            EASEL_TRY(count_finished(*c.operator->(), st, r.text(i, 1), double(r.integer(i, 2)) / 1000.0));
        }
        return std::make_pair(requeued, quarantined);
    });
}

Result<int> PgStore::prune_finished(int keep) {
    EASEL_PG_LEASE(c);
    EASEL_TRY_ASSIGN(Rows r, c->exec("DELETE FROM easel_jobs WHERE seq IN (SELECT seq FROM easel_jobs WHERE status IN "
                                     "('done', 'failed', 'cancelled') ORDER BY seq DESC OFFSET $1) RETURNING id", {keep}));
    return r.size();
}

}  // namespace easel::server
