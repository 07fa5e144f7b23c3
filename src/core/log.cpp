#include "core/log.h"

#include <atomic>
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

void log_line(LogLevel level, std::string_view component, const std::string& message) {
    static const char* names[] = {"debug", "info", "warn", "error", "off"};
    std::fprintf(stderr, "%s %.*s: %s\n", names[int(level)], int(component.size()), component.data(), message.c_str());
}

}  // namespace easel
