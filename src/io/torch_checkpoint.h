// PyTorch checkpoints (.ckpt / .pt / .pth / .bin written by torch.save): the weights, read without ever running
// the pickle inside. The file is a zip archive (torch >= 1.6) whose `<top>/data.pkl` is a pickle that our inert
// interpreter (io/pickle.h) turns into a value tree; only the globals that rebuild tensors are honoured, every
// other global is refused by name. Each tensor becomes a zero-copy strided view over its stored member
// `<top>/data/<key>`; views of one storage share it. The pre-1.6 "legacy" format (magic number + pickles +
// raw storages) is read as well.
//
//   EASEL_TRY_ASSIGN(WeightSet w, read_torch_checkpoint("v1-5-pruned-emaonly.ckpt"));
//   const Tensor* t = w.find("model.diffusion_model.input_blocks.0.0.weight");   // [320, 4, 3, 3]
//   // a top-level "state_dict" (Lightning) is unwrapped; nested dicts are flattened with '.';
//   // non-tensor leaves (global_step, epoch, callbacks...) are skipped and listed at debug level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/error.h"
#include "io/pickle.h"
#include "io/weights.h"

namespace easel {

// Reads a checkpoint file: zip format or the legacy format, detected from its first bytes.
Result<WeightSet> read_torch_checkpoint(const std::string& path);

// The same from bytes in memory (tests, fuzzing, a file already mapped). `keep_alive` owns `data` and is
// shared by every returned tensor (pass an empty pointer when the caller guarantees `data` outlives them).
// `name` is used in messages only.
Result<WeightSet> read_torch_checkpoint_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                              const std::string& name);

// The pickle globals a checkpoint may name: the tensor rebuild functions and storage types, the containers
// (collections.OrderedDict, set, torch.Size), and as inert records the training state that real SD 1.x/2.x
// checkpoints carry (pytorch_lightning ModelCheckpoint, numpy scalars and dtypes, _codecs.encode). It follows
// the list AUTOMATIC1111's modules/safe.py accepts, plus the remaining storage dtypes, torch.Size, frozenset and
// _rebuild_from_type_v2; its _rebuild_device_tensor_from_numpy (numpy-array tensors) is not accepted.
std::span<const AllowedGlobal> torch_checkpoint_globals();

}  // namespace easel
