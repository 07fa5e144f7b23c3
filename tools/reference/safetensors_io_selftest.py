"""Round-trip check of safetensors_io.py. Run: /usr/bin/python3 tools/reference/safetensors_io_selftest.py"""

import json
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import bf16_from_f32, load_file, load_metadata, save_file  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((3,)).astype(np.float64),
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f16": rng.standard_normal((5,)).astype(np.float16),
        "i8": np.arange(-3, 4, dtype=np.int8),
        "i16": np.array([[-300, 7]], dtype=np.int16),
        "i32": np.array([1 << 30, -5], dtype=np.int32),
        "i64": np.array([1 << 40], dtype=np.int64),
        "u8": np.array([0, 255], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    tensors = dict(arrays)
    try:
        import torch

        bf = torch.tensor([1.0, -2.5, 3.140625, 1e-3]).bfloat16()
        tensors["bf16_torch"] = bf
        tensors["f32_torch"] = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        expect_bf16 = bf.float().numpy()
    except ImportError:
        expect_bf16 = None
    tensors["bf16_np"] = bf16_from_f32(np.array([1.0, 1.00390625, -0.0], np.float32))
    meta = {"format": "pt", "note": "round trip"}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        save_file(tensors, path, metadata=meta)
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        assert n % 8 == 0, n
        header = json.loads(raw[8 : 8 + n])
        assert list(header)[0] == "__metadata__"
        for name, info in header.items():
            if name != "__metadata__":
                size = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2}.get(info["dtype"], 1)
                assert (8 + n + info["data_offsets"][0]) % size == 0, f"{name} misaligned"
        back = load_file(path)
        assert load_metadata(path) == meta
        for k, v in arrays.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
            assert np.array_equal(back[k], v), k
        if expect_bf16 is not None:
            assert back["bf16_torch"].dtype == np.float32
            assert np.array_equal(back["bf16_torch"], expect_bf16)
            assert np.array_equal(back["f32_torch"], np.arange(6, dtype=np.float32).reshape(2, 3))
        assert np.array_equal(back["bf16_np"], np.array([1.0, 1.0, -0.0], np.float32))  # 1+2^-8 ties to even
    print(f"safetensors_io self-test passed ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
