// API keys and HTTP Basic credentials: hashing (SHA-256 via OpenSSL's libcrypto), constant-time comparison,
// and the per-key request rate limiter (a sliding one-minute window).
//
//   std::string secret = new_key_secret();          // "easel_" + 40 hex digits, shown to the user once
//   store.insert_key({.hash = sha256_hex(secret), ...});
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace easel::server {

std::string sha256_hex(const std::string& data);
std::string random_hex(int bytes);  // from OpenSSL's CSPRNG
std::string new_key_secret();
std::string new_key_id();
bool constant_time_equal(const std::string& a, const std::string& b);

// "user:pass,user2:pass2" (A1111's --api-auth).
struct BasicCredentials {
    std::vector<std::pair<std::string, std::string>> users;
    bool empty() const { return users.empty(); }
    // The value of an "Authorization: Basic ..." header (without the scheme) matches one of the users.
    bool check(const std::string& base64_user_pass) const;
};
bool parse_basic_credentials(const std::string& spec, BasicCredentials* out, std::string* error);

class RateLimiter {
public:
    // Records a request by `key_id` at `now_ms` if it fits in `per_minute` (0 = unlimited). Otherwise returns
    // false and sets the seconds until one fits.
    bool allow(const std::string& key_id, int64_t per_minute, int64_t now_ms, int* retry_after_s);

private:
    std::mutex mu_;
    std::map<std::string, std::deque<int64_t>> hits_;
};

}  // namespace easel::server
