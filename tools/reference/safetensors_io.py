"""Minimal safetensors reader/writer for our reference scripts (numpy only; torch optional).

We do not depend on the `safetensors` package: the format is small and every reference script must run with
Debian's /usr/bin/python3 (torch 1.13, numpy) and nothing else.

    from safetensors_io import save_file, load_file, load_metadata
    save_file({"x": np.zeros((2, 3), np.float32), "w": torch.randn(4).bfloat16()}, "out.safetensors",
              metadata={"script": "make_x.py"})
    t = load_file("out.safetensors")          # {"w": float32 array (from bf16), "x": float32 array}
    meta = load_metadata("out.safetensors")   # {"script": "make_x.py"}

File layout (as the safetensors library writes it):
    u64 little-endian N | N bytes of JSON header, space-padded to a multiple of 8 | data section
    header = {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}
    offsets are relative to the start of the data section.
Like the library, tensors are laid out by decreasing element size and then by name, so with an 8-aligned
header every tensor's data is aligned to its element size. The JSON is compact and lists __metadata__ first,
then the tensors in data order.
"""

import json
import struct

import numpy as np

# safetensors dtype string -> (numpy dtype of the stored bits, element size)
_DTYPES = {
    "F64": (np.float64, 8),
    "F32": (np.float32, 4),
    "F16": (np.float16, 2),
    "BF16": (np.uint16, 2),  # raw bits; load_file widens to float32
    "I64": (np.int64, 8),
    "I32": (np.int32, 4),
    "I16": (np.int16, 2),
    "I8": (np.int8, 1),
    "U64": (np.uint64, 8),
    "U32": (np.uint32, 4),
    "U16": (np.uint16, 2),
    "U8": (np.uint8, 1),
    "BOOL": (np.bool_, 1),
}

_NUMPY_TO_ST = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64",
    np.dtype(np.uint32): "U32",
    np.dtype(np.uint16): "U16",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}


class RawTensor:
    """Bytes with an explicit safetensors dtype string and shape, written as given.

    For dtypes numpy lacks (BF16 from float32 values via bf16_from_f32, F8_E4M3 in test fixtures) and for
    deliberately inconsistent fixtures: no check that len(data) matches the shape.
    """

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = list(shape)
        self.data = bytes(data)


def bf16_from_f32(values):
    """float32 array -> RawTensor of BF16, rounded to nearest even (as torch's .bfloat16())."""
    a = np.array(values, dtype=np.float32)
    u = a.reshape(-1).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a.reshape(-1))
    rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return RawTensor("BF16", a.shape, rounded.astype("<u2").tobytes())


def _to_raw(name, t):
    if isinstance(t, RawTensor):
        return t
    if type(t).__module__.startswith("torch"):
        import torch

        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            bits = t.view(torch.int16).numpy().view(np.uint16)
            return RawTensor("BF16", t.shape, bits.astype("<u2").tobytes())
        t = t.numpy()
    a = np.asarray(t)
    if a.dtype not in _NUMPY_TO_ST:
        raise TypeError(f"{name}: unsupported dtype {a.dtype}")
    st = _NUMPY_TO_ST[a.dtype]
    # not ascontiguousarray: it turns a 0-d array into shape [1]. tobytes() is C order anyway.
    shape = a.shape
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return RawTensor(st, shape, a.tobytes(order="C"))


def _elem_size(dtype):
    return _DTYPES[dtype][1] if dtype in _DTYPES else 1  # F8_* and unknown fixture dtypes: 1 byte


def serialize(tensors, metadata=None):
    """Returns the bytes of a safetensors file (see save_file)."""
    raws = {name: _to_raw(name, t) for name, t in tensors.items()}
    order = sorted(raws, key=lambda n: (-_elem_size(raws[n].dtype), n))
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata must be str -> str, got {k!r}: {v!r}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in order:
        r = raws[name]
        header[name] = {"dtype": r.dtype, "shape": r.shape, "data_offsets": [offset, offset + len(r.data)]}
        offset += len(r.data)
    hbytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    return struct.pack("<Q", len(hbytes)) + hbytes + b"".join(raws[n].data for n in order)


def save_file(tensors, path, metadata=None):
    """Writes `tensors` (name -> numpy array, torch tensor or RawTensor) to `path`."""
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


def _read_header(buf):
    if len(buf) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"header length {n} exceeds file size {len(buf)}")
    header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    return header, 8 + n


def load_metadata(path):
    """The __metadata__ dict (empty if absent)."""
    with open(path, "rb") as f:
        buf = f.read()
    header, _ = _read_header(buf)
    return dict(header.get("__metadata__", {}))


def load_file(path):
    """name -> numpy array; BF16 comes back as float32 (exact). F8 types raise."""
    with open(path, "rb") as f:
        buf = f.read()
    header, start = _read_header(buf)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        np_dtype, size = _DTYPES[dtype]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * size or start + end > len(buf):
            raise ValueError(f"{name}: data_offsets {begin},{end} do not match shape {shape} of {dtype}")
        a = np.frombuffer(buf, dtype=np.dtype(np_dtype).newbyteorder("<"), count=count, offset=start + begin)
        a = a.reshape(shape).copy()
        if dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
    return out
