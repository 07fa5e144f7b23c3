// `easel worker --store postgresql://... -m MODEL...`: runs the jobs of a shared PostgreSQL store (pg_store.h) on
// this machine, next to any number of other workers and `easel serve --store` front ends.
//
// The worker is this machine's JobQueue (models in supervised worker processes, crash and timeout handling, LoRAs,
// ControlNets: everything `easel serve` does alone) fed from the store: it claims the oldest queued job of its
// models (a row lock that skips locked rows), runs it in the local queue, and renews its lease with heartbeats that
// carry the progress and previews front ends show, and bring back what they ask (cancel, interrupt, skip, a
// preview). The images and the result go into the store in one transaction, only while the claim still holds: a
// worker that was cut off and lost its lease stores nothing, and the job runs once more elsewhere.
//
//   ServeOptions o;  o.store = "postgresql://easel@db/easel";  o.models = {"v1-5-pruned-emaonly.safetensors"};
//   EASEL_TRY(run_cluster_worker(o, 30));   // until SIGINT/SIGTERM: the running job goes back to the queue
#pragma once

#include <functional>

#include "core/error.h"
#include "server.h"

namespace easel::server {

struct ClusterWorkerOptions {
    int lease_s = 30;                          // a claim lapses after this long without a heartbeat
    int poll_ms = 200;                         // how often an idle worker looks for a job
    std::function<void(const std::string& id)> on_ready;  // once the first model is loaded and the worker registered
};

Status run_cluster_worker(const ServeOptions& o, const ClusterWorkerOptions& w);
void stop_cluster_worker();  // async-signal-safe

}  // namespace easel::server
