#include "core/log.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

#include "core/log_fields.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace easel {
namespace {
std::atomic<int> g_level{-1};
}

LogLevel log_level() {
    int l = g_level.load(std::memory_order_relaxed);
    if (l < 0) {
        LogLevel v = LogLevel::Warn;
        if (const char* e = std::getenv("EASEL_LOG_LEVEL")) {
            if (!std::strcmp(e, "debug")) v = LogLevel::Debug;
            else if (!std::strcmp(e, "info")) v = LogLevel::Info;
            else if (!std::strcmp(e, "warn")) v = LogLevel::Warn;
            else if (!std::strcmp(e, "error")) v = LogLevel::Error;
            else if (!std::strcmp(e, "off")) v = LogLevel::Off;
        }
        l = int(v);
        g_level.store(l);
    }
    return LogLevel(l);
}

void set_log_level(LogLevel level) { g_level.store(int(level)); }

namespace {
const char* const kLevelNames[] = {"debug", "info", "warn", "error", "off"};

// A JSON string literal of `s` (UTF-8 passed through; control characters escaped).
std::string json_string(std::string_view s) {
    std::string o = "\"";
    for (char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) o += fmt::format("\\u{:04x}", int(c));
                else o += c;
        }
    }
    return o + "\"";
}

std::string utc_now() {
    const auto now = std::chrono::system_clock::now();
    const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::time_t t = std::time_t(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, int(ms % 1000));
}
}  // namespace

bool log_format_json() {
    static const bool json = [] {
        const char* e = std::getenv("EASEL_LOG_FORMAT");
        return e && !std::strcmp(e, "json");
    }();
    return json;
}

std::string format_log_line(LogLevel level, std::string_view component, const std::string& message, const LogFields& fields,
                            bool json) {
    std::string line;
    if (json) {
        line = fmt::format("{{\"time\":\"{}\",\"level\":\"{}\",\"component\":{},\"message\":{}", utc_now(), kLevelNames[int(level)],
                           json_string(component), json_string(message));
        for (const auto& [k, v] : fields) line += "," + json_string(k) + ":" + json_string(v);
        return line + "}\n";
    }
    // Text: control characters escaped, so a value (a decoded URL path, say) cannot forge a line of its own.
    auto plain = [](std::string_view v) {
        std::string o;
        for (char c : v) {
            if (c == '\n') o += "\\n";
            else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) o += fmt::format("\\x{:02x}", int(static_cast<unsigned char>(c)));
            else o += c;
        }
        return o;
    };
    line = fmt::format("{} {}: {}", kLevelNames[int(level)], component, plain(message));
    for (const auto& [k, v] : fields) line += " " + k + "=" + plain(v);
    return line + "\n";
}

void log_fields(LogLevel level, std::string_view component, const std::string& message, const LogFields& fields) {
    const std::string line = format_log_line(level, component, message, fields, log_format_json());
    std::fwrite(line.data(), 1, line.size(), stderr);  // one write: lines of concurrent threads do not interleave
}

void log_line(LogLevel level, std::string_view component, const std::string& message) { log_fields(level, component, message, {}); }

}  // namespace easel
