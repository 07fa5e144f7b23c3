// The HTTP layer of `easel serve`: routes, authentication, limits and the one JSON error envelope.
#include "server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "auth.h"
#include "core/log.h"
#include "core/log_fields.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "pipeline/controlnet.h"
#include "pipeline/embeddings.h"
#include "pipeline/lora.h"
#include "jobs.h"
#include "openapi.h"
#include "pg_store.h"
#include "pipeline/infotext.h"
#include "pipeline/verify_image.h"
#include "request.h"
#include "store.h"

namespace easel::server {

const std::vector<std::pair<std::string_view, std::string_view>>& embedded_files();  // web_assets.cpp (generated)

namespace fs = std::filesystem;

namespace {

std::mutex g_server_mu;
httplib::Server* g_server = nullptr;
int g_signal_pipe[2] = {-1, -1};
std::atomic<bool> g_stopping{false};  // long-lived responses (SSE, A1111's blocking calls) end when set

// The request this thread is handling, for the access log (httplib routes and logs a request on one thread).
thread_local std::chrono::steady_clock::time_point t_request_start;
thread_local std::string t_request_key;  // the API key's name, once authenticated

// A client's X-Request-Id is kept when it is a plain token (at most 64 of [A-Za-z0-9._-]); else one is made.
std::string request_id_for(const httplib::Request& req) {
    const std::string given = req.get_header_value("X-Request-Id");
    bool plain = !given.empty() && given.size() <= 64;
    for (char c : given) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    return plain ? given : random_hex(8);
}

void on_stop_signal(int) {
    const char c = 1;
    (void)!write(g_signal_pipe[1], &c, 1);
}

int http_status(ErrorCode c) {
    switch (c) {
        case ErrorCode::InvalidArgument:
        case ErrorCode::BadFile:
        case ErrorCode::Unsupported: return 400;
        case ErrorCode::Refused: return 403;
        case ErrorCode::NotFound: return 404;
        case ErrorCode::Cancelled: return 409;
        case ErrorCode::ResourceExhausted: return 429;
        case ErrorCode::Io:
        case ErrorCode::Internal: return 500;
    }
    return 500;
}

// The one error envelope. "detail" repeats the message for clients written against A1111 (FastAPI).
void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
    res.status = status;
    json body = {{"error", {{"code", code}, {"message", message}}}, {"detail", message}};
    res.set_content(safe_dump(body), "application/json");
}

void send_error(httplib::Response& res, const Error& e) {
    send_error(res, http_status(e.code()), error_code_name(e.code()), e.to_string());
}

void send_json(httplib::Response& res, const json& body, int status = 200) {
    res.status = status;
    res.set_content(safe_dump(body), "application/json");
}

Result<json> parse_body(const httplib::Request& req) {
    if (req.body.empty()) return Error::invalid_argument("the request has no body; expected a JSON object", "body");
    try {
        json j = json::parse(req.body);
        if (!j.is_object()) return Error::invalid_argument("expected a JSON object", "body");
        (void)j.dump();  // throws on strings that are not UTF-8, which the parser lets through
        return j;
    } catch (const json::parse_error& e) {
        return Error::invalid_argument(fmt::format("not valid JSON (byte {}): {}", e.byte, e.what()), "body");
    } catch (const json::type_error&) {
        return Error::invalid_argument("a string in the JSON is not valid UTF-8", "body");
    }
}

std::string content_type_for(const std::string& name) {
    auto ends = [&](const char* s) { return name.size() >= strlen(s) && name.compare(name.size() - strlen(s), strlen(s), s) == 0; };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    if (ends(".ico")) return "image/x-icon";
    return "application/octet-stream";
}

bool is_loopback(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

int64_t seconds_to_utc_midnight(int64_t ms) { return 86400 - (ms / 1000) % 86400; }

class Server {
public:
    Server(const ServeOptions& o, KeyStore& store, JobQueue& queue, BasicCredentials basic)
        : opt_(o), store_(store), queue_(queue), basic_(std::move(basic)) {}

    void install(httplib::Server& svr);

private:
    struct Auth {
        bool ok = false;
        Caller caller;
        std::optional<KeyRecord> key;
    };
    // Authenticates and rate-limits an API request; on failure the response is filled and ok is false.
    Auth authenticate(const httplib::Request& req, httplib::Response& res);
    // Daily image quota of a key, charged at once (exact over every front end of a shared store); on failure the
    // response is filled. `day` is set to the UTC day charged ("" when there is no key).
    bool charge(const Auth& a, int images, httplib::Response& res, std::string* day);
    using ApiHandler = std::function<void(const httplib::Request&, httplib::Response&, const Auth&)>;
    httplib::Server::Handler api(ApiHandler h);

    void static_file(const std::string& name, httplib::Response& res);
    // kind: nullopt picks img2img when the body has init_images (our /v1/jobs).
    void submit(const httplib::Request& req, httplib::Response& res, const Auth& a, std::optional<RequestKind> kind, bool a1111);
    json models_json();
    json sd_models_json();
    json options_json();

    const ServeOptions& opt_;
    KeyStore& store_;
    JobQueue& queue_;
    BasicCredentials basic_;
};

Server::Auth Server::authenticate(const httplib::Request& req, httplib::Response& res) {
    Auth a;
    auto keys = store_.active_key_count();
    if (!keys) {
        send_error(res, keys.error());
        return a;
    }
    const bool required = *keys > 0 || !basic_.empty();
    const std::string header = req.get_header_value("Authorization");
    auto challenge = [&](const std::string& msg) {
        res.set_header("WWW-Authenticate", basic_.empty() ? "Bearer" : "Bearer, Basic realm=\"easel\"");
        send_error(res, 401, "unauthenticated", msg);
    };
    if (header.rfind("Bearer ", 0) == 0) {
        const std::string secret = header.substr(7);
        auto key = store_.find_key_by_hash(sha256_hex(secret));
        if (!key) {
            send_error(res, key.error());
            return a;
        }
        if (!*key) {
            challenge("the API key is not known to this server");
            return a;
        }
        if ((*key)->revoked) {
            challenge(fmt::format("the API key '{}' has been revoked", (*key)->name));
            return a;
        }
        int retry = 0;
        auto allowed = store_.allow_request((*key)->id, (*key)->rate_per_min, now_ms(), &retry);
        if (!allowed) {
            send_error(res, allowed.error());
            return a;
        }
        if (!*allowed) {
            res.set_header("Retry-After", std::to_string(retry));
            send_error(res, 429, "rate_limited",
                       fmt::format("the key '{}' is limited to {} requests per minute; retry in {} s", (*key)->name,
                                   (*key)->rate_per_min, retry));
            return a;
        }
        a.caller = {(*key)->id, (*key)->admin};  // an admin key sees every key's jobs
        a.key = *key;
        t_request_key = (*key)->name;
        a.ok = true;
        return a;
    }
    if (header.rfind("Basic ", 0) == 0 && !basic_.empty()) {
        if (!basic_.check(header.substr(6))) {
            challenge("wrong user name or password");
            return a;
        }
        a.caller = {"", true};
        a.ok = true;
        return a;
    }
    if (required) {
        challenge(basic_.empty() ? "this server needs an API key: send 'Authorization: Bearer <key>'"
                                 : "this server needs credentials: an API key (Bearer) or --api-auth user:password (Basic)");
        return a;
    }
    a.caller = {"", true};
    a.ok = true;
    return a;
}

// Every key's images are counted (easel keys list, /metrics); only a key with a quota is refused past it.
bool Server::charge(const Auth& a, int images, httplib::Response& res, std::string* charged_day) {
    charged_day->clear();
    if (!a.key) return true;
    const int64_t t = now_ms();
    const std::string day = utc_day(t);
    auto refused = store_.charge_images(a.key->id, day, images, a.key->quota_per_day);
    if (!refused) {
        send_error(res, refused.error());
        return false;
    }
    if (*refused) {
        res.set_header("Retry-After", std::to_string(seconds_to_utc_midnight(t)));
        send_error(res, 429, "quota_exceeded",
                   fmt::format("the key '{}' has used {} of its {} images today (UTC); this request asks for {}", a.key->name,
                               **refused, a.key->quota_per_day, images));
        return false;
    }
    *charged_day = day;
    return true;
}

httplib::Server::Handler Server::api(ApiHandler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) {
        Auth a = authenticate(req, res);
        if (!a.ok) return;
        h(req, res, a);
    };
}

void Server::static_file(const std::string& name, httplib::Response& res) {
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) {
            send_error(res, 404, "not_found", fmt::format("no file '{}'", name));
            return;
        }
    std::string web_dir = opt_.web_dir;
    if (web_dir.empty())
        if (const char* e = std::getenv("EASEL_WEB_DIR")) web_dir = e;
    if (!web_dir.empty()) {
        if (auto bytes = read_whole_file((fs::path(web_dir) / name).string())) {
            res.set_header("Cache-Control", "no-cache");
            res.set_content(*bytes, content_type_for(name));
            return;
        }
    }
    for (const auto& [n, bytes] : embedded_files())
        if (n == name) {
            res.set_header("Cache-Control", "no-cache");
            res.set_content(std::string(bytes), content_type_for(name));
            return;
        }
    send_error(res, 404, "not_found", fmt::format("no file '{}'", name));
}

json Server::models_json() {
    json list = json::array();
    const std::string def = queue_.default_model();
    for (const ModelEntry& m : queue_.models()) {
        json e = {{"name", m.name}, {"title", m.title}, {"default", m.name == def}, {"loaded", queue_.is_loaded(m.name)}};
        auto [w, h] = queue_.native_size(m.name);
        e["width"] = w ? json(w) : json(nullptr);
        e["height"] = h ? json(h) : json(nullptr);
        const auto cfg = queue_.recommended_cfg_scale(m.name);
        e["cfg_scale"] = cfg ? json(*cfg) : json(nullptr);
        const std::string license = queue_.model_license(m.name);
        e["license"] = license.empty() ? json(nullptr) : json(license);
        const std::string family = queue_.model_family(m.name);
        e["family"] = family.empty() ? json(nullptr) : json(family);
        const int multiple = queue_.model_size_multiple(m.name);
        e["size_multiple"] = multiple ? json(multiple) : json(nullptr);
        // Beyond A1111's fields: Flux dev's distilled guidance (its default; null for other models), whether a flow
        // shift applies (SD3, Flux), and how many transformer blocks skip-layer guidance may name (null: none).
        const auto controls = queue_.model_controls(m.name);
        e["distilled_guidance"] = controls && controls->distilled_guidance ? json(*controls->distilled_guidance) : json(nullptr);
        e["flow"] = controls ? json(controls->flow) : json(nullptr);
        e["skip_layer_blocks"] = controls && controls->skippable_blocks ? json(controls->skippable_blocks) : json(nullptr);
        list.push_back(e);
    }
    return json{{"models", list}};
}

json Server::sd_models_json() {
    json list = json::array();
    for (const ModelEntry& m : queue_.models())
        list.push_back({{"title", m.title}, {"model_name", m.name}, {"hash", nullptr}, {"sha256", nullptr},
                        {"filename", m.path}, {"config", nullptr}});
    return list;
}

json Server::options_json() {
    std::string title;
    const std::string def = queue_.default_model();
    for (const ModelEntry& m : queue_.models())
        if (m.name == def) title = m.title;
    return json{{"sd_model_checkpoint", title}, {"sd_checkpoint_hash", nullptr}, {"CLIP_stop_at_last_layers", 1},
                {"samples_format", "png"}, {"live_previews_enable", true}, {"show_progress_every_n_steps", 1},
                {"live_preview_content", "Prompt"}, {"show_progress_type", "Approx cheap"},
                {"randn_source", "CPU"}, {"eta_noise_seed_delta", 0}, {"sd_vae", "Automatic"}};
}

void Server::submit(const httplib::Request& req, httplib::Response& res, const Auth& a, std::optional<RequestKind> kind_or_auto,
                    bool a1111) {
    auto body = parse_body(req);
    if (!body) return send_error(res, body.error());
    // /v1/jobs takes both kinds: img2img when init_images is present.
    const RequestKind kind = kind_or_auto ? *kind_or_auto : body->contains("init_images") ? RequestKind::Img2Img : RequestKind::Txt2Img;
    RequestDefaults d = a1111_defaults();
    if (!a1111) {
        // Our own API defaults to what suits the model: its native size, its recommended CFG scale, 20 steps, Euler a.
        std::string model = queue_.default_model();
        if (auto m = get_string(*body, "model"); m && *m && !(*m)->empty()) {
            if (const ModelEntry* e = queue_.find_model(**m)) model = e->name;
        }
        auto [w, h] = queue_.native_size(model);
        if (w) {
            d.width = w;
            d.height = h;
        }
        if (auto cfg = queue_.recommended_cfg_scale(model)) d.cfg_scale = *cfg;
        d.steps = 20;
        d.sampler = "Euler a";
    }
    auto r = parse_generation_request(*body, kind, d, opt_.limits);
    if (!r) return send_error(res, r.error());
    // A key's images: charged with the job in one transaction by a front end of a shared store, else here (and
    // given back when the job is not queued).
    std::string day;
    std::optional<QuotaCharge> with_job;
    if (queue_.charges_on_submit()) {
        if (a.key) with_job = QuotaCharge{a.key->id, a.key->name, utc_day(now_ms()), r->images(), a.key->quota_per_day};
    } else if (!charge(a, r->images(), res, &day)) {
        return;
    }
    auto sub = queue_.submit(*r, a.caller, with_job ? &*with_job : nullptr);
    if (!sub) {
        if (!day.empty()) (void)store_.add_images(a.key->id, day, -int64_t(r->images()));  // not queued: not spent
        if (sub.error().code() == ErrorCode::ResourceExhausted && sub.error().where() == "quota") {
            res.set_header("Retry-After", std::to_string(seconds_to_utc_midnight(now_ms())));
            return send_error(res, 429, "quota_exceeded", sub.error().message());
        }
        if (sub.error().code() == ErrorCode::ResourceExhausted) res.set_header("Retry-After", "10");
        return send_error(res, sub.error());
    }
    if (log_level() <= LogLevel::Info)
        log_fields(LogLevel::Info, "jobs", "queued " + sub->id,
                   {{"request_id", res.get_header_value("X-Request-Id")}, {"job", sub->id}, {"images", std::to_string(r->images())},
                    {"key", t_request_key}});
    if (!a1111) {
        res.set_header("Location", "/v1/jobs/" + sub->id);
        return send_json(res, {{"id", sub->id}, {"queue_position", sub->queue_position}}, 202);
    }
    // A1111's endpoints are synchronous: wait for the job, then answer as A1111 does.
    uint64_t seen = 0;
    for (;;) {
        seen = queue_.wait_change(sub->id, seen, 1000);
        if (g_stopping) return send_error(res, 503, "shutting_down", "the server is shutting down; the job runs again after the restart");
        auto j = queue_.job_json(sub->id, a.caller, false);
        if (!j) return send_error(res, j.error());
        const std::string status = (*j)["status"].get<std::string>();
        if (status == "failed") return send_error(res, 500, "generation_failed", (*j)["error"].is_string() ? (*j)["error"].get<std::string>() : "failed");
        if (status == "cancelled") return send_error(res, 409, "cancelled", "the job was cancelled");
        if (status == "done") break;
    }
    auto out = queue_.a1111_result(sub->id);
    if (!out) return send_error(res, out.error());
    if (!r->send_images) (*out)["images"] = json::array();
    send_json(res, *out);
}

void Server::install(httplib::Server& svr) {
    // The page and its files.
    svr.Get("/", [this](const httplib::Request&, httplib::Response& res) { static_file("index.html", res); });
    svr.Get(R"(/([A-Za-z0-9_.-]+\.(?:js|css|html|svg|png|ico)))",
            [this](const httplib::Request& req, httplib::Response& res) { static_file(req.matches[1], res); });
    svr.Get("/openapi.json", [](const httplib::Request&, httplib::Response& res) { send_json(res, openapi_json()); });
    // Operations. Liveness and readiness need no key (load balancers and orchestrators probe them); /metrics is an
    // API route, and only a caller who sees every job (Basic auth, or an open server) gets per-key usage.
    svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { send_json(res, {{"status", "ok"}}); });
    svr.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
        std::string why;
        if (queue_.ready(&why)) {
            send_json(res, {{"status", "ready"}});
        } else {
            send_json(res, {{"status", "not ready"}, {"reason", why}}, 503);
        }
    });
    svr.Get("/metrics", api([this](const httplib::Request&, httplib::Response& res, const Auth& a) {
        std::string text = queue_.metrics_text();
        if (a.caller.all_jobs) {
            if (auto keys = store_.list_keys()) {
                text += "# HELP easel_key_images_today Images generated today (UTC) per API key.\n"
                        "# TYPE easel_key_images_today gauge\n";
                const std::string day = utc_day(now_ms());
                for (const KeyRecord& k : *keys) {
                    auto n = store_.images_on_day(k.id, day);
                    text += fmt::format("easel_key_images_today{{key=\"{}\"}} {}\n", prometheus_label(k.name), n ? *n : 0);
                }
            }
        }
        res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
    }));

    // Our API.
    // What the caller's key has used today and may still use, as DreamStudio shows credits.
    svr.Get("/v1/usage", api([this](const httplib::Request&, httplib::Response& res, const Auth& a) {
        const int64_t t = now_ms();
        const std::string day = utc_day(t);
        const std::time_t reset = std::time_t(t / 1000 + seconds_to_utc_midnight(t));
        std::tm tm{};
        gmtime_r(&reset, &tm);
        char resets_at[32];
        std::strftime(resets_at, sizeof resets_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        // Without a key (an open server, Basic auth) nothing is counted: images_today is null.
        json out = {{"key", nullptr}, {"day", day}, {"images_today", nullptr}, {"quota_per_day", nullptr},
                    {"images_left_today", nullptr}, {"resets_at", resets_at}, {"rate_per_min", nullptr}};
        if (a.key) {
            auto used = store_.images_on_day(a.key->id, day);
            if (!used) return send_error(res, used.error());
            out["key"] = {{"id", a.key->id}, {"name", a.key->name}};
            out["images_today"] = *used;
            if (a.key->quota_per_day > 0) {
                out["quota_per_day"] = a.key->quota_per_day;
                out["images_left_today"] = std::max<int64_t>(0, a.key->quota_per_day - *used);
            }
            if (a.key->rate_per_min > 0) out["rate_per_min"] = a.key->rate_per_min;
        }
        send_json(res, out);
    }));
    svr.Get("/v1/models", api([this](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, models_json()); }));
    svr.Post("/v1/jobs", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        submit(req, res, a, std::nullopt, false);
    }));
    svr.Get("/v1/jobs", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        int limit = 50;
        if (req.has_param("limit")) {
            const std::string v = req.get_param_value("limit");
            char* end = nullptr;
            const long n = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || n < 1 || n > 1000)
                return send_error(res, 400, "invalid_argument", fmt::format("limit: expected 1..1000, got '{}'", v));
            limit = int(n);
        }
        JobFilter filter;
        for (auto [param, field] : {std::pair{"q", &filter.prompt}, std::pair{"model", &filter.model}}) {
            if (!req.has_param(param)) continue;
            *field = req.get_param_value(param);
            if (field->size() > 1000)
                return send_error(res, 400, "invalid_argument", fmt::format("{}: at most 1000 bytes, got {}", param, field->size()));
        }
        auto j = queue_.list_json(a.caller, limit, filter);
        if (!j) return send_error(res, j.error());
        send_json(res, *j);
    }));
    svr.Get(R"(/v1/jobs/([0-9a-f]{1,64}))", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        const bool preview = req.has_param("preview") && req.get_param_value("preview") != "0";
        auto j = queue_.job_json(req.matches[1], a.caller, preview);
        if (!j) return send_error(res, j.error());
        send_json(res, *j);
    }));
    svr.Delete(R"(/v1/jobs/([0-9a-f]{1,64}))", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        if (req.has_param("purge") && req.get_param_value("purge") != "0") {
            auto j = queue_.purge(req.matches[1], a.caller);
            if (!j && j.error().code() == ErrorCode::Refused && j.error().where() == "purge")
                return send_error(res, 409, "conflict", j.error().message());
            if (!j) return send_error(res, j.error());
            return send_json(res, *j);
        }
        auto j = queue_.cancel(req.matches[1], a.caller);
        if (!j) return send_error(res, j.error());
        send_json(res, *j);
    }));
    svr.Get(R"(/v1/jobs/([0-9a-f]{1,64})/images/(\d{1,4}))", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        auto bytes = queue_.image_png(req.matches[1], std::stoi(req.matches[2]), a.caller);
        if (!bytes) return send_error(res, bytes.error());
        res.set_header("Content-Disposition", fmt::format("inline; filename=\"easel-{}-{}.png\"", std::string(req.matches[1]),
                                                          std::string(req.matches[2])));
        res.set_content(*bytes, "image/png");
    }));
    svr.Get(R"(/v1/jobs/([0-9a-f]{1,64})/events)", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        const std::string id = req.matches[1];
        const bool preview = req.has_param("preview") && req.get_param_value("preview") != "0";
        if (auto j = queue_.job_json(id, a.caller, false); !j) return send_error(res, j.error());
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        auto seen = std::make_shared<uint64_t>(0);
        const Caller caller = a.caller;
        auto idle = std::make_shared<int>(0);
        res.set_chunked_content_provider("text/event-stream", [this, id, caller, seen, idle, preview](size_t, httplib::DataSink& sink) {
            const uint64_t v = queue_.wait_change(id, *seen, 1000);
            if (g_stopping) {
                sink.done();
                return true;
            }
            if (v == *seen) {
                if (++*idle < 15) return true;
                *idle = 0;
                const std::string ping = ": keep-alive\n\n";  // every 15 s, so proxies keep the stream open
                return sink.write(ping.data(), ping.size());
            }
            *idle = 0;
            *seen = v;
            auto j = queue_.job_json(id, caller, preview);
            if (!j) {
                sink.done();
                return true;
            }
            const std::string status = (*j)["status"].get<std::string>();
            const bool terminal = queue_.is_terminal(status);
            const std::string msg = fmt::format("event: {}\ndata: {}\n\n", terminal ? status : "progress", safe_dump(*j));
            if (!sink.write(msg.data(), msg.size())) return false;
            if (terminal) sink.done();
            return true;
        });
    }));

    // AUTOMATIC1111's API.
    svr.Post("/sdapi/v1/txt2img", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        submit(req, res, a, RequestKind::Txt2Img, true);
    }));
    svr.Post("/sdapi/v1/img2img", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        submit(req, res, a, RequestKind::Img2Img, true);
    }));
    // A1111's global progress, interrupt and skip act on the caller's own jobs only: a key never sees another
    // key's preview nor stops its job.
    svr.Get("/sdapi/v1/progress", api([this](const httplib::Request& req, httplib::Response& res, const Auth& a) {
        const bool skip_image = req.has_param("skip_current_image") && req.get_param_value("skip_current_image") == "true";
        send_json(res, queue_.a1111_progress(!skip_image, a.caller));
    }));
    svr.Post("/sdapi/v1/interrupt", api([this](const httplib::Request&, httplib::Response& res, const Auth& a) {
        queue_.interrupt_running(a.caller);
        send_json(res, nullptr);
    }));
    svr.Post("/sdapi/v1/skip", api([this](const httplib::Request&, httplib::Response& res, const Auth& a) {
        queue_.skip_running(a.caller);
        send_json(res, nullptr);
    }));
    svr.Get("/sdapi/v1/sd-models", api([this](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, sd_models_json()); }));
    // A1111's ControlNet extension: its models (the ControlNet folder's files and diffusers folders), its
    // preprocessors (none, canny, invert, the IP-Adapter encoders) and its API version.
    svr.Get("/controlnet/model_list", api([this](const httplib::Request&, httplib::Response& res, const Auth&) {
        send_json(res, {{"model_list", list_controlnet_names(queue_.controlnet_dir())}});
    }));
    svr.Get("/controlnet/module_list", api([](const httplib::Request&, httplib::Response& res, const Auth&) {
        json modules = json::array(), detail = json::object();
        for (const std::string& m : preprocessor_modules()) {
            modules.push_back(m);
            json sliders = json::array();
            for (const PreprocessorSlider& s : preprocessor_slider_info(m))
                sliders.push_back({{"name", s.name}, {"value", s.value}, {"min", s.min}, {"max", s.max}, {"step", s.step}});
            detail[m] = {{"model_free", true}, {"sliders", sliders}};
        }
        for (const std::string& m : ip_adapter_modules()) {
            modules.push_back(m);
            detail[m] = {{"model_free", false}, {"sliders", json::array()}};
        }
        send_json(res, {{"module_list", modules}, {"module_detail", detail}});
    }));
    // The extension's preprocessor preview: each image through the module, as PNG (what a unit would use).
    svr.Post("/controlnet/detect", api([this](const httplib::Request& req, httplib::Response& res, const Auth&) {
        auto body = parse_body(req);
        if (!body) return send_error(res, body.error());
        auto module = get_string(*body, "controlnet_module");
        auto ta = get_number(*body, "controlnet_threshold_a");
        auto tb = get_number(*body, "controlnet_threshold_b");
        auto res_px = get_number(*body, "controlnet_processor_res");
        if (!module) return send_error(res, module.error());
        for (const auto* r : {&ta, &tb, &res_px})
            if (!*r) return send_error(res, r->error());
        PreprocessorSpec spec{.module = module->value_or("none")};
        if (*ta && **ta >= 0) spec.threshold_a = **ta;
        if (*tb && **tb >= 0) spec.threshold_b = **tb;
        spec.resolution = extension_resolution(spec.module, *res_px);
        if (Status st = validate_preprocessor(spec); !st)
            return send_error(res, Error(st.error().code(), st.error().message(), "controlnet_module"));
        // The extension's name, or webuiapi's (controlnet_images).
        auto it = body->find("controlnet_input_images");
        if (it == body->end()) it = body->find("controlnet_images");
        if (it == body->end() || !it->is_array() || it->empty() || it->size() > 8)
            return send_error(res, 400, "invalid_argument", "controlnet_input_images: expected 1 to 8 base64 images");
        json images = json::array();
        for (size_t i = 0; i < it->size(); ++i) {
            const std::string field = fmt::format("controlnet_input_images[{}]", i);
            auto img = decode_b64_image((*it)[i], field, int64_t(opt_.limits.max_width) * opt_.limits.max_height);
            if (!img) return send_error(res, img.error());
            auto map = run_preprocessor(spec, *img);
            if (!map) return send_error(res, map.error().within(field));
            auto png = encode_image(*map, ImageFormat::Png);
            if (!png) return send_error(res, png.error());
            images.push_back(base64_encode(png->data(), png->size()));
        }
        send_json(res, {{"images", images}, {"info", "Success"}});
    }));
    svr.Get("/controlnet/version", api([](const httplib::Request&, httplib::Response& res, const Auth&) {
        send_json(res, {{"version", 2}});
    }));
    // A1111's Lora extension: every file of the LoRA folder, with its kohya-ss training metadata (the safetensors
    // header's __metadata__; ss_* values that hold JSON are parsed, as A1111 does).
    svr.Get("/sdapi/v1/loras", api([this](const httplib::Request&, httplib::Response& res, const Auth&) {
        json list = json::array();
        for (const auto& [name, path] : list_lora_files(queue_.lora_dir())) {
            json meta = json::object();
            std::string alias = name;
            auto w = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0
                         ? read_safetensors(path) : Result<WeightSet>(WeightSet{});
            if (w) {
                const std::map<std::string, std::string>& md = w->metadata;
                for (const auto& [k, v] : md) {
                    json parsed = json::parse(v, nullptr, false);
                    meta[k] = (!parsed.is_discarded() && (parsed.is_object() || parsed.is_array())) ? parsed : json(v);
                }
                if (auto it = md.find("ss_output_name"); it != md.end() && !it->second.empty()) alias = it->second;
            }
            list.push_back({{"name", name}, {"alias", alias}, {"path", path}, {"metadata", meta}});
        }
        send_json(res, list);
    }));
    // A1111's embeddings list: those the default model can use under "loaded", the rest (other widths, files that
    // are not embeddings) under "skipped", each with its vector count and width.
    svr.Get("/sdapi/v1/embeddings", api([this](const httplib::Request&, httplib::Response& res, const Auth&) {
        json loaded = json::object(), skipped = json::object();
        EmbeddingScan scan = load_embeddings_dir(queue_.embeddings_dir());
        std::optional<ModelInfo> info;
        if (const ModelEntry* m = queue_.find_model(queue_.default_model()))
            if (auto spec = load_model_spec(m->path, LoadOptions{})) info = spec->info;
        for (const TextualInversion& e : scan.set->items) {
            const bool xl = e.vectors.count("clip_g") > 0;
            const Tensor& v = xl ? e.vectors.at("clip_g") : e.vectors.begin()->second;
            int64_t shape = v.size(1);
            if (xl) shape += e.vectors.at("clip_l").size(1);
            bool fits = false;
            if (info) {
                fits = xl ? info->has_text_encoder_2 && info->text_2.hidden_size == v.size(1)
                          : !info->has_text_encoder_2 && info->text.hidden_size == v.size(1);
            }
            json item = {{"step", nullptr}, {"sd_checkpoint", nullptr}, {"sd_checkpoint_name", nullptr},
                         {"shape", shape}, {"vectors", v.size(0)}};
            (fits ? loaded : skipped)[e.name] = item;
        }
        for (const std::string& why : scan.skipped) {
            const std::string file = why.substr(0, why.find(": "));
            skipped[fs::path(file).stem().string()] = {{"step", nullptr}, {"sd_checkpoint", nullptr},
                                                        {"sd_checkpoint_name", nullptr}, {"shape", nullptr},
                                                        {"vectors", nullptr}, {"error", why.substr(why.find(": ") + 2)}};
        }
        send_json(res, json{{"loaded", loaded}, {"skipped", skipped}});
    }));
    svr.Get("/sdapi/v1/samplers", api([](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, samplers_json()); }));
    svr.Get("/sdapi/v1/schedulers", api([](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, schedulers_json()); }));
    svr.Get("/sdapi/v1/options", api([this](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, options_json()); }));
    svr.Post("/sdapi/v1/options", api([this](const httplib::Request& req, httplib::Response& res, const Auth&) {
        auto body = parse_body(req);
        if (!body) return send_error(res, body.error());
        auto ck = get_string(*body, "sd_model_checkpoint");
        if (!ck) return send_error(res, ck.error());
        if (*ck) {
            if (auto st = queue_.set_default_model(**ck); !st) return send_error(res, st.error().within("sd_model_checkpoint"));
        }
        send_json(res, nullptr);  // other options are accepted and ignored, as settings easel does not have
    }));
    // What an image says about where it came from (pipeline/verify_image.h): the body is the image itself (Content-Type
    // image/png, image/jpeg, image/webp or application/octet-stream) or JSON {"image": base64 or a data: URL}.
    svr.Post("/v1/verify", api([this](const httplib::Request& req, httplib::Response& res, const Auth&) {
        const std::string type = req.get_header_value("Content-Type");
        std::string bytes;
        if (type.rfind("image/", 0) == 0 || type.rfind("application/octet-stream", 0) == 0) {
            bytes = req.body;
        } else {
            auto body = parse_body(req);
            if (!body) return send_error(res, body.error());
            auto img = get_string(*body, "image");
            if (!img) return send_error(res, img.error());
            if (!*img) return send_error(res, 400, "invalid_argument", "image: expected a base64 PNG, JPEG or WebP (or send the image itself as the body)");
            std::string b64 = **img;
            if (b64.rfind("data:", 0) == 0) b64 = b64.substr(std::min(b64.size(), b64.find(',') + 1));
            auto decoded = base64_decode(b64, "image");
            if (!decoded) return send_error(res, decoded.error());
            bytes = std::move(*decoded);
        }
        auto p = inspect_image_provenance(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), opt_.trust_anchors, "image",
                                          int64_t(opt_.limits.max_width) * opt_.limits.max_height);
        if (!p) return send_error(res, p.error());
        send_json(res, provenance_report_json(*p));
    }));
    svr.Post("/sdapi/v1/png-info", api([](const httplib::Request& req, httplib::Response& res, const Auth&) {
        auto body = parse_body(req);
        if (!body) return send_error(res, body.error());
        auto img = get_string(*body, "image");
        if (!img) return send_error(res, img.error());
        if (!*img) return send_error(res, 400, "invalid_argument", "image: expected a base64 PNG");
        auto bytes = base64_decode(**img, "image");
        if (!bytes) return send_error(res, bytes.error());
        auto chunks = read_png_text(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), "image");
        json items = json::object();
        std::string info;
        if (chunks) {
            for (const auto& [k, v] : *chunks) {
                if (k == "parameters") info = v;
                else items[k] = v;
            }
        } else if (decode_image(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), "image")) {
            // A JPEG or WebP without PNG text: no parameters, as A1111 answers for a picture without them.
        } else {
            return send_error(res, chunks.error());
        }
        json parameters = json::object();
        if (!info.empty()) {
            const ParsedInfotext p = parse_infotext(info);
            parameters["Prompt"] = p.prompt;
            parameters["Negative prompt"] = p.negative_prompt;
            for (const auto& [k, v] : p.params) parameters[k] = v;
        }
        send_json(res, {{"info", info}, {"items", items}, {"parameters", parameters}});
    }));
    // A1111 endpoints easel has no counterpart for: the answer A1111 gives without extensions or extra models.
    const std::vector<std::pair<const char*, json>> empty_gets = {
        {"/sdapi/v1/scripts", json{{"txt2img", json::array()}, {"img2img", json::array()}}},
        {"/sdapi/v1/script-info", json::array()}, {"/sdapi/v1/upscalers", json::array()},
        {"/sdapi/v1/latent-upscale-modes", json::array()}, {"/sdapi/v1/sd-vae", json::array()},
        {"/sdapi/v1/hypernetworks", json::array()}, {"/sdapi/v1/face-restorers", json::array()},
        {"/sdapi/v1/realesrgan-models", json::array()}, {"/sdapi/v1/prompt-styles", json::array()},
        {"/sdapi/v1/extensions", json::array()},
        {"/sdapi/v1/cmd-flags", json::object()}, {"/sdapi/v1/memory", json::object()},
    };
    for (const auto& [path, body] : empty_gets) {
        json b = body;
        svr.Get(path, api([b](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, b); }));
    }
    for (const char* path : {"/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-vae", "/sdapi/v1/refresh-loras",
                             "/sdapi/v1/unload-checkpoint", "/sdapi/v1/reload-checkpoint"})
        svr.Post(path, api([](const httplib::Request&, httplib::Response& res, const Auth&) { send_json(res, nullptr); }));

    // Every error without a body (404 of an unknown path, 413 of a too-large body, ...) gets the envelope.
    svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (res.status == 404) send_error(res, 404, "not_found", fmt::format("no route {} {}", req.method, req.path));
        else if (res.status == 413)
            send_error(res, 413, "payload_too_large", fmt::format("the request body is larger than this server's limit of {} bytes",
                                                                  opt_.limits.max_body_bytes));
        else send_error(res, res.status, "http_error", fmt::format("HTTP {}", res.status));
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        send_error(res, 500, "internal", "internal error (a bug, please report it): " + what);
    });
}


}  // namespace

std::string default_data_dir() {
    if (const char* e = std::getenv("EASEL_DATA_DIR"); e && *e) return e;
    if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return (fs::path(x) / "easel").string();
    if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".local/share/easel").string();
    return "easel-data";
}

namespace {
Result<std::unique_ptr<Store>> open_store(const std::string& data_dir) {
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (ec) return Error::io(fmt::format("cannot create the data folder: {}", ec.message()), data_dir);
    return Store::open((fs::path(data_dir) / "easel.db").string());
}

// Keys live in the data folder's database, or in PostgreSQL when `where` is a postgresql:// URL.
Result<std::unique_ptr<KeyStore>> open_key_store(const std::string& where) {
    if (is_postgres_url(where)) {
        EASEL_TRY_ASSIGN(auto pg, PgStore::open(where, PgStore::Migrate::AtStart));
        return std::unique_ptr<KeyStore>(std::move(pg));
    }
    EASEL_TRY_ASSIGN(auto st, open_store(where));
    return std::unique_ptr<KeyStore>(std::move(st));
}
}  // namespace

std::vector<ModelEntry> collect_models(const ServeOptions& o, std::string* error) {
    std::vector<ModelEntry> out;
    auto add = [&](const fs::path& p) {
        ModelEntry e;
        e.path = p.string();
        e.title = p.filename().string();
        e.name = fs::is_directory(p) ? e.title : p.stem().string();
        for (const ModelEntry& x : out)
            if (x.name == e.name) return;  // first wins
        out.push_back(e);
    };
    std::error_code ec;
    for (const std::string& m : o.models) {
        if (!fs::exists(m, ec)) {
            *error = fmt::format("-m {}: no such file or folder", m);
            return {};
        }
        add(fs::path(m));
    }
    if (!o.models_dir.empty()) {
        if (!fs::is_directory(o.models_dir, ec)) {
            *error = fmt::format("--models-dir {}: not a folder", o.models_dir);
            return {};
        }
        std::vector<fs::path> found;
        for (const auto& de : fs::directory_iterator(o.models_dir, ec)) {
            const fs::path p = de.path();
            const std::string ext = p.extension().string();
            if (de.is_directory(ec) ? fs::exists(p / "model_index.json", ec)
                                    : (ext == ".safetensors" || ext == ".ckpt" || ext == ".pt" || ext == ".gguf"))
                found.push_back(p);
        }
        std::sort(found.begin(), found.end());
        for (const fs::path& p : found) add(p);
    }
    if (out.empty() && !o.embedded_model.empty()) add(fs::path(o.embedded_model));
    if (out.empty()) *error = "no model to serve: give -m MODEL or --models-dir DIR";
    return out;
}

Result<std::string> resolve_worker_exe(const ServeOptions& o) {
    if (!o.worker_exe.empty()) return o.worker_exe;
    std::error_code ec;
    std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) return Error::io(fmt::format("cannot find this program to start worker processes: {}", ec.message()), "/proc/self/exe");
    return exe;
}

void configure_addon_dirs(JobQueue& queue, const ServeOptions& o, const std::vector<ModelEntry>& models) {
    // <lora:NAME> files: --lora-dir, else a Lora folder beside the first model (A1111's models/Lora).
    std::string lora_dir = o.lora_dir;
    if (lora_dir.empty() && !models.empty()) lora_dir = default_lora_dir(models.front().path);
    if (lora_dir.empty() && !o.models_dir.empty()) lora_dir = default_lora_dir(o.models_dir);
    queue.set_lora_dir(lora_dir);
    std::string controlnet_dir = o.controlnet_dir;
    if (controlnet_dir.empty() && !models.empty()) controlnet_dir = default_controlnet_dir(models.front().path);
    if (controlnet_dir.empty() && !o.models_dir.empty()) controlnet_dir = default_controlnet_dir(o.models_dir);
    queue.set_controlnet_dir(controlnet_dir);
    queue.set_image_encoder_dir(o.image_encoder_dir);
    if (!controlnet_dir.empty()) log_info("serve", "ControlNets from {} ({})", controlnet_dir, list_controlnets(controlnet_dir).size());
    std::string embeddings_dir = o.embeddings_dir;
    if (embeddings_dir.empty() && !models.empty()) embeddings_dir = default_embeddings_dir(models.front().path);
    if (embeddings_dir.empty() && !o.models_dir.empty()) embeddings_dir = default_embeddings_dir(o.models_dir);
    queue.set_embeddings_dir(embeddings_dir);
    if (!embeddings_dir.empty()) log_info("serve", "embeddings from {}", embeddings_dir);
    if (!lora_dir.empty()) log_info("serve", "LoRAs from {} ({} files)", lora_dir, list_lora_files(lora_dir).size());
}

Status run_server(const ServeOptions& o) {
    BasicCredentials basic;
    if (!o.api_auth.empty()) {
        std::string err;
        if (!parse_basic_credentials(o.api_auth, &basic, &err)) return Error::invalid_argument(err, "--api-auth");
    }
    const std::string data_dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
    // The store: the data folder's SQLite (this machine's workers), or PostgreSQL shared with other front ends and
    // `easel worker` processes.
    std::unique_ptr<Store> local;
    std::unique_ptr<PgStore> pg;
    if (!o.store.empty() && !is_postgres_url(o.store))
        return Error::invalid_argument(fmt::format("expected a postgresql://... URL, got '{}' (the SQLite store is the data "
                                                   "folder: --data)", o.store), "--store");
    if (!o.store.empty()) {
        EASEL_TRY_ASSIGN(pg, PgStore::open(o.store, PgStore::Migrate::AtStart));
    } else {
        EASEL_TRY_ASSIGN(local, open_store(data_dir));
    }
    if (o.migrate_only) return ok();  // opening migrated it
    KeyStore& store = pg ? static_cast<KeyStore&>(*pg) : *local;
    EASEL_TRY_ASSIGN(int64_t keys, store.active_key_count());
    if (!is_loopback(o.host) && keys == 0 && basic.empty() && !o.insecure_no_auth)
        return Error::refused(fmt::format("refusing to listen on {} without authentication: create an API key with 'easel keys "
                                          "create --name NAME {}', or pass --api-auth user:password, or (on a trusted "
                                          "network only) --insecure-no-auth", o.host, pg ? "--store URL" : "--data " + data_dir), "--host");
    std::string err;
    std::vector<ModelEntry> models = collect_models(o, &err);
    if (models.empty()) return Error::not_found(err);

    EASEL_TRY_ASSIGN(std::string worker_exe, resolve_worker_exe(o));
    std::unique_ptr<JobQueue> queue_owner =
        pg ? std::make_unique<JobQueue>(*pg, models, o.load, o.limits, int64_t(o.worker_max_age_s) * 1000)
           : std::make_unique<JobQueue>(*local, models, o.load, o.limits, (fs::path(data_dir) / "images").string(), worker_exe);
    JobQueue& queue = *queue_owner;
    if (pg) log_info("serve", "a front end of the PostgreSQL store: `easel worker --store URL` processes run the jobs");
    configure_addon_dirs(queue, o, models);
    EASEL_TRY(queue.start());

    httplib::Server svr;
    svr.new_task_queue = [] { return new httplib::ThreadPool(64); };  // SSE streams and A1111's blocking calls hold a thread
    svr.set_payload_max_length(o.limits.max_body_bytes);
    svr.set_read_timeout(o.limits.read_timeout_s);  // slow or stalled clients are cut off
    svr.set_write_timeout(30);
    Server server(o, store, queue, basic);
    server.install(svr);
    // Every request gets an id (X-Request-Id, the client's when it sends a plain one), in its answer and in the
    // access log: one line per request at level info (EASEL_LOG_LEVEL=info), JSON with EASEL_LOG_FORMAT=json.
    svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        t_request_start = std::chrono::steady_clock::now();
        t_request_key.clear();
        res.set_header("X-Request-Id", request_id_for(req));
        return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        if (log_level() > LogLevel::Info) return;
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_request_start).count();
        log_fields(LogLevel::Info, "http", fmt::format("{} {} {}", req.method, req.path, res.status),
                   {{"request_id", res.get_header_value("X-Request-Id")}, {"method", req.method}, {"path", req.path},
                    {"status", std::to_string(res.status)}, {"ms", fmt::format("{:.1f}", ms)}, {"key", t_request_key},
                    {"remote", req.remote_addr}});
    });
    // cpp-httplib 0.11 listens with a backlog of 5: a burst of clients overflows it and connections are dropped
    // (seen in the load test as clients that got no answer). Remember the socket and listen again with a real one.
    int listen_fd = -1;
    svr.set_socket_options([&listen_fd](int sock) {
        httplib::default_socket_options(sock);
        listen_fd = sock;
    });
    const int port = o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
    if (port < 0) return Error::io(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", o.host, o.port));
    if (listen_fd >= 0) ::listen(listen_fd, 1024);

    {
        std::lock_guard<std::mutex> lk(g_server_mu);
        g_server = &svr;
        g_stopping = false;
    }
    // SIGINT/SIGTERM: the handler only writes a byte to a pipe (httplib's stop is not async-signal-safe); a
    // watcher thread reads it and stops the server, which lets running jobs stop and keeps queued ones queued.
    if (pipe(g_signal_pipe) != 0) return Error::io("cannot create a pipe for signal handling");
    struct sigaction sa {}, old_int {}, old_term {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    std::thread watcher([] {
        char c = 0;
        while (read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
        }
        if (c == 1) stop_server();
    });
    if (o.on_listening) o.on_listening(port);
    const bool listened = svr.listen_after_bind();
    {
        std::lock_guard<std::mutex> lk(g_server_mu);
        g_server = nullptr;
    }
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    const char quit = 2;
    (void)!write(g_signal_pipe[1], &quit, 1);
    watcher.join();
    close(g_signal_pipe[0]);
    close(g_signal_pipe[1]);
    queue.stop();
    if (!listened) return Error::io("the server stopped with a socket error");
    return ok();
}

void stop_server() {
    std::lock_guard<std::mutex> lk(g_server_mu);
    if (g_server) {
        g_stopping = true;
        g_server->stop();
    }
}

Result<std::pair<std::string, KeyInfo>> create_key(const std::string& data_dir, const std::string& name, int64_t quota,
                                                   int64_t rate, bool admin) {
    if (name.empty() || name.size() > 100) return Error::invalid_argument("expected a name of 1 to 100 characters", "--name");
    if (quota < 0) return Error::invalid_argument(fmt::format("must be 0 (unlimited) or more, got {}", quota), "--quota");
    if (rate < 0) return Error::invalid_argument(fmt::format("must be 0 (unlimited) or more, got {}", rate), "--rate");
    EASEL_TRY_ASSIGN(auto store, open_key_store(data_dir));
    const std::string secret = new_key_secret();
    KeyRecord k;
    k.id = new_key_id();
    k.name = name;
    k.hash = sha256_hex(secret);
    k.quota_per_day = quota;
    k.rate_per_min = rate;
    k.created_ms = now_ms();
    k.admin = admin;
    EASEL_TRY(store->insert_key(k));
    KeyInfo info{k.id, k.name, k.quota_per_day, k.rate_per_min, k.created_ms, false, 0, admin};
    return std::make_pair(secret, info);
}

Result<std::vector<KeyInfo>> list_keys(const std::string& data_dir) {
    EASEL_TRY_ASSIGN(auto store, open_key_store(data_dir));
    EASEL_TRY_ASSIGN(auto keys, store->list_keys());
    std::vector<KeyInfo> out;
    const std::string today = utc_day(now_ms());
    for (const KeyRecord& k : keys) {
        EASEL_TRY_ASSIGN(int64_t used, store->images_on_day(k.id, today));
        out.push_back({k.id, k.name, k.quota_per_day, k.rate_per_min, k.created_ms, k.revoked, used, k.admin});
    }
    return out;
}

bool is_store_url(const std::string& s) { return is_postgres_url(s); }

Status revoke_key(const std::string& data_dir, const std::string& id_or_name) {
    EASEL_TRY_ASSIGN(auto store, open_key_store(data_dir));
    return store->revoke_key(id_or_name);
}

}  // namespace easel::server
