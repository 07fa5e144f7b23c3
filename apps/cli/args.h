// A small command-line flag parser: flags are declared with a help line and a default, so `--help` is always
// complete and every bad flag gets a one-line error naming it.
//
//   Args a("generate", "Generate images from a prompt.");
//   auto& steps = a.add_int("--steps", "", 20, "sampling steps");
//   auto& prompt = a.add_string("--prompt", "-p", "", "what to draw", /*required=*/true);
//   EASEL_TRY(a.parse(argc, argv));   // "--steps: expected an integer, got 'ten'"
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/error.h"

namespace easel::cli {

struct Flag {
    enum class Kind { String, Int, Double, Bool } kind = Kind::String;
    std::string name, short_name, help, default_text;
    bool required = false;
    bool seen = false;
    std::string s;
    std::vector<std::string> all;  // a string flag given several times: every value, in order (s is the last)
    int64_t i = 0;
    double d = 0;
    bool b = false;
};

class Args {
public:
    Args(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}

    Flag& add_string(const std::string& name, const std::string& short_name, const std::string& def,
                     const std::string& help, bool required = false);
    Flag& add_int(const std::string& name, const std::string& short_name, int64_t def, const std::string& help);
    Flag& add_double(const std::string& name, const std::string& short_name, double def, const std::string& help);
    Flag& add_bool(const std::string& name, const std::string& short_name, const std::string& help);

    // argv[0] is the first flag (the command word already removed). Sets help_requested() on -h/--help.
    Status parse(int argc, char** argv);
    bool help_requested() const { return help_; }
    std::string help() const;

private:
    std::string command_, summary_;
    std::deque<Flag> flags_;  // stable addresses
    bool help_ = false;
};

}  // namespace easel::cli
