#include "auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <random>

#include <fmt/format.h>

#include "request.h"

namespace easel::server {

std::string sha256_hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

std::string random_hex(int bytes) {
    std::vector<unsigned char> b(static_cast<size_t>(bytes));
    if (RAND_bytes(b.data(), bytes) != 1) {  // OpenSSL's CSPRNG; std::random_device as a fallback
        std::random_device rd;
        for (auto& c : b) c = static_cast<unsigned char>(rd());
    }
    std::string out;
    for (unsigned char c : b) out += fmt::format("{:02x}", c);
    return out;
}

std::string new_key_secret() { return "easel_" + random_hex(20); }
std::string new_key_id() { return "k" + random_hex(6); }

bool constant_time_equal(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool BasicCredentials::check(const std::string& b64) const {
    auto decoded = base64_decode(b64, "Authorization");
    if (!decoded) return false;
    const size_t colon = decoded->find(':');
    if (colon == std::string::npos) return false;
    const std::string user = decoded->substr(0, colon), pass = decoded->substr(colon + 1);
    bool match = false;
    for (const auto& [u, p] : users) {
        const bool user_ok = constant_time_equal(u, user), pass_ok = constant_time_equal(p, pass);  // both, always
        match = match || (user_ok && pass_ok);
    }
    return match;
}

bool parse_basic_credentials(const std::string& spec, BasicCredentials* out, std::string* error) {
    size_t start = 0;
    while (start <= spec.size()) {
        const size_t comma = spec.find(',', start);
        const std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const size_t colon = item.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
            *error = fmt::format("expected user:password[,user2:password2], got an item '{}'", item);
            return false;
        }
        out->users.emplace_back(item.substr(0, colon), item.substr(colon + 1));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return true;
}

bool RateLimiter::allow(const std::string& key_id, int64_t per_minute, int64_t now_ms, int* retry_after_s) {
    if (per_minute <= 0) return true;
    std::lock_guard<std::mutex> lk(mu_);
    auto& q = hits_[key_id];
    while (!q.empty() && q.front() <= now_ms - 60000) q.pop_front();
    if (int64_t(q.size()) >= per_minute) {
        *retry_after_s = int((q.front() + 60000 - now_ms + 999) / 1000);
        if (*retry_after_s < 1) *retry_after_s = 1;
        return false;
    }
    q.push_back(now_ms);
    return true;
}

}  // namespace easel::server
