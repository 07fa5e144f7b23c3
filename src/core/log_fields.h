// Structured log lines: a message with named fields, for services (easel serve's access log). With
// EASEL_LOG_FORMAT=json every log line, these and log_line's, is one JSON object on stderr:
//   {"time":"2026-12-06T03:26:30.909Z","level":"info","component":"http","message":"GET /v1/jobs 200",
//    "request_id":"5f0c...","status":"200",...}
// Otherwise a line reads "info http: GET /v1/jobs 200 request_id=5f0c... status=200".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log.h"

namespace easel {

using LogFields = std::vector<std::pair<std::string, std::string>>;

bool log_format_json();  // EASEL_LOG_FORMAT=json
// The line log_fields writes (with its newline), as text or as JSON.
std::string format_log_line(LogLevel level, std::string_view component, const std::string& message, const LogFields& fields,
                            bool json);
void log_fields(LogLevel level, std::string_view component, const std::string& message, const LogFields& fields);

}  // namespace easel
