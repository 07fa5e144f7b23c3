// The PostgreSQL store (apps/server/pg_store.h) against a real server started for the test: the schema and its
// version, claims that never hand one job to two workers, leases that lapse into a requeue and then a quarantine,
// results stored only by the claim that holds the job, and quotas, rate limits and the queue bound that stay exact
// when many connections race.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "postgres_server.h"
#include "server/pg_store.h"

using namespace easel::server;

namespace {

class PgStoreTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pg_ = new easel::testing::TempPostgres();
        if (!pg_->start()) {
            error_ = pg_->error;
            return;
        }
        auto st = PgStore::open(pg_->url(), PgStore::Migrate::AtStart);
        if (!st) {
            error_ = st.error().to_string();
            return;
        }
        store_ = std::move(st).value().release();
    }
    static void TearDownTestSuite() {
        delete store_;
        store_ = nullptr;
        delete pg_;
        pg_ = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(store_) << error_; }

    static JobRecord job(const std::string& id, const std::string& model = "m", const std::string& key = "") {
        JobRecord j;
        j.id = id;
        j.model = model;
        j.key_id = key;
        j.kind = "txt2img";
        j.request_json = "{\"prompt\":\"x\"}";
        return j;
    }

    static easel::testing::TempPostgres* pg_;
    static PgStore* store_;
    static std::string error_;
};
easel::testing::TempPostgres* PgStoreTest::pg_ = nullptr;
PgStore* PgStoreTest::store_ = nullptr;
std::string PgStoreTest::error_;

TEST_F(PgStoreTest, SchemaIsVersionedAndANewerOneIsRefused) {
    auto v = store_->schema_version();
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(*v, PgStore::kSchemaVersion);
    // Opening again (a second front end) finds it current; a worker (Refuse) accepts a current schema.
    auto again = PgStore::open(pg_->url(), PgStore::Migrate::Refuse);
    ASSERT_TRUE(again) << again.error().to_string();
    // A schema written by a newer easel is refused, by front ends and workers alike.
    ASSERT_TRUE(pg_->sql("UPDATE easel_schema SET version = 99"));
    auto newer = PgStore::open(pg_->url(), PgStore::Migrate::AtStart);
    ASSERT_TRUE(pg_->sql("UPDATE easel_schema SET version = " + std::to_string(PgStore::kSchemaVersion)));
    ASSERT_FALSE(newer);
    EXPECT_NE(newer.error().to_string().find("newer easel"), std::string::npos) << newer.error().to_string();
}

TEST_F(PgStoreTest, AWorkerRefusesAStoreWithoutTheSchema) {
    ASSERT_TRUE(pg_->sql("CREATE DATABASE empty_one"));
    const std::string url = "postgresql:///empty_one?host=" + pg_->folder() + "&user=easel";
    auto w = PgStore::open(url, PgStore::Migrate::Refuse);
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().to_string().find("--migrate"), std::string::npos) << w.error().to_string();
    auto fe = PgStore::open(url, PgStore::Migrate::AtStart);  // a front end creates it (and logs so)
    ASSERT_TRUE(fe) << fe.error().to_string();
    EXPECT_EQ(*(*fe)->schema_version(), PgStore::kSchemaVersion);
}

TEST_F(PgStoreTest, AnUnreachableServerIsAClearError) {
    auto st = PgStore::open("postgresql:///postgres?host=/nonexistent-easel&user=easel", PgStore::Migrate::AtStart);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().to_string().find("cannot connect to PostgreSQL"), std::string::npos) << st.error().to_string();
}

TEST_F(PgStoreTest, EightWorkersRacingClaimEveryJobExactlyOnce) {
    constexpr int kJobs = 60;
    for (int i = 0; i < kJobs; ++i) {
        JobRecord j = job("race" + std::to_string(i), "race");
        ASSERT_TRUE(store_->submit_job(j, 1000));
    }
    std::mutex mu;
    std::multiset<std::string> claimed;
    std::vector<std::thread> workers;
    std::atomic<int> errors{0};
    for (int w = 0; w < 8; ++w)
        workers.emplace_back([&, w] {
            for (;;) {
                auto c = store_->claim_job("w" + std::to_string(w), {"race"}, 60'000);
                if (!c) {
                    ++errors;
                    return;
                }
                if (!*c) return;
                EXPECT_TRUE(*store_->finish_claimed((*c)->job.id, (*c)->token, "done", "", "{}", {"png"}));
                std::lock_guard<std::mutex> lk(mu);
                claimed.insert((*c)->job.id);
            }
        });
    for (auto& t : workers) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(claimed.size(), size_t(kJobs));
    EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(), size_t(kJobs)) << "a job was claimed twice";
}

TEST_F(PgStoreTest, ALapsedLeaseRequeuesThenQuarantinesAndTheStaleClaimStoresNothing) {
    JobRecord j = job("lease1", "lease");
    ASSERT_TRUE(store_->submit_job(j, 1000));
    auto c1 = store_->claim_job("a", {"lease"}, 1);  // a 1 ms lease: lapsed at once
    ASSERT_TRUE(c1 && *c1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto reaped = store_->reap_expired();
    ASSERT_TRUE(reaped) << reaped.error().to_string();
    EXPECT_GE(reaped->first, 1);
    EXPECT_EQ((*store_->get_job("lease1"))->status, "queued");
    // The first claim's late heartbeat and result are refused: nothing is stored.
    auto beat = store_->heartbeat("lease1", (*c1)->token, 1000, "{}", "");
    ASSERT_TRUE(beat);
    EXPECT_FALSE(*beat);
    auto c2 = store_->claim_job("b", {"lease"}, 1);
    ASSERT_TRUE(c2 && *c2);
    EXPECT_EQ((*c2)->job.attempts, 2);
    auto stale = store_->finish_claimed("lease1", (*c1)->token, "done", "", "{}", {"png"});
    ASSERT_TRUE(stale);
    EXPECT_FALSE(*stale);
    EXPECT_EQ(*store_->image_count("lease1"), 0);
    // Lost again: quarantined, never queued a third time.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reaped = store_->reap_expired();
    ASSERT_TRUE(reaped);
    EXPECT_GE(reaped->second, 1);
    auto rec = *store_->get_job("lease1");
    EXPECT_EQ(rec->status, "failed");
    EXPECT_EQ(rec->error.rfind("quarantined", 0), 0u) << rec->error;
    auto counters = store_->counters();
    ASSERT_TRUE(counters);
    EXPECT_GE((*counters)["quarantined"], 1.0);
}

TEST_F(PgStoreTest, HeartbeatsCarryProgressPreviewsAndStopRequests) {
    JobRecord j = job("beat1", "beat");
    ASSERT_TRUE(store_->submit_job(j, 1000));
    auto c = store_->claim_job("w", {"beat"}, 60'000);
    ASSERT_TRUE(c && *c);
    const std::string png("\x89PNG\r\n\x1a\n\0\x01\x02", 11);  // bytes with a NUL survive (bytea)
    auto b = store_->heartbeat("beat1", (*c)->token, 60'000, "{\"step\":3}", png);
    ASSERT_TRUE(b && *b);
    EXPECT_EQ((*b)->control, kControlNone);
    EXPECT_EQ((*b)->preview_wanted_age_ms, -1);
    EXPECT_EQ(*store_->preview("beat1"), png);
    EXPECT_EQ((*store_->get_job("beat1"))->progress_json, "{\"step\":3}");
    ASSERT_TRUE(store_->want_preview("beat1"));
    // A skip is handed out once; an interrupt stays until the job ends.
    ASSERT_TRUE(store_->set_control_running("", true, kControlSkip));
    b = store_->heartbeat("beat1", (*c)->token, 60'000, "", "");
    EXPECT_EQ((*b)->control, kControlSkip);
    EXPECT_GE((*b)->preview_wanted_age_ms, 0);
    b = store_->heartbeat("beat1", (*c)->token, 60'000, "", "");
    EXPECT_EQ((*b)->control, kControlNone);
    // Cancel: a running job is asked to stop; a queued one ends at once.
    auto running = store_->cancel("beat1");
    ASSERT_TRUE(running);
    EXPECT_FALSE(*running);
    b = store_->heartbeat("beat1", (*c)->token, 60'000, "", "");
    EXPECT_EQ((*b)->control, kControlCancel);
    JobRecord q = job("beat2", "beat");
    ASSERT_TRUE(store_->submit_job(q, 1000));
    auto queued = store_->cancel("beat2");
    ASSERT_TRUE(queued);
    EXPECT_TRUE(*queued);
    EXPECT_EQ((*store_->get_job("beat2"))->status, "cancelled");
    // Images come back byte for byte, in order.
    ASSERT_TRUE(*store_->finish_claimed("beat1", (*c)->token, "done", "", "{\"images\":[{},{}]}", {png, "second"}));
    EXPECT_EQ(**store_->image("beat1", 0), png);
    EXPECT_EQ(**store_->image("beat1", 1), "second");
    EXPECT_FALSE(*store_->image("beat1", 2));
}

TEST_F(PgStoreTest, QuotaChargesFromManyConnectionsAreExact) {
    constexpr int kThreads = 12, kTries = 40, kQuota = 200;
    std::atomic<int> charged{0}, refused{0}, errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < kTries; ++i) {
                auto r = store_->charge_images("kq", "2026-12-06", 1, kQuota);
                if (!r) ++errors;
                else if (*r) ++refused;
                else ++charged;
            }
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(charged.load(), kQuota);
    EXPECT_EQ(refused.load(), kThreads * kTries - kQuota);
    EXPECT_EQ(*store_->images_on_day("kq", "2026-12-06"), kQuota);
    // A request larger than what is left is refused whole, and reports the count so far.
    auto big = store_->charge_images("kq2", "2026-12-06", 5, 4);
    ASSERT_TRUE(big && *big);
    EXPECT_EQ(**big, 0);
}

TEST_F(PgStoreTest, RateLimitFromManyConnectionsIsExact) {
    std::atomic<int> allowed{0}, denied{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < 5; ++i) {
                int retry = 0;
                auto r = store_->allow_request("kr", 12, 0, &retry);
                if (r && *r) ++allowed;
                if (r && !*r) {
                    ++denied;
                    EXPECT_GE(retry, 1);
                    EXPECT_LE(retry, 60);
                }
            }
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(allowed.load(), 12);
    EXPECT_EQ(denied.load(), 28);
}

TEST_F(PgStoreTest, TheQueueBoundHoldsUnderConcurrentSubmissions) {
    std::atomic<int> accepted{0}, full{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                JobRecord j = job("bound" + std::to_string(t) + "_" + std::to_string(i), "bound");
                auto r = store_->submit_job(j, 25 + 0);
                if (r) ++accepted;
                else if (r.error().code() == easel::ErrorCode::ResourceExhausted) ++full;
            }
        });
    for (auto& t : ts) t.join();
    // Other tests' queued jobs count too: the bound is over the whole store.
    auto lines = store_->queue_by_model();
    ASSERT_TRUE(lines);
    int64_t queued = 0;
    for (const auto& [m, qr] : *lines) queued += qr.first;
    EXPECT_EQ(queued, 25);
    EXPECT_EQ(accepted.load() + full.load(), 80);
    EXPECT_GT(full.load(), 0);
    // Drain them, so the bound does not constrain later tests.
    while (auto c = store_->claim_job("drain", {"bound"}, 60'000)) {
        if (!*c) break;
        ASSERT_TRUE(store_->finish_claimed((*c)->job.id, (*c)->token, "done", "", "{}", {}));
    }
}

TEST_F(PgStoreTest, KeysAndPruning) {
    KeyRecord k;
    k.id = "k1";
    k.name = "alice";
    k.hash = "h1";
    k.quota_per_day = 3;
    ASSERT_TRUE(store_->insert_key(k));
    k.id = "k2";
    k.hash = "h2";
    auto dup = store_->insert_key(k);
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().to_string().find("exists already"), std::string::npos) << dup.error().to_string();
    EXPECT_EQ((*store_->find_key_by_hash("h1"))->name, "alice");
    EXPECT_EQ(*store_->active_key_count(), 1);
    ASSERT_TRUE(store_->revoke_key("alice"));
    EXPECT_TRUE((*store_->find_key_by_hash("h1"))->revoked);
    EXPECT_FALSE(store_->revoke_key("nobody"));
    // Pruning keeps the newest finished jobs and takes the images along.
    auto pruned = store_->prune_finished(3);
    ASSERT_TRUE(pruned) << pruned.error().to_string();
    auto left = store_->list_jobs("", true, 10000);
    int finished = 0;
    for (const JobRecord& r : *left) finished += r.status == "done" || r.status == "failed" || r.status == "cancelled";
    EXPECT_EQ(finished, 3);
}

// The history as GET /v1/jobs narrows it (prompt text, case-insensitive; the model), and DELETE ?purge=1: only a
// finished job of the caller's key goes, with its images.
TEST_F(PgStoreTest, HistoryFilterAndDeleteFinished) {
    int n = 0;
    for (auto [prompt, model, key] : {std::tuple{"a Red circle", "hist_a", "kh"}, std::tuple{"a blue square", "hist_a", "kh"},
                                      std::tuple{"a red square", "hist_b", "other"}}) {
        JobRecord j = job("hist" + std::to_string(n++), model, key);
        j.request_json = nlohmann::json{{"prompt", prompt}}.dump();
        ASSERT_TRUE(store_->submit_job(j, 1000));
    }
    auto red = store_->list_jobs("kh", false, 100, {.prompt = "RED", .model = ""});
    ASSERT_TRUE(red) << red.error().to_string();
    ASSERT_EQ(red->size(), 1u);
    EXPECT_EQ((*red)[0].id, "hist0");
    auto all_red = store_->list_jobs("", true, 100, {.prompt = "red", .model = ""});
    ASSERT_TRUE(all_red);
    EXPECT_EQ(all_red->size(), 2u);
    EXPECT_EQ(store_->list_jobs("", true, 100, {.prompt = "", .model = "hist_b"})->size(), 1u);
    EXPECT_EQ(store_->list_jobs("", true, 100, {.prompt = "%", .model = ""})->size(), 0u);
    // Queued: not deleted. Finished: deleted with its images, once; another key's: not found.
    EXPECT_FALSE(*store_->delete_finished("hist0", "kh", false));
    auto c = store_->claim_job("w", {"hist_a"}, 60000);
    ASSERT_TRUE(c && *c);
    const std::string claimed = (*c)->job.id;
    ASSERT_TRUE(*store_->finish_claimed(claimed, (*c)->token, "done", "", "{}", {"png"}));
    EXPECT_EQ(*store_->image_count(claimed), 1);
    EXPECT_FALSE(*store_->delete_finished(claimed, "other", false));
    auto gone = store_->delete_finished(claimed, "kh", false);
    ASSERT_TRUE(gone && *gone) << (gone ? "not deleted" : gone.error().to_string());
    EXPECT_EQ((*gone)->id, claimed);
    EXPECT_FALSE(*store_->get_job(claimed));
    EXPECT_EQ(*store_->image_count(claimed), 0);
    EXPECT_FALSE(*store_->delete_finished(claimed, "kh", false));
}

}  // namespace
