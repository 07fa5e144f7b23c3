#include "store.h"

#include <sqlite3.h>

#include <chrono>
#include <ctime>

#include <fmt/format.h>

namespace easel::server {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string utc_day(int64_t ms) {
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

namespace {

// A prepared statement, finalized on scope exit. bind() takes 1-based positions in order.
class Stmt {
public:
    Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(const std::string& v) {
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_text(s_, ++n_, v.data(), int(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& bind(int64_t v) {
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(s_, ++n_, v);
        return *this;
    }
    // SQLITE_ROW -> true, SQLITE_DONE -> false, else an error.
    Result<bool> step() {
        if (rc_ != SQLITE_OK) return error("preparing");
        const int r = sqlite3_step(s_);
        if (r == SQLITE_ROW) return true;
        if (r == SQLITE_DONE) return false;
        rc_ = r;
        return error("running");
    }
    Status run() {
        EASEL_TRY_ASSIGN(bool row, step());
        (void)row;
        return ok();
    }
    std::string text(int col) const {
        const unsigned char* t = sqlite3_column_text(s_, col);
        return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(s_, col))) : std::string();
    }
    int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }

private:
    Error error(const char* what) const {
        return Error::io(fmt::format("database error {} a statement: {} ({})", what, sqlite3_errmsg(db_), rc_));
    }
    sqlite3* db_;
    sqlite3_stmt* s_ = nullptr;
    int rc_ = SQLITE_OK;
    int n_ = 0;
};

constexpr const char* kJobColumns =
    "id, seq, key_id, model, kind, request_json, status, error, created_ms, started_ms, finished_ms, result_json";

JobRecord read_job(const Stmt& s) {
    JobRecord j;
    j.id = s.text(0);
    j.seq = s.integer(1);
    j.key_id = s.text(2);
    j.model = s.text(3);
    j.kind = s.text(4);
    j.request_json = s.text(5);
    j.status = s.text(6);
    j.error = s.text(7);
    j.created_ms = s.integer(8);
    j.started_ms = s.integer(9);
    j.finished_ms = s.integer(10);
    j.result_json = s.text(11);
    return j;
}

constexpr const char* kKeyColumns = "id, name, hash, quota_per_day, rate_per_min, created_ms, revoked, admin";

// Every row a statement yields, each turned into a record by `read`.
template <class Read>
auto read_rows(Stmt& s, Read read) -> Result<std::vector<decltype(read(s))>> {
    std::vector<decltype(read(s))> out;
    for (;;) {
        EASEL_TRY_ASSIGN(bool row, s.step());
        if (!row) break;
        out.push_back(read(s));
    }
    return out;
}

KeyRecord read_key(const Stmt& s) {
    KeyRecord k;
    k.id = s.text(0);
    k.name = s.text(1);
    k.hash = s.text(2);
    k.quota_per_day = s.integer(3);
    k.rate_per_min = s.integer(4);
    k.created_ms = s.integer(5);
    k.revoked = s.integer(6) != 0;
    k.admin = s.integer(7) != 0;
    return k;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
    std::unique_ptr<Store> st(new Store());
    st->path_ = path;
    const int rc = sqlite3_open_v2(path.c_str(), &st->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = st->db_ ? sqlite3_errmsg(st->db_) : "out of memory";
        return Error::io(fmt::format("cannot open the database: {}", msg), path);
    }
    sqlite3_busy_timeout(st->db_, 5000);  // `easel keys` may write while the server runs
    EASEL_TRY(st->exec("PRAGMA journal_mode=WAL"));
    EASEL_TRY(st->exec("PRAGMA synchronous=NORMAL"));  // WAL + NORMAL: durable across process crashes
    EASEL_TRY(st->exec(
        "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
        "key_id TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL, request_json TEXT NOT NULL, "
        "status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, "
        "started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0, "
        "result_json TEXT NOT NULL DEFAULT '')"));
    EASEL_TRY(st->exec("CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)"));
    EASEL_TRY(st->exec(
        "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, hash TEXT UNIQUE NOT NULL, "
        "quota_per_day INTEGER NOT NULL, rate_per_min INTEGER NOT NULL, created_ms INTEGER NOT NULL, "
        "revoked INTEGER NOT NULL DEFAULT 0)"));
    EASEL_TRY(st->exec(
        "CREATE TABLE IF NOT EXISTS usage (key_id TEXT NOT NULL, day TEXT NOT NULL, images INTEGER NOT NULL, "
        "PRIMARY KEY (key_id, day))"));
    EASEL_TRY(st->migrate());
    return st;
}

Store::~Store() { sqlite3_close(db_); }

// Schema changes after the first release, numbered by SQLite's user_version: a database is brought up to the
// newest version once, in one transaction, and a database newer than this binary is refused rather than used.
//   1: jobs.attempts, how many times a job was started (requeue_unfinished quarantines at kMaxAttempts).
//   2: keys.admin, a key that sees every key's jobs.
Status Store::migrate() {
    constexpr int64_t kSchemaVersion = 2;
    int64_t version = 0;
    {
        Stmt s(db_, "PRAGMA user_version");
        EASEL_TRY_ASSIGN(bool row, s.step());
        if (row) version = s.integer(0);
    }
    if (version > kSchemaVersion)
        return Error::unsupported(fmt::format("the database has schema version {}, this easel knows up to {}: it was "
                                              "written by a newer easel", version, kSchemaVersion), path_);
    if (version == kSchemaVersion) return ok();
    EASEL_TRY(exec("BEGIN IMMEDIATE"));
    Status st = ok();
    if (version < 1) st = exec("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0");
    if (st && version < 2) st = exec("ALTER TABLE keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0");
    if (st) st = exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
    if (!st) {
        (void)exec("ROLLBACK");
        return st;
    }
    return exec("COMMIT");
}

Status Store::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        return Error::io(fmt::format("database error: {}", msg), path_);
    }
    return ok();
}

Status Store::insert_job(JobRecord& job) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO jobs (id, key_id, model, kind, request_json, status, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(job.id).bind(job.key_id).bind(job.model).bind(job.kind).bind(job.request_json).bind(job.status).bind(job.created_ms);
    EASEL_TRY(s.run());
    job.seq = sqlite3_last_insert_rowid(db_);
    return ok();
}

Status Store::set_running(const std::string& id, int64_t started_ms) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "UPDATE jobs SET status = 'running', started_ms = ?, attempts = attempts + 1 WHERE id = ?");
    return s.bind(started_ms).bind(id).run();
}

Status Store::finish_job(const std::string& id, const std::string& status, const std::string& error, int64_t finished_ms,
                         const std::string& result_json) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "UPDATE jobs SET status = ?, error = ?, finished_ms = ?, result_json = ? WHERE id = ?");
    return s.bind(status).bind(error).bind(finished_ms).bind(result_json).bind(id).run();
}

Result<std::optional<JobRecord>> Store::get_job(const std::string& id) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, fmt::format("SELECT {} FROM jobs WHERE id = ?", kJobColumns).c_str());
    s.bind(id);
    EASEL_TRY_ASSIGN(bool row, s.step());
    if (!row) return std::optional<JobRecord>();
    return std::optional<JobRecord>(read_job(s));
}

Result<std::vector<JobRecord>> Store::list_jobs(const std::string& key_id, bool all_keys, int limit, const JobFilter& filter) {
    std::lock_guard<std::mutex> lk(mu_);
    const std::string sql = fmt::format(
        "SELECT {} FROM jobs WHERE (? OR key_id = ?) AND (? = '' OR instr(lower(CASE WHEN json_valid(request_json) THEN "
        "coalesce(json_extract(request_json, '$.prompt'), '') ELSE '' END), lower(?)) > 0) AND (? = '' OR model = ?) "
        "ORDER BY seq DESC LIMIT ?", kJobColumns);
    Stmt s(db_, sql.c_str());
    s.bind(int64_t(all_keys ? 1 : 0)).bind(key_id).bind(filter.prompt).bind(filter.prompt).bind(filter.model)
        .bind(filter.model).bind(int64_t(limit));
    return read_rows(s, read_job);
}

Result<std::optional<JobRecord>> Store::delete_finished(const std::string& id, const std::string& key_id, bool all_keys) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt q(db_, fmt::format("SELECT {} FROM jobs WHERE id = ? AND (? OR key_id = ?) AND status IN ('done', 'failed', "
                            "'cancelled')", kJobColumns).c_str());
    q.bind(id).bind(int64_t(all_keys ? 1 : 0)).bind(key_id);
    EASEL_TRY_ASSIGN(bool row, q.step());
    if (!row) return std::optional<JobRecord>();
    JobRecord rec = read_job(q);
    Stmt d(db_, "DELETE FROM jobs WHERE id = ?");
    EASEL_TRY(d.bind(id).run());
    return std::optional<JobRecord>(std::move(rec));
}

Status Store::set_queued(const std::string& id, bool count_attempt) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, count_attempt ? "UPDATE jobs SET status = 'queued', started_ms = 0 WHERE id = ?"
                              : "UPDATE jobs SET status = 'queued', started_ms = 0, attempts = max(attempts - 1, 0) WHERE id = ?");
    return s.bind(id).run();
}

Result<std::vector<JobRecord>> Store::requeue_unfinished() {
    std::lock_guard<std::mutex> lk(mu_);
    {
        // A job that was running when the server stopped kStoreMaxAttempts times is the likely cause: it fails
        // instead of taking the next server down too.
        Stmt q(db_, "UPDATE jobs SET status = 'failed', finished_ms = ?, error = ? WHERE status = 'running' AND attempts >= ?");
        EASEL_TRY(q.bind(now_ms())
                      .bind(fmt::format("quarantined: the server stopped while this job was running, {} times (a crash, "
                                        "running out of memory, or a kill); it is not run again", kStoreMaxAttempts))
                      .bind(int64_t(kStoreMaxAttempts))
                      .run());
        Stmt s(db_, "UPDATE jobs SET status = 'queued', started_ms = 0 WHERE status = 'running'");
        EASEL_TRY(s.run());
    }
    Stmt s(db_, fmt::format("SELECT {} FROM jobs WHERE status = 'queued' ORDER BY seq", kJobColumns).c_str());
    return read_rows(s, read_job);
}

Result<std::vector<JobRecord>> Store::prune_finished(int keep) {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<JobRecord> out;
    {
        Stmt s(db_, fmt::format("SELECT {} FROM jobs WHERE status IN ('done', 'failed', 'cancelled') "
                                "ORDER BY seq DESC LIMIT -1 OFFSET ?", kJobColumns).c_str());
        s.bind(int64_t(keep));
        EASEL_TRY_ASSIGN(out, read_rows(s, read_job));
    }
    for (const JobRecord& j : out) {
        Stmt d(db_, "DELETE FROM jobs WHERE id = ?");
        EASEL_TRY(d.bind(j.id).run());
    }
    return out;
}

Status Store::insert_key(const KeyRecord& key) {
    std::lock_guard<std::mutex> lk(mu_);
    {
        Stmt s(db_, "SELECT 1 FROM keys WHERE name = ?");
        s.bind(key.name);
        EASEL_TRY_ASSIGN(bool row, s.step());
        if (row) return Error::invalid_argument(fmt::format("a key named '{}' exists already", key.name), "--name");
    }
    Stmt s(db_, "INSERT INTO keys (id, name, hash, quota_per_day, rate_per_min, created_ms, admin) VALUES (?, ?, ?, ?, ?, ?, ?)");
    return s.bind(key.id).bind(key.name).bind(key.hash).bind(key.quota_per_day).bind(key.rate_per_min).bind(key.created_ms)
        .bind(int64_t(key.admin ? 1 : 0)).run();
}

Result<std::vector<KeyRecord>> Store::list_keys() {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, fmt::format("SELECT {} FROM keys ORDER BY created_ms", kKeyColumns).c_str());
    return read_rows(s, read_key);
}

Result<std::optional<KeyRecord>> Store::find_key_by_hash(const std::string& hash) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, fmt::format("SELECT {} FROM keys WHERE hash = ?", kKeyColumns).c_str());
    s.bind(hash);
    EASEL_TRY_ASSIGN(bool row, s.step());
    if (!row) return std::optional<KeyRecord>();
    return std::optional<KeyRecord>(read_key(s));
}

Status Store::revoke_key(const std::string& id_or_name) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "UPDATE keys SET revoked = 1 WHERE id = ? OR name = ?");
    EASEL_TRY(s.bind(id_or_name).bind(id_or_name).run());
    if (sqlite3_changes(db_) == 0) return Error::not_found(fmt::format("no key with the id or name '{}'", id_or_name));
    return ok();
}

Result<int64_t> Store::active_key_count() {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT COUNT(*) FROM keys WHERE revoked = 0");
    EASEL_TRY_ASSIGN(bool row, s.step());
    return row ? s.integer(0) : 0;
}

Result<int64_t> Store::images_on_day(const std::string& key_id, const std::string& day) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT images FROM usage WHERE key_id = ? AND day = ?");
    s.bind(key_id).bind(day);
    EASEL_TRY_ASSIGN(bool row, s.step());
    return row ? s.integer(0) : 0;
}

Status Store::add_images(const std::string& key_id, const std::string& day, int64_t n) {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "INSERT INTO usage (key_id, day, images) VALUES (?, ?, ?) "
                "ON CONFLICT(key_id, day) DO UPDATE SET images = images + excluded.images");
    return s.bind(key_id).bind(day).bind(n).run();
}

Result<std::optional<int64_t>> Store::charge_images(const std::string& key_id, const std::string& day, int64_t n,
                                                   int64_t quota) {
    std::lock_guard<std::mutex> lk(mu_);  // one connection, and every caller holds mu_: the read and the add are one step
    int64_t used = 0;
    {
        Stmt s(db_, "SELECT images FROM usage WHERE key_id = ? AND day = ?");
        s.bind(key_id).bind(day);
        EASEL_TRY_ASSIGN(bool row, s.step());
        if (row) used = s.integer(0);
    }
    if (quota > 0 && used + n > quota) return std::optional<int64_t>(used);
    Stmt s(db_, "INSERT INTO usage (key_id, day, images) VALUES (?, ?, ?) "
                "ON CONFLICT(key_id, day) DO UPDATE SET images = images + excluded.images");
    EASEL_TRY(s.bind(key_id).bind(day).bind(n).run());
    return std::optional<int64_t>();
}

Result<bool> Store::allow_request(const std::string& key_id, int64_t per_minute, int64_t now, int* retry_after_s) {
    return limiter_.allow(key_id, per_minute, now, retry_after_s);
}

}  // namespace easel::server
