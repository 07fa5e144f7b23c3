#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace easel::cli {

Flag& Args::add_string(const std::string& name, const std::string& short_name, const std::string& def,
                       const std::string& help, bool required) {
    Flag f;
    f.kind = Flag::Kind::String;
    f.name = name;
    f.short_name = short_name;
    f.help = help;
    f.s = def;
    f.required = required;
    f.default_text = required ? "required" : (def.empty() ? "" : "default: " + def);
    flags_.push_back(f);
    return flags_.back();
}

Flag& Args::add_int(const std::string& name, const std::string& short_name, int64_t def, const std::string& help) {
    Flag f;
    f.kind = Flag::Kind::Int;
    f.name = name;
    f.short_name = short_name;
    f.help = help;
    f.i = def;
    f.default_text = "default: " + std::to_string(def);
    flags_.push_back(f);
    return flags_.back();
}

Flag& Args::add_double(const std::string& name, const std::string& short_name, double def, const std::string& help) {
    Flag f;
    f.kind = Flag::Kind::Double;
    f.name = name;
    f.short_name = short_name;
    f.help = help;
    f.d = def;
    f.default_text = fmt::format("default: {:g}", def);
    flags_.push_back(f);
    return flags_.back();
}

Flag& Args::add_bool(const std::string& name, const std::string& short_name, const std::string& help) {
    Flag f;
    f.kind = Flag::Kind::Bool;
    f.name = name;
    f.short_name = short_name;
    f.help = help;
    flags_.push_back(f);
    return flags_.back();
}

Status Args::parse(int argc, char** argv) {
    for (int k = 0; k < argc; ++k) {
        std::string a = argv[k];
        if (a == "-h" || a == "--help") {
            help_ = true;
            return ok();
        }
        std::string value;
        bool has_value = false;
        if (a.rfind("--", 0) == 0) {
            const auto eq = a.find('=');
            if (eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
                has_value = true;
            }
        }
        Flag* f = nullptr;
        for (Flag& x : flags_)
            if (x.name == a || (!x.short_name.empty() && x.short_name == a)) f = &x;
        if (!f)
            return Error::invalid_argument(fmt::format("unknown option '{}'; see 'easel {} --help'", a, command_));
        f->seen = true;
        if (f->kind == Flag::Kind::Bool) {
            if (has_value) return Error::invalid_argument("takes no value", f->name);
            f->b = true;
            continue;
        }
        if (!has_value) {
            if (k + 1 >= argc) return Error::invalid_argument("expects a value", f->name);
            value = argv[++k];
        }
        switch (f->kind) {
            case Flag::Kind::String: f->s = value; f->all.push_back(value); break;
            case Flag::Kind::Int: {
                errno = 0;
                char* end = nullptr;
                const long long v = std::strtoll(value.c_str(), &end, 10);
                if (value.empty() || *end != '\0' || errno == ERANGE)
                    return Error::invalid_argument(fmt::format("expected an integer, got '{}'", value), f->name);
                f->i = v;
                break;
            }
            case Flag::Kind::Double: {
                errno = 0;
                char* end = nullptr;
                const double v = std::strtod(value.c_str(), &end);
                if (value.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
                    return Error::invalid_argument(fmt::format("expected a number, got '{}'", value), f->name);
                f->d = v;
                break;
            }
            case Flag::Kind::Bool: break;
        }
    }
    for (const Flag& f : flags_)
        if (f.required && !f.seen) return Error::invalid_argument("is required", f.name);
    return ok();
}

std::string Args::help() const {
    std::string s = fmt::format("usage: easel {} [options]\n\n{}\n\noptions:\n", command_, summary_);
    for (const Flag& f : flags_) {
        std::string names = f.short_name.empty() ? "    " + f.name : f.short_name + ", " + f.name;
        if (f.kind != Flag::Kind::Bool) names += f.kind == Flag::Kind::String ? " TEXT" : f.kind == Flag::Kind::Int ? " N" : " X";
        s += fmt::format("  {:<28} {}{}\n", names, f.help, f.default_text.empty() ? "" : " (" + f.default_text + ")");
    }
    s += fmt::format("  {:<28} this text\n", "-h, --help");
    return s;
}

}  // namespace easel::cli
