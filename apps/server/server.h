// easel serve: an AUTOMATIC1111-compatible HTTP API (/sdapi/v1), an async job API of our own (/v1/jobs) with
// API keys, quotas and a durable SQLite queue, and a web page at /. The CLI parses flags into ServeOptions and
// calls run_server; nothing here includes the CLI.
//
//   ServeOptions o;  o.data_dir = "/var/lib/easel";  o.models = {"v1-5-pruned-emaonly.safetensors"};
//   EASEL_TRY(run_server(o));   // returns when stopped (SIGINT/SIGTERM) or when it cannot start
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/c2pa.h"
#include "pipeline/model.h"

namespace easel::server {

// What one request may ask for. Beyond these a request gets 400 naming the field and the limit.
struct Limits {
    int max_width = 2048;
    int max_height = 2048;
    int max_steps = 150;
    int max_images = 16;                    // batch_size * n_iter per request
    size_t max_body_bytes = 32u << 20;      // request bodies (init images travel base64 inside them)
    int queue_size = 32;                    // queued jobs over all models; beyond it 429 with Retry-After
    int keep_jobs = 1000;                   // finished jobs (and their images) kept; older ones are deleted
    int read_timeout_s = 30;                // a client that sends nothing for this long is disconnected
    int job_timeout_s = 3600;               // a job running longer fails, and its worker process is restarted
    // Not a request's limit but the operator's choice, carried to the workers with the limits: the invisible
    // watermark on every image of at least 256x256 (--no-watermark turns it off; requests cannot).
    bool watermark = true;
    // The operator's C2PA signing key and certificate chain (PEM paths; --sign-key, --sign-cert): every image gets a
    // signed content credential. "": none.
    std::string sign_key;
    std::string sign_cert;
    // Tiny autoencoders for live previews by model family ("sd", "sdxl", "sd3", "flux": --taesd FAMILY=FILE):
    // while a client asks for previews, the worker decodes one every preview_every steps (and the last) with the
    // family's; without one, A1111's linear approximation every step.
    std::map<std::string, std::string> taesd;
    int preview_every = 5;
};

struct ServeOptions {
    std::string host = "127.0.0.1";
    int port = 7860;                        // 0: any free port (printed)
    std::string data_dir;                   // SQLite database and images; created if missing
    // postgresql://...: a front end of a shared store instead (jobs, images, keys, usage in PostgreSQL); the jobs
    // run in `easel worker` processes (run_cluster_worker) on any machines.
    std::string store;
    bool migrate_only = false;              // --migrate: bring the store's schema up to date, then return
    int worker_max_age_s = 30;              // a worker silent for longer is not alive (/readyz, /metrics)
    std::vector<std::string> models;        // -m: model files or folders, loaded at start; the first is the default
    std::string models_dir;                 // more models, listed and loaded when first asked for
    std::string lora_dir;                   // <lora:NAME> files; "": a Lora folder beside the first model (default_lora_dir)
    std::string controlnet_dir;             // ControlNet units' models; "": a ControlNet folder beside the first model
    // IP-Adapter units' image encoders, looked in first; then beside each adapter (pipeline/ip_adapter.h).
    std::string image_encoder_dir;
    std::string embeddings_dir;             // textual-inversion embeddings; "": default_embeddings_dir of the first model
    std::string embedded_model;             // served when no -m is given
    std::string api_auth;                   // "user:pass[,user2:pass2]": HTTP Basic, as A1111's --api-auth
    bool insecure_no_auth = false;          // allow a non-loopback host without keys or --api-auth
    std::string web_dir;                    // serve the page from here instead of the embedded copy
    // Certificates whose chains /v1/verify reports as trusted (--trust-anchor, PEM).
    std::vector<DerCertificate> trust_anchors;
    LoadOptions load;
    Limits limits;
    // The program started as `worker_exe __worker` for each model's worker process (apps/server/worker.h); empty:
    // this executable (/proc/self/exe).
    std::string worker_exe;
    // Called once the socket is bound (with the real port), before requests are served.
    std::function<void(int port)> on_listening;
};

// Runs until SIGINT/SIGTERM (or stop_server from another thread).
Status run_server(const ServeOptions& options);
void stop_server();

// The data folder's default: $EASEL_DATA_DIR, else $XDG_DATA_HOME/easel, else ~/.local/share/easel.
std::string default_data_dir();

// `easel keys`: API keys live in the data folder's database (or the PostgreSQL store when `data_dir` is a
// postgresql:// URL), hashed (SHA-256); the key itself is shown once.
struct KeyInfo {
    std::string id;
    std::string name;
    int64_t quota_per_day = 0;   // images per UTC day; 0 = unlimited
    int64_t rate_per_min = 0;    // requests per minute; 0 = unlimited
    int64_t created_ms = 0;
    bool revoked = false;
    int64_t used_today = 0;
    bool admin = false;
};
// Returns the new key's secret ("easel_" + 40 hex digits) and its record.
Result<std::pair<std::string, KeyInfo>> create_key(const std::string& data_dir, const std::string& name,
                                                   int64_t quota_per_day, int64_t rate_per_min, bool admin = false);
Result<std::vector<KeyInfo>> list_keys(const std::string& data_dir);
Status revoke_key(const std::string& data_dir, const std::string& id_or_name);
// Whether `s` is a postgresql:// (or postgres://) store URL rather than a data folder.
bool is_store_url(const std::string& s);

}  // namespace easel::server
