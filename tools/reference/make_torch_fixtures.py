#!/usr/bin/python3
"""Writes the benign PyTorch checkpoint fixtures under tests/data/ckpt/ (read by tests/unit/torch_checkpoint_test).

Run with Debian's python (it has torch 1.13):  /usr/bin/python3 tools/reference/make_torch_fixtures.py

Each fixture <name>.pt is written by torch.save; next to it <name>.expect.json lists, in dict order, every
tensor the C++ reader must return: flattened name, dtype, shape and the row-major little-endian bytes (hex) of
the tensor's values, so the test checks every element bit-exactly without trusting any other reader of ours.
It also lists the metadata (top-level scalars beside a state_dict) the reader must report.

Deterministic: values come from torch.arange and a seeded generator; rerunning rewrites identical tensors
(zip member timestamps may differ). Everything stays tiny (< 100 KB in all).
"""
import collections
import io
import json
import os
import struct
import sys
import types
import zipfile

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "ckpt")
DTYPE_NAMES = {
    torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64",
    torch.int64: "int64", torch.int32: "int32", torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8",
    torch.bool: "bool",
}


def tensor_bytes(t):
    """Row-major little-endian bytes of t's values (bf16 via its raw 16-bit pattern; numpy has no bf16)."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def flatten(d, prefix, out):
    for k, v in d.items():
        name = prefix + str(k)
        if isinstance(v, torch.Tensor):
            out.append({"name": name, "dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape),
                        "hex": tensor_bytes(v).hex()})
        elif isinstance(v, dict):
            flatten(v, name + ".", out)


def write(name, obj, legacy=False, metadata=None):
    path = os.path.join(OUT, name + ".pt")
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    weights = obj["state_dict"] if "state_dict" in obj else obj
    tensors = []
    flatten(weights, "", tensors)
    # Round trip through torch itself, so the expectations are what torch.load returns.
    back = torch.load(path)
    back_w = back["state_dict"] if "state_dict" in back else back
    again = []
    flatten(back_w, "", again)
    assert again == tensors, name
    expect = {"source": "tools/reference/make_torch_fixtures.py", "torch": torch.__version__,
              "tensors": tensors, "metadata": metadata or {}}
    with open(os.path.join(OUT, name + ".expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
    return path


def fake_lightning():
    """Stand-ins for the pytorch_lightning classes that real SD 1.x checkpoints pickle (module and class names
    are what matter to the pickle; the package itself is not installed here)."""
    for n in ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]:
        sys.modules.setdefault(n, types.ModuleType(n))

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    sys.modules["pytorch_lightning.callbacks.model_checkpoint"].ModelCheckpoint = ModelCheckpoint
    return ModelCheckpoint


def rezip(src, dst, compression, zip64=False):
    """Copies a checkpoint's members into a new archive: deflated (someone re-zipped it) or ZIP64."""
    with zipfile.ZipFile(src) as zin:
        members = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    if not zip64:
        with zipfile.ZipFile(dst, "w", compression=compression) as zout:
            for n, data in members:
                zout.writestr(n, data)
        return
    # Python's zipfile only writes ZIP64 records for archives that need them, so write them by hand
    # (APPNOTE 4.3.14/4.3.15/4.5.3): every 32-bit size and offset says 0xFFFFFFFF and the real values sit in
    # the ZIP64 extra field and end records, as in a >4 GB checkpoint.
    out = bytearray()
    central = bytearray()
    for n, data in members:
        nb = n.encode()
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        off = len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb),
                           len(local_extra)) + nb + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(nb), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + nb + extra
    cd_off = len(out)
    out += central
    z64_off = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, len(members), len(members), len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064b50, 0, z64_off, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)
    with zipfile.ZipFile(dst) as check:  # Python's reader must agree it is a valid ZIP64 archive
        assert [(i.filename, check.read(i.filename)) for i in check.infolist()] == members


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1234)

    # Every storage dtype, incl. odd values (subnormals, inf, nan, -0.0) so bit-exactness means something.
    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6e-8, float("inf"), float("-inf"), float("nan"), 1e-40])
    dtypes = {
        "f32": torch.cat([special, torch.randn(6, generator=g)]).reshape(4, 4),
        "f16": torch.cat([special, torch.randn(5, generator=g)]).half().reshape(3, 5),
        "bf16": torch.cat([special, torch.randn(2, generator=g)]).bfloat16().reshape(2, 2, 3),
        "f64": torch.randn(3, generator=g, dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**62, -(2**63), 7]),
        "i32": torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    dtypes_path = write("dtypes", dtypes)

    # Views: a transpose, a row, a column, a block and a tensor saved once under two names all share one storage.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = {"base": base, "t": base.t(), "row": base[1], "col": base[:, 2], "block": base[1:3, 2:5],
             "alias": base, "expanded": torch.arange(3, dtype=torch.float32).reshape(3, 1).expand(3, 4)}
    write("views", views)

    # A Lightning-style SD checkpoint: weights under state_dict, training state beside it.
    ModelCheckpoint = fake_lightning()
    cb = ModelCheckpoint()
    cb.monitor = None
    cb.best_model_score = np.float64(0.25)
    sd = collections.OrderedDict()
    sd["model.diffusion_model.input_blocks.0.0.weight"] = torch.randn(4, 2, 3, 3, generator=g)
    sd["model.diffusion_model.input_blocks.0.0.bias"] = torch.randn(4, generator=g)
    sd["first_stage_model.decoder.conv_out.weight"] = torch.randn(3, 4, 1, 1, generator=g).half()
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(5).reshape(1, 5)
    lightning = {"epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2", "state_dict": sd,
                 "callbacks": {ModelCheckpoint: {"best_model_score": np.float64(0.25), "monitor": None}},
                 "optimizer_states": [], "lr_schedulers": [], "checkpoint_callback": cb}
    write("lightning", lightning,
          metadata={"epoch": "6", "global_step": "470000", "pytorch-lightning_version": "1.4.2"})

    # nn.Module state dicts (OrderedDict with a _metadata attribute) nested in plain dicts, plus a Parameter.
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    nested = {"unet": {"conv_in": net.state_dict(), "scale": torch.nn.Parameter(torch.tensor([0.5, 2.0]))},
              "step": 3, "name": "tiny", 7: torch.tensor([7], dtype=torch.int32)}
    write("nested", nested)

    # The pre-1.6 format, with views of one storage.
    b2 = torch.arange(12, dtype=torch.float16).reshape(3, 4)
    write("legacy", {"w": b2, "wt": b2.t(), "tail": b2[2, 1:], "bias": torch.tensor([1.5, -2.0]),
                     "idx": torch.tensor([3, 1], dtype=torch.int64)}, legacy=True)

    # Re-zipped archives: deflated members (unaligned, inflated by the reader) and ZIP64 records.
    for name, kind in [("dtypes_deflate", "deflate"), ("dtypes_zip64", "zip64")]:
        dst = os.path.join(OUT, name + ".pt")
        rezip(dtypes_path, dst, zipfile.ZIP_DEFLATED if kind == "deflate" else zipfile.ZIP_STORED, kind == "zip64")
        loaded = torch.load(dst)
        assert all(torch.equal(loaded[k], v) or (v.is_floating_point() and torch.equal(loaded[k].isnan(), v.isnan()))
                   for k, v in dtypes.items()), name
        with open(os.path.join(OUT, "dtypes.expect.json")) as f:
            expect = json.load(f)
        with open(os.path.join(OUT, name + ".expect.json"), "w") as f:
            json.dump(expect, f, indent=1)

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if os.path.isfile(os.path.join(OUT, f)))
    print(f"wrote fixtures to {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
