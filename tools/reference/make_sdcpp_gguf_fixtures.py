"""The tiny SDXL single file as stable-diffusion.cpp writes GGUF: tests/golden/data/sdxl_gguf_sdcpp/.

stable-diffusion.cpp (built outside the repository; its `sd-cli -M convert`) turns
tests/golden/data/pipeline_sdxl_single/tiny-sdxl.safetensors into q8_0 and q4_0 GGUF files. It keeps the
checkpoint's tensor names (model.diffusion_model.*, conditioner.embedders.*, first_stage_model.*) and quantizes
every tensor whose rows are whole blocks of 32, the 1-D norm weights and biases included; the rest stay f16. It
writes no key-value pairs. The tiny model's sizes cannot be told from its shapes alone (8-channel UNet levels,
4-layer text encoders), so this script copies the safetensors' four easel.config.* strings into the GGUF's
key-value section, as a real SDXL file needs none of them. Tensor data is copied unchanged.

    python3 tools/reference/make_sdcpp_gguf_fixtures.py /path/to/sd-cli

Needs only the Python standard library and the peer's binary.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, "tests", "golden", "data", "pipeline_sdxl_single", "tiny-sdxl.safetensors")
OUT = os.path.join(ROOT, "tests", "golden", "data", "sdxl_gguf_sdcpp")
ALIGN = 32  # GGUF's default general.alignment


def easel_configs(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n)).get("__metadata__", {})
    return {k: v for k, v in meta.items() if k.startswith("easel.config.")}


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def add_string_kvs(data, kvs):
    """The GGUF `data` (v2/v3, no key-value pairs) with `kvs` as string pairs; tensor infos and data unchanged."""
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF" and version in (2, 3) and n_kv == 0, (magic, version, n_kv)
    p = 24
    for _ in range(n_tensors):  # name, n_dims, dims, type, offset
        p += 8 + struct.unpack_from("<Q", data, p)[0]
        p += 4 + 8 * struct.unpack_from("<I", data, p)[0] + 4 + 8
    infos = data[24:p]
    old_start = (p + ALIGN - 1) // ALIGN * ALIGN
    out = bytearray(struct.pack("<4sIQQ", magic, version, n_tensors, len(kvs)))
    for k, v in kvs.items():
        out += gguf_string(k) + struct.pack("<I", 8) + gguf_string(v)  # 8: string
    out += infos
    out += b"\0" * ((len(out) + ALIGN - 1) // ALIGN * ALIGN - len(out))
    return bytes(out + data[old_start:])


def main():
    peer = sys.argv[1]
    version = subprocess.run([peer, "--version"], capture_output=True, text=True).stdout.strip()
    os.makedirs(OUT, exist_ok=True)
    kvs = easel_configs(SRC)
    for qtype in ("q8_0", "q4_0"):
        with tempfile.TemporaryDirectory() as tmp:
            raw = os.path.join(tmp, "raw.gguf")
            subprocess.run([peer, "-M", "convert", "-m", SRC, "-o", raw, "--type", qtype], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(raw, "rb") as f:
                data = f.read()
        dst = os.path.join(OUT, f"tiny-sdxl-{qtype}.gguf")
        with open(dst, "wb") as f:
            f.write(add_string_kvs(data, kvs))
        print(f"{dst}: {len(data)} bytes from the peer ({version or 'sd-cli'}), {len(kvs)} config strings added")


if __name__ == "__main__":
    main()
