#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace easel {
namespace {

thread_local bool t_in_parallel = false;

int default_threads() {
    if (const char* e = std::getenv("EASEL_NUM_THREADS")) {
        const int n = std::atoi(e);
        if (n > 0) return n;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc ? int(hc) : 1;
}

// Workers sleep on a condition variable between jobs. A job is a function of the thread index; the pool runs
// it on workers 1..n-1 while the caller runs index 0, then waits for all to finish.
class Pool {
public:
    explicit Pool(int n) { resize(n); }
    ~Pool() { stop(); }

    int size() const { return n_; }

    void resize(int n) {
        stop();
        n_ = std::max(1, n);
        quit_ = false;
        uint64_t start;
        {
            std::lock_guard<std::mutex> lk(mu_);
            start = generation_;  // a new worker must not mistake an old job's generation for a new job
        }
        for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i, start] { loop(i, start); });
    }

    void run(const std::function<void(int, int)>& fn) {
        if (n_ == 1 || t_in_parallel) {
            fn(0, 1);
            return;
        }
        std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time from different callers
        {
            std::lock_guard<std::mutex> lk(mu_);
            job_ = &fn;
            pending_ = n_ - 1;
            ++generation_;
        }
        cv_.notify_all();
        t_in_parallel = true;
        fn(0, n_);
        t_in_parallel = false;
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [&] { return pending_ == 0; });
        job_ = nullptr;
    }

private:
    void loop(int index, uint64_t seen) {
        t_in_parallel = true;
        for (;;) {
            const std::function<void(int, int)>* job;
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
                if (quit_) return;
                seen = generation_;
                job = job_;
            }
            (*job)(index, n_);
            {
                std::lock_guard<std::mutex> lk(mu_);
                if (--pending_ == 0) done_cv_.notify_one();
            }
        }
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    int n_ = 1;
    std::vector<std::thread> workers_;
    std::mutex run_mu_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    const std::function<void(int, int)>* job_ = nullptr;
    int pending_ = 0;
    uint64_t generation_ = 0;
    bool quit_ = false;
};

Pool& pool() {
    static Pool p(default_threads());
    return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
    if (n != pool().size()) pool().resize(n);
}

void parallel_run(const std::function<void(int, int)>& fn) { pool().run(fn); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    const int threads = t_in_parallel ? 1 : num_threads();
    if (threads == 1 || n <= grain) {
        fn(0, n);
        return;
    }
    // About 4 chunks per thread balances uneven work without much claiming overhead.
    const int64_t chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
    std::atomic<int64_t> next{0};
    pool().run([&](int, int) {
        for (;;) {
            const int64_t b = next.fetch_add(chunk);
            if (b >= n) break;
            fn(b, std::min(n, b + chunk));
        }
    });
}

}  // namespace easel
