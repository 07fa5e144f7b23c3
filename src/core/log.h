// Logging: a level and a component on every line ("info unet: compute buffer 830 MiB"). Library code logs
// facts, never errors it also returns. EASEL_LOG_LEVEL=debug|info|warn|error|off sets the threshold.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace easel {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, std::string_view component, const std::string& message);

template <class... Args>
void log_info(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
    if (log_level() <= LogLevel::Info) log_line(LogLevel::Info, component, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void log_debug(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
    if (log_level() <= LogLevel::Debug) log_line(LogLevel::Debug, component, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void log_warn(std::string_view component, fmt::format_string<Args...> f, Args&&... args) {
    if (log_level() <= LogLevel::Warn) log_line(LogLevel::Warn, component, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace easel
