// Loading and comparing goldens (tests/golden/data, written by tools/reference/*.py): every test opens its
// golden file through golden_file(), which reads it once per process and fails with the script that writes it,
// and compares whole tensors through expect_close(), which prints one line per comparison (compare.h).
//
//   const WeightSet& g = golden_file("clip_layers_tiny.safetensors");
//   expect_close(te.encode(c, ids, 1), golden_tensor(g, "l.last_hidden_state"), {.atol = 1e-5, .rtol = 1e-4},
//                "l.last_hidden_state");
#pragma once

#include <string>

#include "common/compare.h"
#include "io/weights.h"

namespace easel::testing {

// tests/golden/data/<name> (a safetensors file), read once per process. A missing or unreadable file aborts the
// test binary with the path and the tools/reference script named in its metadata ("script"), if any.
const WeightSet& golden_file(const std::string& name);

// The tensor `name` of a golden file; a missing name fails the test (ADD_FAILURE) and returns an empty tensor.
const Tensor& golden_tensor(const WeightSet& golden, const std::string& name);

// Compares the whole tensors, prints "<label> <summary>" and records a failure (with the summary) when any
// element is outside the tolerance or the shapes differ. Returns whether it passed.
bool expect_close(const Tensor& got, const Tensor& ref, Tolerance tol, const std::string& label);

}  // namespace easel::testing
