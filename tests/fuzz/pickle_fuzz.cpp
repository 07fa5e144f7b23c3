// Fuzz target: arbitrary bytes as a pickle, interpreted with the checkpoint allow-list. Any input must yield a
// value tree or an Error (no crash, hang, unbounded allocation), and an accepted tree may only reference
// allowed globals. Seeds: tests/fuzz/corpus/pickle/ (tools/reference/make_pickle_corpus.py: every protocol's
// benign pickle and the hostile ones).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <unordered_set>
#include <vector>

#include "io/pickle.h"
#include "io/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    easel::PickleOptions opt;
    opt.allowed = easel::torch_checkpoint_globals();
    opt.limits.max_bytes = size_t(64) << 20;
    opt.source = "fuzz.pkl";
    auto doc = easel::parse_pickle(data, size, opt);
    if (!doc) return 0;
    if (doc->end_offset > size) std::abort();
    // Walk the whole graph once (it may share values and contain cycles): every global must be allowed.
    std::unordered_set<const easel::PickleValue*> seen;
    std::vector<const easel::PickleValue*> todo{doc->root};
    while (!todo.empty()) {
        const easel::PickleValue* v = todo.back();
        todo.pop_back();
        if (!v || !seen.insert(v).second) continue;
        if (v->kind == easel::PickleKind::Global) {
            bool allowed = false;
            for (const auto& g : opt.allowed)
                allowed |= v->text.size() == g.module.size() + 1 + g.name.size() && v->text.starts_with(g.module) &&
                           v->text.ends_with(g.name);
            if (!allowed) std::abort();
        }
        if (v->kind == easel::PickleKind::Call && (!v->callee || v->callee->kind != easel::PickleKind::Global)) std::abort();
        for (const auto* c : v->items) todo.push_back(c);
        for (const auto& [k, x] : v->entries) {
            todo.push_back(k);
            todo.push_back(x);
        }
        if (v->state) todo.push_back(v->state);
    }
    return 0;
}
