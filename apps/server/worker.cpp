#include "worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/allocator.h"
#include "core/cpu_features.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/model_file.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/embeddings.h"
#include "pipeline/lora.h"
#include "pipeline/preview.h"
#include "pipeline/tasks.h"
#include "request.h"
#include "store.h"

namespace easel::server {

namespace fs = std::filesystem;

namespace {

constexpr int kChildFd = 3;

// send() with MSG_NOSIGNAL: a peer that died gives EPIPE, never a SIGPIPE that would end this process.
Status write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return Error::io(fmt::format("worker socket: {}", std::strerror(errno)));
        p += w;
        n -= size_t(w);
    }
    return ok();
}

Status write_message(int fd, const json& j) {
    const std::string body = safe_dump(j);
    if (body.size() > kMaxWorkerMessageBytes) return Error::internal("worker message over the size bound");
    const uint32_t n = uint32_t(body.size());
    const char len[4] = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char((n >> 24) & 0xff)};
    EASEL_TRY(write_all(fd, len, 4));
    return write_all(fd, body.data(), body.size());
}

// Takes one whole message off the front of `buf`: true and `out` set; false when more bytes are needed. An error
// for a message over the bound or not JSON.
Result<bool> take_message(std::string& buf, json& out) {
    if (buf.size() < 4) return false;
    const auto* b = reinterpret_cast<const unsigned char*>(buf.data());
    const uint32_t n = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    if (n > kMaxWorkerMessageBytes) return Error::io(fmt::format("a message of {} bytes (over the bound)", n));
    if (buf.size() < 4 + size_t(n)) return false;
    out = json::parse(buf.begin() + 4, buf.begin() + 4 + n, nullptr, false);
    buf.erase(0, 4 + size_t(n));
    if (out.is_discarded() || !out.is_object()) return Error::io("a message that is not a JSON object");
    return true;
}

// Blocks until one whole message is in `buf` (reading `fd` as needed): true and `out` set; false when the peer
// closed the socket; an error for a message over the bound or not JSON.
Result<bool> read_message(int fd, std::string& buf, json& out) {
    for (;;) {
        EASEL_TRY_ASSIGN(bool got, take_message(buf, out));
        if (got) return true;
        char chunk[1 << 16];
        const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf.append(chunk, size_t(n));
    }
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* name = strsignal(sig);
        std::string s = fmt::format("killed by signal {} ({})", sig, name ? name : "?");
        if (sig == SIGKILL) s += ": out of memory (the kernel's OOM killer) or killed from outside";
        return s;
    }
    return fmt::format("ended with wait status {}", status);
}

}  // namespace

json worker_init_json(const std::string& model_path, const LoadOptions& load, const Limits& limits) {
    json l = {{"precision", int(load.precision)},
              {"precision_auto", load.precision_auto},
              {"weights", int(load.weights)},
              {"vocab_path", load.vocab_path},
              {"prediction", load.prediction ? int(*load.prediction) : -1},
              {"variant", load.variant},
              {"weight_cache_dir", load.weight_cache_dir},
              {"weight_cache_max_bytes", load.weight_cache_max_bytes},
              {"weight_cache_min_bytes", load.weight_cache_min_bytes},
              {"weight_cache_write_in_background", load.weight_cache_write_in_background},
              {"license", load.license},
              {"model_hash", load.model_hash},
              {"hash_cache_file", load.hash_cache_file}};
    json lim = {{"max_width", limits.max_width}, {"max_height", limits.max_height}, {"max_steps", limits.max_steps},
                {"max_images", limits.max_images}, {"max_body_bytes", limits.max_body_bytes},
                {"queue_size", limits.queue_size}, {"keep_jobs", limits.keep_jobs},
                {"read_timeout_s", limits.read_timeout_s}, {"job_timeout_s", limits.job_timeout_s},
                {"watermark", limits.watermark}, {"sign_key", limits.sign_key}, {"sign_cert", limits.sign_cert},
                {"taesd", limits.taesd}, {"preview_every", limits.preview_every}};
    return {{"type", "init"}, {"model", model_path}, {"load", l}, {"limits", lim},
            {"threads", num_threads()}, {"isa", int(isa_cap())}};
}

// ---------------------------------------------------------------------------------------------------------------
// The parent's side.

Result<std::unique_ptr<WorkerProcess>> WorkerProcess::spawn(const std::string& exe, const json& init) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return Error::io(fmt::format("socketpair: {}", std::strerror(errno)));
    const pid_t parent = ::getpid();
    // Everything the child needs is made before fork: between fork and exec only async-signal-safe calls.
    std::string arg0 = exe, arg1 = "__worker";
    char* argv[] = {arg0.data(), arg1.data(), nullptr};
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(sv[0]);
        ::close(sv[1]);
        return Error::io(fmt::format("fork: {}", std::strerror(errno)));
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a server killed with -9 takes its workers along
        if (::getppid() != parent) ::_exit(127);
        if (::dup2(sv[1], kChildFd) < 0) ::_exit(127);
        ::close_range(kChildFd + 1, ~0u, 0);  // the server's listening socket and connections stay in the server
        ::execv(exe.c_str(), argv);
        ::_exit(127);
    }
    ::close(sv[1]);
    std::unique_ptr<WorkerProcess> w(new WorkerProcess());
    w->pid_ = pid;
    w->fd_ = sv[0];
    if (auto st = w->send(init); !st) {
        json ignored;
        w->receive(ignored, 1000);
        return Error::io(fmt::format("the worker process ({}) did not start: {}", exe, w->exit_cause()));
    }
    return w;
}

WorkerProcess::~WorkerProcess() {
    kill_now();
    if (fd_ >= 0) ::close(fd_);
}

void WorkerProcess::kill_now() {
    if (reaped_ || pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap();
}

void WorkerProcess::reap() {
    if (reaped_) return;
    int status = 0;
    // The socket closed: the child is exiting. Give it a moment, then make sure.
    for (int i = 0; i < 200; ++i) {
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno != EINTR)) {
            reaped_ = true;
            if (r == pid_ && cause_.empty()) cause_ = describe_status(status);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
    reaped_ = true;
    if (cause_.empty()) cause_ = "closed its socket but did not exit; killed";
}

Status WorkerProcess::send(const json& message) { return write_message(fd_, message); }

WorkerProcess::Got WorkerProcess::receive(json& out, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto got = take_message(buf_, out);
        if (!got) {
            cause_ = "sent " + got.error().message();
            kill_now();
            return Got::Exited;
        }
        if (*got) return Got::Message;
        if (reaped_) return Got::Exited;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Got::Timeout;
        pollfd p{fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, int(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return Got::Timeout;
        char chunk[1 << 16];
        const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            reap();
            return Got::Exited;
        }
        buf_.append(chunk, size_t(n));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The child's side.

namespace {

// A1111's "Approx cheap" live preview (pipeline/preview.h): a fixed linear map from SD's 4 latent channels to RGB.
std::string cheap_preview_png(const Tensor& x) {
    const Image img = latent_preview_approx(x);
    if (img.pixels.empty()) return "";
    auto png = encode_image(img, ImageFormat::Png);
    return png ? std::string(png->begin(), png->end()) : std::string();
}

// With a tiny autoencoder for the model's family, its picture; else small latents (the embedded model's 8x8) get
// a real VAE decode and big ones the cheap linear preview.
std::string preview_png(const Model& model, const TinyAutoencoder* taesd, const Tensor& latent) {
    if (taesd && latent.size(1) == taesd->config().latent_channels) {
        BufferPool pool;
        Ctx c{&pool};
        auto png = encode_image(preview_image(c, taesd, latent), ImageFormat::Png);
        return png ? std::string(png->begin(), png->end()) : std::string();
    }
    if (latent.size(2) * latent.size(3) > 32 * 32) return cheap_preview_png(latent);
    BufferPool pool;
    Ctx c{&pool};
    const Tensor z = to_autoencoder_units(model.latent, latent.contiguous());
    auto png = encode_image(batch_picture(model.autoencoder().decode(c, z, 0)), ImageFormat::Png);
    return png ? std::string(png->begin(), png->end()) : std::string();
}

enum WorkerStop : int { kRun = 0, kSkipImage = 1, kInterruptJob = 2, kCancelJob = 3 };

// What the reader thread hands the main thread.
struct Inbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<json> jobs;
    std::string current;                 // the job running now ("" between jobs)
    std::atomic<int> stop{kRun};
    // A stop for a job still waiting in `jobs` (the server sends it right behind the job when a DELETE came first):
    // applied when that job starts. Dropped, the job ran to the end and was reported done after its cancellation.
    std::map<std::string, int> early_stop;
    std::atomic<int64_t> preview_wanted_ms{0};
};

Result<LoadOptions> load_options_from(const json& j) {
    LoadOptions o;
    try {
        o.precision = Precision(j.at("precision").get<int>());
        o.precision_auto = j.value("precision_auto", false);
        o.weights = WeightLayout(std::clamp(j.value("weights", 0), 0, 2));
        o.vocab_path = j.at("vocab_path").get<std::string>();
        const int pred = j.at("prediction").get<int>();
        if (pred >= 0) o.prediction = Prediction(pred);
        o.variant = j.at("variant").get<std::string>();
        o.weight_cache_dir = j.at("weight_cache_dir").get<std::string>();
        o.weight_cache_max_bytes = j.at("weight_cache_max_bytes").get<uint64_t>();
        o.weight_cache_min_bytes = j.at("weight_cache_min_bytes").get<uint64_t>();
        o.weight_cache_write_in_background = j.at("weight_cache_write_in_background").get<bool>();
        o.license = j.at("license").get<std::string>();
        o.model_hash = j.at("model_hash").get<bool>();
        o.hash_cache_file = j.at("hash_cache_file").get<std::string>();
    } catch (const std::exception& e) {
        return Error::invalid_argument(fmt::format("worker init: {}", e.what()));
    }
    o.with_vae_encoder = true;  // img2img and inpainting jobs need it
    return o;
}

Result<Limits> limits_from(const json& j) {
    Limits l;
    try {
        l.max_width = j.at("max_width").get<int>();
        l.max_height = j.at("max_height").get<int>();
        l.max_steps = j.at("max_steps").get<int>();
        l.max_images = j.at("max_images").get<int>();
        l.max_body_bytes = j.at("max_body_bytes").get<size_t>();
        l.queue_size = j.at("queue_size").get<int>();
        l.keep_jobs = j.at("keep_jobs").get<int>();
        l.read_timeout_s = j.at("read_timeout_s").get<int>();
        l.job_timeout_s = j.at("job_timeout_s").get<int>();
        l.watermark = j.at("watermark").get<bool>();
        l.sign_key = j.value("sign_key", "");
        l.sign_cert = j.value("sign_cert", "");
        if (j.contains("taesd")) l.taesd = j.at("taesd").get<std::map<std::string, std::string>>();
        l.preview_every = std::clamp(j.value("preview_every", 5), 1, 1000);
    } catch (const std::exception& e) {
        return Error::invalid_argument(fmt::format("worker init: {}", e.what()));
    }
    return l;
}

// Test-only fault injection (tests/server): a prompt containing $EASEL_TEST_WORKER_CRASH crashes this worker, one
// containing $EASEL_TEST_WORKER_HANG makes it hang. Never set in production; the server survives both anyway.
void test_faults(const std::string& prompt) {
    if (const char* c = std::getenv("EASEL_TEST_WORKER_CRASH"); c && *c && prompt.find(c) != std::string::npos)
        ::raise(SIGSEGV);
    if (const char* h = std::getenv("EASEL_TEST_WORKER_HANG"); h && *h && prompt.find(h) != std::string::npos)
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));
}

// One job: parse (the parent validated it already; the same parser gives the same params), generate with
// progress and stop forwarded, write the images, answer done or failed.
// The refiner a job names (A1111's refiner_checkpoint), loaded on first use and kept for the next job.
struct RefinerCache {
    LoadOptions load;
    std::string path;
    std::unique_ptr<Model> model;

    Result<const Model*> get(const std::string& p) {
        if (model && path == p) return model.get();
        model.reset();  // one refiner at a time: the memory of two is the base's and one refiner's
        EASEL_TRY_ASSIGN(model, load_model(p, load));
        path = p;
        return model.get();
    }
};

// The LoRA set merged into the served model in place, kept after its job: the next job with the same set uses it
// as it is, and any other job (or a moment of idleness) takes it off first, so that every job without LoRAs runs
// the base model bit for bit.
struct AppliedLoras {
    std::unique_ptr<LivePatch> patch;
    std::string key;  // LoraSets::key of the set merged
    void take_off(const char* why) {
        if (!patch) return;
        const auto t0 = std::chrono::steady_clock::now();
        patch.reset();
        key.clear();
        log_info("worker", "LoRAs taken off ({}) in {:.2f} s", why,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
};

// A job's LoRAs: read once per set (the files' contents are keyed by path, multipliers and modification time) and
// applied to the loaded model in place (LivePatch: the touched weights are merged and packed again into the model's
// own bytes; AppliedLoras writes them back before a job that needs the base, so it gets the base model bit for
// bit). Where a weight cannot be rebuilt in place (a GGUF model's dequantized weights), the model is loaded again
// with the LoRAs merged, beside the base, and kept for the next job with the same set.
struct LoraSets {
    LoadOptions load;
    std::string model_path;
    std::string key;  // the set `adapters` holds: each "path te unet mtime", in order
    std::vector<std::shared_ptr<const WeightAdapter>> adapters;
    std::string hashes;  // A1111's "Lora hashes" value for it
    std::unique_ptr<Model> merged;  // the fallback: the model loaded with the set merged

    // The set a job's "loras" names: each "path te unet mtime", in order ("" for none).
    static std::string key_of(const json& loras) {
        std::string k;
        if (!loras.is_array()) return k;
        for (const json& l : loras) {
            if (!l.is_object()) return "?";  // never equal to a set read (prepare() refuses it)
            std::error_code ec;
            const auto mtime = fs::last_write_time(l.value("path", ""), ec).time_since_epoch().count();
            k += fmt::format("{} {} {} {}\n", l.value("path", ""), l.value("te", 1.0), l.value("unet", 1.0), mtime);
        }
        return k;
    }

    // `info`: the served model's (what each LoRA key is matched against).
    Status prepare(const json& loras, const ModelInfo& info) {
        const std::string k = key_of(loras);
        if (k == key) return ok();
        key.clear();
        adapters.clear();
        merged.reset();
        std::vector<std::string> entries;
        for (const json& l : loras) {
            // The server hashed the file when it took the job (JobQueue::resolve_loras): its short hash is what the
            // infotext needs, so the worker reads the tensors without hashing 100 MB again.
            const std::string path = l.value("path", ""), hash = l.value("hash", "");
            std::shared_ptr<const LoraFile> file;
            if (hash.size() == 12) {
                EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
                EASEL_TRY_ASSIGN(file, read_lora(w, info, path, hash));
            } else {
                EASEL_TRY_ASSIGN(file, read_lora(path, info));
            }
            adapters.push_back(lora_adapter(file, l.value("unet", 1.0), l.value("te", 1.0)));
            std::string alias = l.value("name", file->name);
            std::erase_if(alias, [](char c) { return c == ':' || c == ','; });
            const std::string entry = fmt::format("{}: {}", alias, file->short_hash());
            if (std::find(entries.begin(), entries.end(), entry) == entries.end()) entries.push_back(entry);
        }
        hashes.clear();
        for (const std::string& e : entries) hashes += (hashes.empty() ? "" : ", ") + e;
        key = k;
        return ok();
    }

    Result<const Model*> merged_model() {
        if (!merged) {
            LoadOptions o = load;
            o.keep_param_registry = false;
            o.adapters = adapters;
            EASEL_TRY_ASSIGN(merged, load_model(model_path, o));
        }
        return merged.get();
    }
};

// ControlNets read for jobs, kept for the next (the last few by path and modification time).
struct ControlNetCache {
    std::vector<std::pair<std::string, std::shared_ptr<const ControlNetFile>>> items;  // most recent last

    Result<std::shared_ptr<const ControlNetFile>> get(const std::string& path, const ModelInfo& base, Precision precision) {
        std::error_code ec;
        const std::string key = fmt::format("{}\n{}", path, fs::last_write_time(path, ec).time_since_epoch().count());
        for (size_t i = 0; i < items.size(); ++i)
            if (items[i].first == key) {
                auto hit = items[i];
                items.erase(items.begin() + ptrdiff_t(i));
                items.push_back(hit);
                return hit.second;
            }
        const int64_t t0 = now_ms();
        EASEL_TRY_ASSIGN(auto net, load_controlnet(path, base, precision));
        log_info("worker", "ControlNet {} loaded in {:.2f} s", path, double(now_ms() - t0) / 1000.0);
        if (items.size() >= 4) items.erase(items.begin());
        items.emplace_back(key, net);
        return net;
    }
};

// IP-Adapters and image encoders read for jobs, kept for the next (the last few adapters, the last two
// encoders: a ViT-H is 2.5 GB in f32), by path and modification time.
struct IPAdapterCache {
    template <class T>
    using Items = std::vector<std::pair<std::string, std::shared_ptr<const T>>>;  // most recent last
    Items<IPAdapterFile> adapters;
    Items<ImageEncoderFile> encoders;

    template <class T, class Load>
    static Result<std::shared_ptr<const T>> get(Items<T>& items, size_t keep, const std::string& path, const char* what,
                                                Load load) {
        std::error_code ec;
        const std::string key = fmt::format("{}\n{}", path, fs::last_write_time(path, ec).time_since_epoch().count());
        for (size_t i = 0; i < items.size(); ++i)
            if (items[i].first == key) {
                auto hit = items[i];
                items.erase(items.begin() + ptrdiff_t(i));
                items.push_back(hit);
                return hit.second;
            }
        if (items.size() >= keep) items.erase(items.begin());  // before loading: never two encoders and a third
        const int64_t t0 = now_ms();
        EASEL_TRY_ASSIGN(std::shared_ptr<const T> v, load());
        log_info("worker", "{} {} loaded in {:.2f} s", what, path, double(now_ms() - t0) / 1000.0);
        items.emplace_back(key, v);
        return v;
    }
    Result<std::shared_ptr<const IPAdapterFile>> adapter(const std::string& path, const ModelInfo& base, Precision pr) {
        return get(adapters, 4, path, "IP-Adapter", [&] { return load_ip_adapter(path, base, pr); });
    }
    Result<std::shared_ptr<const ImageEncoderFile>> encoder(const std::string& path, Precision pr) {
        return get(encoders, 2, path, "image encoder", [&] { return load_image_encoder(path, pr); });
    }
};

// The embeddings folder, scanned again only when its files (names, sizes, modification times) change.
struct EmbeddingCache {
    std::string signature;
    std::shared_ptr<const TextualInversions> set;

    std::shared_ptr<const TextualInversions> get(const std::string& dir) {
        std::string sig = dir + "\n";
        std::error_code ec;
        if (fs::is_directory(dir, ec))
            for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
                 !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
                if (it->is_regular_file(ec))
                    sig += fmt::format("{} {} {}\n", it->path().string(), it->file_size(ec),
                                       it->last_write_time(ec).time_since_epoch().count());
        if (sig != signature) {
            EmbeddingScan scan = load_embeddings_dir(dir);
            for (const std::string& why : scan.skipped) log_warn("worker", "embeddings: skipped {}", why);
            set = scan.set->items.empty() ? nullptr : scan.set;
            signature = sig;
        }
        return set;
    }
};

json run_one(Model& base, RefinerCache& refiners, LoraSets& lora_sets, AppliedLoras& applied, EmbeddingCache& embeddings,
             ControlNetCache& controlnets, IPAdapterCache& ip_adapters, const Limits& limits, const C2paSigner* signer,
             const TinyAutoencoder* taesd, const json& msg, Inbox& inbox, int fd) {
    const int preview_every = limits.preview_every;
    const std::string id = msg.value("id", "");
    const std::string kind = msg.value("kind", "txt2img");
    const std::string dir = msg.value("dir", "");
    auto failed = [&](const Error& e) {
        return json{{"type", "failed"}, {"id", id}, {"cancelled", e.code() == ErrorCode::Cancelled},
                    {"error", e.to_string()}};
    };
    if (!msg.contains("request") || !msg["request"].is_object()) return failed(Error::internal("job without a request"));
    auto req = parse_generation_request(msg["request"], kind == "img2img" ? RequestKind::Img2Img : RequestKind::Txt2Img,
                                        a1111_defaults(), limits);
    if (!req) return failed(req.error());
    req->params.watermark = limits.watermark;
    test_faults(req->params.prompt);
    if (const std::string rp = msg.value("refiner", ""); !rp.empty()) {
        auto r = refiners.get(rp);
        if (!r) return failed(r.error().within("refiner_checkpoint"));
        req->params.refiner = *r;
    }
    // ControlNet units: the request's settings and images, the files the server resolved (in the same order).
    const json cn_paths = msg.value("controlnets", json::array());
    if (!cn_paths.is_array() || cn_paths.size() != req->controlnets.size())
        return failed(Error::internal("the ControlNet units and their resolved files differ in number"));
    for (size_t i = 0; i < req->controlnets.size(); ++i) {
        const ControlRequest& cr = req->controlnets[i];
        if (cr.ip_adapter) {
            const Precision pr = lora_sets.load.precision;
            auto adapter = ip_adapters.adapter(cn_paths[i].value("path", ""), base.info, pr);
            if (!adapter) return failed(adapter.error().within(fmt::format("alwayson_scripts.controlnet.args[{}]", i)));
            auto encoder = ip_adapters.encoder(cn_paths[i].value("encoder", ""), pr);
            if (!encoder) return failed(encoder.error().within(fmt::format("alwayson_scripts.controlnet.args[{}]", i)));
            req->params.ip_adapters.push_back({.adapter = *adapter, .encoder = *encoder, .images = {cr.image}, .scale = cr.weight,
                                               .start = cr.start, .end = cr.end});
            continue;
        }
        auto net = controlnets.get(cn_paths[i].value("path", ""), base.info, lora_sets.load.precision);
        if (!net) return failed(net.error().within(fmt::format("alwayson_scripts.controlnet.args[{}]", i)));
        req->params.control.push_back({.net = *net, .image = cr.image, .scale = cr.weight, .start = cr.start,
                                       .end = cr.end, .mode = cr.mode, .resize = cr.resize,
                                       .preprocessor = cr.preprocessor, .mask = cr.mask});
    }
    const Model* chosen = &base;
    if (msg.contains("loras") && msg["loras"].is_array() && !msg["loras"].empty()) {
        const int64_t t0 = now_ms();
        if (Status st = lora_sets.prepare(msg["loras"], base.info); !st) {
            applied.take_off("this job's LoRAs could not be read");
            return failed(st.error().within("prompt"));
        }
        if (applied.patch && applied.key == lora_sets.key) {
            log_info("worker", "job {}: LoRAs {} kept from the job before", id, lora_sets.hashes);
        } else {
            applied.take_off("another LoRA set");
            (void)base.wait_for_weight_cache();  // the cache writer must not see patched bytes
            const int64_t t1 = now_ms();
            auto p = LivePatch::apply(base, lora_sets.adapters);
            if (p) {
                applied.patch = std::move(p).value();
                applied.key = lora_sets.key;
                log_info("worker", "job {}: LoRAs {} set up in {:.2f} s, merged into {} weights in {:.2f} s", id,
                         lora_sets.hashes, double(t1 - t0) / 1000.0, applied.patch->params(),
                         double(now_ms() - t1) / 1000.0);
            } else if (p.error().code() != ErrorCode::Unsupported) {
                return failed(p.error().within("prompt"));
            }
        }
        if (!applied.patch) {  // weights that cannot be rebuilt in place (GGUF): the model loaded with the set
            const int64_t t1 = now_ms();
            auto m = lora_sets.merged_model();
            if (!m) return failed(m.error().within("prompt"));
            chosen = *m;
            log_info("worker", "job {}: LoRAs {} through the model loaded with them merged (its weights cannot be "
                     "patched in place; {:.2f} s)", id, lora_sets.hashes, double(now_ms() - t1) / 1000.0);
        }
        req->params.infotext_extra.emplace_back("Lora hashes", lora_sets.hashes);
    } else {
        applied.take_off("a job without LoRAs");
    }
    const Model& model = *chosen;
    if (const std::string ed = msg.value("embeddings_dir", ""); !ed.empty()) req->params.embeddings = embeddings.get(ed);
    int64_t last_preview_ms = 0;
    auto progress = [&](const ProgressEvent& e) -> Status {
        if (inbox.stop == kCancelJob) return Error::cancelled("cancelled");
        // The preview goes first, so that a client that sees the step also finds its preview. A1111's cheap linear
        // preview (a PNG of the latent's size: far below a step's cost) at most every 250 ms; while a client asks
        // for previews, the real one.
        if (e.latent) {
            const int64_t now = now_ms();
            std::string png;
            const bool wanted = now - inbox.preview_wanted_ms.load() < 3000;
            if (wanted && taesd) {
                // The tiny autoencoder's picture every preview_every steps and at the last (its cost stays a few
                // per cent of the sampling); nothing between, so the page does not flicker between two kinds.
                if (e.step % preview_every == 0 || e.step == e.total) png = preview_png(model, taesd, *e.latent);
            } else if (wanted) {
                png = preview_png(model, nullptr, *e.latent);
            } else if (now - last_preview_ms >= 250) {
                png = cheap_preview_png(*e.latent);
            }
            if (!png.empty()) {
                last_preview_ms = now;
                EASEL_TRY(write_message(fd, {{"type", "preview"}, {"id", id}, {"png", base64_encode(png)}}));
            }
        }
        json p = {{"type", "progress"}, {"id", id}, {"phase", e.phase}, {"image", e.image}, {"images", e.images}};
        if (e.phase == "sampling") {
            p["step"] = e.step;
            p["total"] = e.total;
            p["batch"] = e.batch;  // images sampled together from `image` on
        }
        return write_message(fd, p);
    };
    auto stop = [&]() -> StopRequest {
        int f = inbox.stop.load();
        if (f == kSkipImage) {
            inbox.stop.compare_exchange_strong(f, kRun);
            return StopRequest::Skip;
        }
        return f == kInterruptJob ? StopRequest::Interrupt : StopRequest::None;
    };
    auto images = generate(model, req->params, progress, stop);
    if (!images) return failed(images.error());
    std::error_code ec;
    fs::create_directories(dir, ec);
    json files = json::array();
    for (size_t i = 0; i < images->size(); ++i) {
        const GeneratedImage& g = (*images)[i];
        const std::string path = (fs::path(dir) / fmt::format("{}.png", i)).string();
        if (auto st = write_provenance_image(path, g.image, g.metadata, g.provenance, g.infotext, signer); !st)
            return failed(Error::io("could not save the image: " + st.error().to_string()));
        files.push_back({{"file", path}, {"seed", g.seed}, {"infotext", g.infotext}});
    }
    return {{"type", "done"}, {"id", id}, {"images", files}, {"interrupted", inbox.stop == kInterruptJob},
            {"model_hash", base.short_hash}};  // A1111's info.sd_model_hash
}

}  // namespace

int run_worker_main() {
    const int fd = kChildFd;
    // The init message, read synchronously before anything else.
    std::string buf;
    json init;
    auto got_init = read_message(fd, buf, init);
    if (!got_init) return 2;
    if (!*got_init) return 0;
    if (init.value("type", "") != "init" || !init.contains("load") || !init.contains("limits")) return 2;
    auto lo = load_options_from(init["load"]);
    auto limits = limits_from(init["limits"]);
    if (!lo || !limits) {
        (void)write_message(fd, {{"type", "load_failed"}, {"error", (!lo ? lo.error() : limits.error()).to_string()}});
        return 2;
    }
    std::optional<C2paSigner> signer;
    if (!limits->sign_key.empty()) {
        auto s = load_c2pa_signer(limits->sign_key, limits->sign_cert);
        if (!s) {
            (void)write_message(fd, {{"type", "load_failed"}, {"error", s.error().to_string()}});
            return 2;
        }
        signer = std::move(*s);
    }
    if (init.contains("threads") && init["threads"].is_number_integer()) set_num_threads(std::max(1, init["threads"].get<int>()));
    if (init.contains("isa") && init["isa"].is_number_integer()) set_isa_cap(Isa(std::clamp(init["isa"].get<int>(), 0, 3)));
    const std::string path = init.value("model", "");
    lo->keep_param_registry = true;  // LoRAs are applied to the loaded model per job (LivePatch)
    if (lo->precision_auto) {
        std::string why;
        lo->precision = auto_precision(path, &why);
        log_info("worker", "{}: precision {}", path, why);
    }
    auto model = load_model(path, *lo);
    if (!model) {
        (void)write_message(fd, {{"type", "load_failed"}, {"error", model.error().to_string()}});
        return 0;
    }
    // The memory a LoRA's weights are merged in, faulted in now rather than by the first job with a LoRA.
    if (Status st = LivePatch::reserve(**model); !st) log_warn("worker", "LoRAs: {}", st.error().to_string());
    if (!write_message(fd, {{"type", "ready"}, {"notes", (*model)->notes}})) return 0;
    // The family's tiny autoencoder for previews (the server checked the file before starting).
    std::shared_ptr<const TinyAutoencoder> taesd;
    if (auto it = limits->taesd.find((*model)->family); it != limits->taesd.end()) {
        auto t = load_preview_decoder(it->second);
        if (t) taesd = std::move(t).value();
        else log_warn("worker", "previews: {}", t.error().to_string());
    }
    RefinerCache refiners;
    refiners.load = *lo;
    refiners.load.with_vae_encoder = false;
    refiners.load.keep_param_registry = false;
    EmbeddingCache embeddings;
    ControlNetCache controlnets;
    IPAdapterCache ip_adapters;
    LoraSets lora_sets;
    lora_sets.load = *lo;
    lora_sets.model_path = path;
    AppliedLoras applied;

    Inbox inbox;
    // The reader: jobs go to the queue, stop and preview apply to the running job at once. The parent closing the
    // socket (a server stopping, or killed) ends this process.
    std::thread reader([&inbox, fd, buf]() mutable {
        for (;;) {
            json m;
            auto got = read_message(fd, buf, m);
            if (!got) ::_exit(2);
            if (!*got) ::_exit(0);
            const std::string type = m.value("type", "");
            std::lock_guard<std::mutex> lk(inbox.mu);
            if (type == "job") {
                inbox.jobs.push_back(std::move(m));
                inbox.cv.notify_all();
            } else if (type == "stop") {
                const std::string id = m.value("id", "");
                const int flag = std::clamp(m.value("flag", 0), 0, 3);
                if (id == inbox.current) {
                    inbox.stop = flag;
                } else if (std::any_of(inbox.jobs.begin(), inbox.jobs.end(),
                                       [&](const json& j) { return j.value("id", "") == id; })) {
                    inbox.early_stop[id] = flag;  // at most one entry per queued job
                }
            } else if (type == "preview") {
                inbox.preview_wanted_ms = now_ms();
            }
        }
    });
    reader.detach();
    for (;;) {
        json job;
        {
            std::unique_lock<std::mutex> lk(inbox.mu);
            inbox.cv.wait(lk, [&] { return !inbox.jobs.empty(); });
            job = std::move(inbox.jobs.front());
            inbox.jobs.pop_front();
            inbox.current = job.value("id", "");
            const auto early = inbox.early_stop.find(inbox.current);
            inbox.stop = early == inbox.early_stop.end() ? kRun : early->second;
            if (early != inbox.early_stop.end()) inbox.early_stop.erase(early);
        }
        json answer = run_one(**model, refiners, lora_sets, applied, embeddings, controlnets, ip_adapters, *limits,
                              signer ? &*signer : nullptr, taesd.get(), job, inbox, fd);
        {
            std::lock_guard<std::mutex> lk(inbox.mu);
            inbox.current.clear();
        }
        if (!write_message(fd, answer)) return 0;
        // The job's LoRAs stay merged only for a next job with the same set that comes within 2 s (a queue of them,
        // or a client sending its next request: measured, a sequential client's next job reached the worker more
        // than 250 ms after the answer); otherwise they come off now, while nobody waits, or before a different job.
        if (applied.patch) {
            std::string next;
            bool waiting = false;
            {
                std::unique_lock<std::mutex> lk(inbox.mu);
                waiting = inbox.cv.wait_for(lk, std::chrono::milliseconds(2000), [&] { return !inbox.jobs.empty(); });
                if (waiting) next = LoraSets::key_of(inbox.jobs.front().value("loras", json::array()));
            }
            if (!waiting || next != applied.key) applied.take_off(waiting ? "the next job's LoRAs differ" : "idle");
        }
    }
}

}  // namespace easel::server
