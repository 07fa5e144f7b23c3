// Generation in worker processes. `easel serve` runs each model in a child process of its own (the same binary,
// started as `easel __worker`), so a job that crashes, runs out of memory or hangs takes down that process only:
// the HTTP side keeps answering, fails or retries the job with the cause, and starts a new worker.
//
// The two talk over a Unix socket (fd 3 in the child) in messages: a 4-byte little-endian length, then that many
// bytes of JSON. Parent -> child: init (model, load options, limits, threads, ISA cap), job, stop (skip,
// interrupt, cancel), preview (a client wants previews now). Child -> parent: ready or load_failed, then per job
// progress, preview (a PNG), and done (the image files it wrote) or failed.
//
//   EASEL_TRY_ASSIGN(auto w, WorkerProcess::spawn(exe, init));      // init: see worker_init_json
//   json m;
//   EASEL_TRY_ASSIGN(auto got, w->receive(m, 60'000));              // {"type": "ready", ...}
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipeline/model.h"
#include "server.h"

namespace easel::server {

using json = nlohmann::json;

constexpr uint32_t kMaxWorkerMessageBytes = 1u << 30;  // images travel as files; a message is far below this

// What the child needs to load its model the way the server would.
json worker_init_json(const std::string& model_path, const LoadOptions& load, const Limits& limits);

class WorkerProcess {
public:
    // Starts `exe __worker` with the socket as fd 3 (the child dies with this process: PR_SET_PDEATHSIG) and
    // sends `init`.
    static Result<std::unique_ptr<WorkerProcess>> spawn(const std::string& exe, const json& init);
    ~WorkerProcess();  // kills the child if it still runs, and reaps it
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;

    // A failed send means the child is gone (receive then reports Exited).
    Status send(const json& message);
    enum class Got { Message, Timeout, Exited };
    // Waits up to timeout_ms for the next message. Exited: the child closed the socket or died (exit_cause says
    // how); a message that is not JSON or over the size bound kills the child and reads as Exited too.
    Got receive(json& out, int timeout_ms);
    // Why the child ended, once receive returned Exited: "killed by signal 11 (Segmentation fault)", "exited with
    // status 1", or what was wrong with its messages.
    const std::string& exit_cause() const { return cause_; }
    void kill_now();
    pid_t pid() const { return pid_; }

private:
    WorkerProcess() = default;
    void reap();
    pid_t pid_ = -1;
    int fd_ = -1;
    std::string buf_;
    std::string cause_;
    bool reaped_ = false;
};

// `easel __worker`: the child's side, reading fd 3 until the parent closes it. Returns the exit status.
int run_worker_main();

}  // namespace easel::server
