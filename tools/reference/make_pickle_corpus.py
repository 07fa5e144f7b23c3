#!/usr/bin/python3
"""Writes the pickle test corpus: hostile pickles and checkpoints, and benign pickles with their expected trees.

    /usr/bin/python3 tools/reference/make_pickle_corpus.py

It NEVER unpickles anything. Hostile files are assembled opcode by opcode from raw bytes; they are checked
only with pickletools.dis (a disassembler that runs no code) where they are meant to be well-formed pickles.

  tests/data/pickle/malicious/*.pkl      raw pickles; MANIFEST.json says, per file, the error code the
                                         interpreter must return and a substring its message must contain
  tests/data/ckpt/malicious/*.pt         hostile zip archives / checkpoints; same MANIFEST.json scheme
  tests/data/pickle/benign/proto<N>.pkl  pickle.dumps(SAMPLE, protocol=N) for N = 0..5, and proto<N>.tree:
                                         the value tree our interpreter must build, in the rendering that
                                         tests/unit/pickle_test.cpp prints (see render() below)
  tests/fuzz/corpus/{pickle,ckpt}/       seeds for the fuzz targets (copies of all of the above)

Payloads that would run a command run `touch EASEL_PWNED` in the current directory; the tests run the
reader inside an empty temporary directory and assert that file never appears.
"""
import collections
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import zipfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PKL_DIR = os.path.join(ROOT, "tests", "data", "pickle")
CKPT_DIR = os.path.join(ROOT, "tests", "data", "ckpt")
FUZZ_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus")
CMD = "touch EASEL_PWNED"


# ---- opcode helpers (names as in pickletools) ----
def proto(n): return b"\x80" + bytes([n])
def uni(s):
    b = s.encode()
    return (b"\x8c" + bytes([len(b)]) if len(b) < 256 else b"X" + struct.pack("<I", len(b))) + b
def binuni(s): b = s.encode(); return b"X" + struct.pack("<I", len(b)) + b
def glob(module, name): return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
def binint1(v): return b"K" + bytes([v])
def binput(i): return b"q" + bytes([i])
def binget(i): return b"h" + bytes([i])
MARK, STOP, TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"(", b".", b"t", b"\x85", b"\x86", b"\x87"
REDUCE, BUILD, EMPTY_DICT, EMPTY_TUPLE, EMPTY_LIST = b"R", b"b", b"}", b")", b"]"
SETITEM, SETITEMS, APPEND, NONE, NEWFALSE, NEWTRUE = b"s", b"u", b"a", b"N", b"\x89", b"\x88"
NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE, BINPERSID, POP = b"\x81", b"\x92", b"\x93", b"\x94", b"Q", b"0"


def frame(body): return b"\x95" + struct.pack("<Q", len(body)) + body


def call(module, name, *args):
    """module.name(*args) as GLOBAL + args tuple + REDUCE."""
    return glob(module, name) + MARK + b"".join(args) + TUPLE + REDUCE


def rebuild_tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    """torch._utils._rebuild_tensor_v2 exactly as torch.save writes it."""
    pid = MARK + uni("storage") + glob("torch", storage) + uni(key) + uni("cpu") + int_op(numel) + TUPLE + BINPERSID
    tup = lambda xs: MARK + b"".join(int_op(x) for x in xs) + TUPLE
    hooks = glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    return (glob("torch._utils", "_rebuild_tensor_v2") + MARK + pid + int_op(offset) + tup(size) + tup(stride) +
            NEWFALSE + hooks + TUPLE + REDUCE)


def int_op(v):
    if 0 <= v < 256: return binint1(v)
    if -2**31 <= v < 2**31: return b"J" + struct.pack("<i", v)
    b = pickle.encode_long(v)
    return b"\x8a" + bytes([len(b)]) + b


def state_dict(*items):
    """{name: value, ...} with SETITEMS."""
    return EMPTY_DICT + MARK + b"".join(uni(k) + v for k, v in items) + SETITEMS


# ---- hostile pickles: (file, expected code, substring of the message, bytes, well-formed for pickletools?) ----
def malicious_pickles():
    cmd = uni(CMD)
    m = []
    add = lambda name, code, contains, data, wellformed=True: m.append((name, code, contains, data, wellformed))
    add("os_system_reduce.pkl", "refused", "'os.system'", proto(2) + glob("os", "system") + cmd + TUPLE1 + REDUCE + STOP)
    add("posix_system_reduce.pkl", "refused", "'posix.system'", proto(2) + glob("posix", "system") + cmd + TUPLE1 + REDUCE + STOP)
    add("nt_system_proto0.pkl", "refused", "'nt.system'", b"cnt\nsystem\n(S'" + CMD.encode() + b"'\ntR.")
    add("builtins_eval.pkl", "refused", "'builtins.eval'",
        proto(2) + glob("builtins", "eval") + uni("__import__('os').system('" + CMD + "')") + TUPLE1 + REDUCE + STOP)
    add("builtins_exec.pkl", "refused", "'builtins.exec'",
        proto(2) + glob("builtins", "exec") + uni("import os; os.system('" + CMD + "')") + TUPLE1 + REDUCE + STOP)
    add("builtin_eval_py2.pkl", "refused", "'__builtin__.eval'",
        b"c__builtin__\neval\n(Vimport os; os.system('" + CMD.encode() + b"')\ntR.")
    add("builtins_compile.pkl", "refused", "'builtins.compile'",
        proto(2) + glob("builtins", "compile") + uni("1") + uni("x") + uni("eval") + TUPLE3 + REDUCE + STOP)
    add("subprocess_popen.pkl", "refused", "'subprocess.Popen'",
        proto(2) + glob("subprocess", "Popen") + MARK + uni("touch") + uni("EASEL_PWNED") + b"l" + TUPLE1 + REDUCE + STOP)
    add("subprocess_check_output.pkl", "refused", "'subprocess.check_output'",
        proto(2) + glob("subprocess", "check_output") + cmd + TUPLE1 + REDUCE + STOP)
    # getattr(__import__('os'), 'system')('touch ...'): refused at the first global.
    add("getattr_chain.pkl", "refused", "'builtins.getattr'",
        proto(2) + glob("builtins", "getattr") + glob("builtins", "__import__") + uni("os") + TUPLE1 + REDUCE +
        uni("system") + TUPLE2 + REDUCE + cmd + TUPLE1 + REDUCE + STOP)
    add("builtin_getattr_py2.pkl", "refused", "'__builtin__.getattr'",
        proto(2) + glob("__builtin__", "getattr") + glob("__builtin__", "__import__") + uni("os") + TUPLE1 + REDUCE +
        uni("system") + TUPLE2 + REDUCE + cmd + TUPLE1 + REDUCE + STOP)
    # An allowed module with a disallowed name.
    add("torch_load.pkl", "refused", "'torch.load'", proto(2) + glob("torch", "load") + uni("x.pt") + TUPLE1 + REDUCE + STOP)
    add("torch_utils_other.pkl", "refused", "'torch._utils._rebuild_qtensor'",
        proto(2) + glob("torch._utils", "_rebuild_qtensor") + EMPTY_TUPLE + REDUCE + STOP)
    # A disallowed call hidden inside an allowed call's arguments.
    add("nested_reduce_in_rebuild.pkl", "refused", "'os.system'",
        proto(2) + glob("torch._utils", "_rebuild_tensor_v2") + MARK + glob("os", "system") + cmd + TUPLE1 + REDUCE +
        binint1(0) + EMPTY_TUPLE + EMPTY_TUPLE + NEWFALSE + NONE + TUPLE + REDUCE + STOP)
    add("nested_reduce_in_ordereddict.pkl", "refused", "'os.system'",
        proto(2) + glob("collections", "OrderedDict") + MARK + MARK + MARK + uni("k") + glob("os", "system") + cmd +
        TUPLE1 + REDUCE + TUPLE + b"l" + TUPLE + REDUCE + STOP)
    # INST and OBJ (protocol 0/1 instance creation).
    add("inst_os_system.pkl", "refused", "'os.system'", b"(S'" + CMD.encode() + b"'\nios\nsystem\n.")
    add("obj_os_system.pkl", "refused", "'os.system'", proto(1) + MARK + glob("os", "system") + binuni(CMD) + b"o.")
    add("obj_storage_class.pkl", "refused", "OBJ of 'torch.FloatStorage'",
        proto(2) + MARK + glob("torch", "FloatStorage") + binint1(4) + b"o" + STOP)
    add("inst_storage_class.pkl", "refused", "INST of 'torch.FloatStorage'", b"(I4\nitorch\nFloatStorage\n.")
    # STACK_GLOBAL whose strings come from the memo, and a global split across frames and MEMOIZE.
    add("stack_global_memo.pkl", "refused", "'os.system'",
        proto(4) + uni("os") + MEMOIZE + uni("system") + MEMOIZE + POP + POP + b"h\x00h\x01" + STACK_GLOBAL + cmd +
        TUPLE1 + REDUCE + STOP)
    add("stack_global_split_frames.pkl", "refused", "'subprocess.getoutput'",
        proto(4) + frame(uni("subprocess") + MEMOIZE + POP) + frame(uni("getoutput") + MEMOIZE + POP) +
        frame(b"h\x00h\x01" + STACK_GLOBAL + MEMOIZE + cmd + TUPLE1 + REDUCE + STOP))
    add("stack_global_builtins_getattr.pkl", "refused", "'builtins.getattr'",
        proto(4) + uni("builtins") + uni("getattr") + STACK_GLOBAL + STOP)
    # NEWOBJ / NEWOBJ_EX on a disallowed class, and on something that is not a class at all.
    add("newobj_disallowed.pkl", "refused", "'subprocess.Popen'",
        proto(4) + uni("subprocess") + uni("Popen") + STACK_GLOBAL + MARK + uni("touch") + uni("EASEL_PWNED") + b"l" +
        TUPLE1 + NEWOBJ + STOP)
    add("newobj_ex_disallowed.pkl", "refused", "'os.system'",
        proto(4) + uni("os") + uni("system") + STACK_GLOBAL + cmd + TUPLE1 + EMPTY_DICT + NEWOBJ_EX + STOP)
    add("newobj_on_string.pkl", "refused", "NEWOBJ on a str", proto(2) + uni("os.system") + EMPTY_TUPLE + NEWOBJ + STOP)
    add("reduce_on_string.pkl", "refused", "REDUCE on a str", proto(2) + uni("os.system") + cmd + TUPLE1 + REDUCE + STOP)
    add("reduce_on_tensor_record.pkl", "refused", "REDUCE on a call",
        proto(2) + glob("numpy", "dtype") + uni("f8") + TUPLE1 + REDUCE + EMPTY_TUPLE + REDUCE + STOP)
    # BUILD used to plant __setstate__ (the object's class is refused first), BUILD on a plain container.
    add("build_setstate_disallowed.pkl", "refused", "'argparse.Namespace'",
        proto(2) + glob("argparse", "Namespace") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + uni("__setstate__") +
        glob("os", "system") + SETITEM + BUILD + cmd + BUILD + STOP)
    add("build_on_list.pkl", "refused", "BUILD on a list",
        proto(2) + EMPTY_LIST + EMPTY_DICT + uni("__setstate__") + uni("x") + SETITEM + BUILD + STOP)
    add("build_on_global.pkl", "refused", "BUILD on a global",
        proto(2) + glob("torch", "FloatStorage") + EMPTY_DICT + BUILD + STOP)
    # Allowed names used outside the shapes they take.
    add("reduce_storage_class.pkl", "refused", "REDUCE of 'torch.FloatStorage'",
        proto(2) + glob("torch", "FloatStorage") + binint1(4) + TUPLE1 + REDUCE + STOP)
    add("rebuild_wrong_arity.pkl", "refused", "'torch._utils._rebuild_tensor_v2' with 2 arguments",
        proto(2) + glob("torch._utils", "_rebuild_tensor_v2") + NONE + NONE + TUPLE2 + REDUCE + STOP)
    add("ordereddict_bad_items.pkl", "refused", "'collections.OrderedDict'",
        proto(2) + glob("collections", "OrderedDict") + MARK + uni("ab") + b"l" + TUPLE1 + REDUCE + STOP)
    # Extension registry codes (could name any global).
    add("ext1.pkl", "refused", "extension code 1", proto(2) + b"\x82\x01" + cmd + TUPLE1 + REDUCE + STOP)
    add("ext2.pkl", "refused", "extension code 258", proto(2) + b"\x83\x02\x01" + STOP)
    add("ext4.pkl", "refused", "extension code 16909060", proto(2) + b"\x84\x04\x03\x02\x01" + STOP)
    # Resource exhaustion.
    add("deep_marks.pkl", "resource_exhausted", "nested MARKs", proto(2) + MARK * 100000 + STOP, False)
    add("huge_long4.pkl", "bad_file", "LONG4", proto(2) + b"\x8b" + struct.pack("<I", 0x7FFFFFFF) + b"\x01\x02\x03", False)
    add("huge_binunicode8.pkl", "bad_file", "BINUNICODE", proto(4) + b"\x8d" + struct.pack("<Q", 2**62) + b"abc", False)
    add("huge_binbytes8.pkl", "bad_file", "BINBYTES", proto(4) + b"\x8e" + struct.pack("<Q", 2**64 - 1) + b"abc", False)
    add("huge_binunicode.pkl", "bad_file", "BINUNICODE", proto(2) + b"X" + struct.pack("<I", 2**32 - 1) + b"abc", False)
    add("huge_frame.pkl", "bad_file", "FRAME", proto(4) + b"\x95" + struct.pack("<Q", 2**63) + STOP, False)
    add("huge_bytearray8.pkl", "bad_file", "BYTEARRAY8", proto(5) + b"\x96" + struct.pack("<Q", 2**40) + STOP, False)
    # Malformed streams.
    add("no_stop.pkl", "bad_file", "without a STOP", proto(2) + EMPTY_DICT, False)
    add("empty.pkl", "bad_file", "without a STOP", b"", False)
    add("unknown_opcode.pkl", "bad_file", "unknown opcode 0xff", proto(2) + b"\xff" + STOP, False)
    add("protocol_6.pkl", "unsupported", "protocol 6", proto(6) + NONE + STOP, False)
    add("memo_undefined.pkl", "bad_file", "memo key 7", proto(2) + binget(7) + STOP, False)
    add("next_buffer.pkl", "unsupported", "NEXT_BUFFER", proto(5) + b"\x97" + STOP, False)
    add("stack_underflow.pkl", "bad_file", "stack is empty", proto(2) + REDUCE + STOP, False)
    add("setitem_on_list.pkl", "bad_file", "SETITEM on a list", proto(2) + EMPTY_LIST + uni("a") + uni("b") + SETITEM + STOP, False)
    add("invalid_utf8.pkl", "bad_file", "UTF-8", proto(2) + b"X\x02\x00\x00\x00\xc3\x28" + STOP, False)
    return m


# ---- hostile checkpoints ----
def zip_bytes(members, aligned=True):
    """A stored zip archive as torch writes it: members [(name, data)], data 64-byte aligned via the extra field.
    Written by hand so that names and sizes are exactly what a test needs (zipfile would fix some)."""
    out, central = bytearray(), bytearray()
    for name, data in members:
        nb = name.encode()
        crc = zipfile.crc32(data) & 0xFFFFFFFF
        off = len(out)
        pad = (-(off + 30 + len(nb) + 4)) % 64 if aligned else 0
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad if aligned else b""
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 0, 0, 0, 0, 0, crc, len(data), len(data), len(nb), len(extra))
        out += nb + extra + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0, 0, 0, 0, 0, 0, crc, len(data), len(data), len(nb),
                               0, 0, 0, 0, 0, off) + nb
    cd = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(members), len(members), len(central), cd, 0)
    return bytes(out)


def ckpt(pkl, storages=()):
    """A checkpoint archive holding `pkl` as archive/data.pkl and the given (key, bytes) storages."""
    return zip_bytes([("archive/data.pkl", pkl)] + [("archive/data/" + k, b) for k, b in storages] +
                     [("archive/version", b"3\n")])


def malicious_checkpoints():
    m = []
    add = lambda name, code, contains, data: m.append((name, code, contains, data))
    f32x6 = struct.pack("<6f", *range(6))
    good_pkl = proto(2) + state_dict(("w", rebuild_tensor("0", 6, 0, [2, 3], [3, 1]))) + STOP
    pickletools.dis(good_pkl, out=io.StringIO())
    assert pickle.loads.__name__  # (nothing is ever loaded; this file only writes bytes)

    add("os_system_data_pkl.pt", "refused", "'os.system'",
        ckpt(proto(2) + state_dict(("w", glob("os", "system") + uni(CMD) + TUPLE1 + REDUCE)) + STOP))
    add("os_system_legacy.pt", "refused", "'os.system'",
        proto(2) + b"\x8a\x0a" + (0x1950a86a20f9469cfc6c).to_bytes(10, "little") + STOP +
        proto(2) + glob("os", "system") + uni(CMD) + TUPLE1 + REDUCE + STOP)
    add("member_dotdot.pt", "refused", "'../evil'", zip_bytes([("archive/data.pkl", good_pkl), ("../evil", b"x")]))
    add("member_dotdot_inside.pt", "refused", "'archive/data/../../../etc/cron.d/x'",
        zip_bytes([("archive/data.pkl", good_pkl), ("archive/data/../../../etc/cron.d/x", b"x")]))
    add("member_absolute.pt", "refused", "'/etc/passwd'", zip_bytes([("archive/data.pkl", good_pkl), ("/etc/passwd", b"x")]))
    add("member_backslash.pt", "refused", "backslash",
        zip_bytes([("archive/data.pkl", good_pkl), ("..\\..\\windows\\x", b"x")]))
    add("member_duplicate.pt", "refused", "duplicate member name 'archive/data.pkl'",
        zip_bytes([("archive/data.pkl", good_pkl), ("archive/data/0", f32x6), ("archive/data.pkl", good_pkl)]))
    # Zip bomb: a deflated member that declares a terabyte (ZIP64 sizes) from a few bytes.
    good = bytearray(ckpt(good_pkl, [("0", f32x6)]))
    bomb = bytearray(zip_bytes([("archive/data.pkl", good_pkl), ("archive/data/0", b"\x03\x00")], aligned=False))
    cd = struct.unpack_from("<I", bomb, len(bomb) - 6)[0]
    # second central entry: method 8, size 0xFFFFFFFF (4 GiB - 1) from 2 compressed bytes
    second = bomb.index(b"PK\x01\x02", cd + 1)
    struct.pack_into("<H", bomb, second + 10, 8)
    struct.pack_into("<I", bomb, second + 24, 0xFFFFFFFE)
    add("zip_bomb.pt", "refused", "zip bomb", bytes(bomb))
    add("truncated_half.pt", "bad_file", "end-of-central-directory", bytes(good[: len(good) // 2]))
    trunc_cd = bytearray(good)
    struct.pack_into("<I", trunc_cd, len(trunc_cd) - 6, len(good) - 10)  # central directory offset past its end
    add("cd_offset_out_of_range.pt", "bad_file", "central directory", bytes(trunc_cd))
    count = bytearray(good)
    struct.pack_into("<HH", count, len(count) - 14, 60000, 60000)  # member count the directory cannot hold
    add("cd_count_lies.pt", "bad_file", "claims 60000 members", bytes(count))
    # Two members whose data overlap (a member's declared size runs over the next member).
    ov = bytearray(zip_bytes([("archive/data.pkl", good_pkl), ("archive/data/0", f32x6), ("archive/version", b"3\n")],
                             aligned=False))
    cd = struct.unpack_from("<I", ov, len(ov) - 6)[0]
    second = ov.index(b"PK\x01\x02", cd + 1)
    struct.pack_into("<II", ov, second + 20, 24 + 40, 24 + 40)
    add("members_overlap.pt", "refused", "overlap", bytes(ov))
    # Tensor records that reach outside their storage, or name storages that are not there.
    add("storage_view_out_of_bounds.pt", "bad_file", "reaches element",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("0", 6, 2, [2, 3], [3, 1]))) + STOP, [("0", f32x6)]))
    add("storage_huge_stride.pt", "bad_file", "reaches element",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("0", 6, 0, [2, 3], [2**40, 1]))) + STOP, [("0", f32x6)]))
    add("storage_numel_lies.pt", "bad_file", "holds 24 bytes",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("0", 1000, 0, [1000], [1]))) + STOP, [("0", f32x6)]))
    add("storage_missing.pt", "bad_file", "no member 'archive/data/7'",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("7", 6, 0, [6], [1]))) + STOP, [("0", f32x6)]))
    add("storage_key_traversal.pt", "bad_file", "storage key",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("../../../../etc/passwd", 6, 0, [6], [1]))) + STOP, [("0", f32x6)]))
    add("storage_rank_9.pt", "unsupported", "rank 9",
        ckpt(proto(2) + state_dict(("w", rebuild_tensor("0", 6, 0, [1] * 9, [1] * 9))) + STOP, [("0", f32x6)]))
    add("storage_module_pid.pt", "unsupported", "not a storage",
        ckpt(proto(2) + state_dict(("w", glob("torch._utils", "_rebuild_tensor_v2") + MARK + MARK + uni("module") +
                                    uni("os") + uni("x") + uni("y") + binint1(1) + TUPLE + BINPERSID + binint1(0) +
                                    EMPTY_TUPLE + EMPTY_TUPLE + NEWFALSE + NONE + TUPLE + REDUCE)) + STOP))
    # Dicts that contain themselves, nest 100k deep, or multiply through shared sub-dicts.
    add("dict_self_cycle.pt", "bad_file", "contains itself",
        ckpt(proto(2) + EMPTY_DICT + binput(0) + uni("a") + binget(0) + SETITEM + STOP))
    deep = proto(2) + (EMPTY_DICT + uni("k")) * 5000 + EMPTY_DICT + SETITEM * 5000 + STOP
    add("dict_nesting_5000.pt", "bad_file", "nested more than", ckpt(deep))
    dag = proto(2) + EMPTY_DICT + b"r\x00\x00\x00\x00" + POP
    for i in range(1, 60):
        dag += EMPTY_DICT + MARK + uni("a") + b"j" + struct.pack("<I", i - 1) + uni("b") + b"j" + struct.pack("<I", i - 1)
        dag += SETITEMS + b"r" + struct.pack("<I", i) + POP
    add("dict_dag_2_pow_60.pt", "bad_file", "more paths", ckpt(dag + b"j" + struct.pack("<I", 59) + STOP))
    add("no_data_pkl.pt", "bad_file", "data.pkl", zip_bytes([("archive/data/0", f32x6)]))
    add("not_a_checkpoint.pt", "bad_file", "neither", b"GIF89a not a checkpoint")
    return m


# ---- benign pickles: every protocol, every value kind the format has ----
def sample():
    shared = [1, 2]
    return {
        "none": None, "t": True, "f": False,
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**63 - 1, -2**63],
        "bigs": [2**64, -2**80 - 12345, 10**30],
        "floats": [0.0, -0.0, 1.5, -2.25e-300, 1e300, 3.141592653589793],
        "strs": ["", "a", "with space", "quote'\"", "back\\slash", "new\nline", "caf\u00e9", "\u20ac", "\U0001F600",
                 "x" * 300],
        "bytes": [b"\x00\xff", b"abc", b"y" * 300],
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "nested": {"a": {"b": {"c": [1, (2, [3, {"d": None}])]}}},
        "shared": [shared, shared],
        "od": collections.OrderedDict([("z", 1), ("y", 2)]),
        "set": {7}, "fset": frozenset({"only"}),
        7: "int key", (1, "t"): "tuple key",
    }


def render(v, protocol):
    """The tree tests/unit/pickle_test.cpp prints for a parsed value (one line, no spaces)."""
    r = lambda x: render(x, protocol)
    if v is None: return "N"
    if v is True: return "T"
    if v is False: return "F"
    if isinstance(v, int):
        if -2**63 <= v < 2**63: return f"i{v}"
        if protocol < 2: return f"I{v}"                         # LONG: decimal text
        return "L" + pickle.encode_long(v).hex()                # LONG1/LONG4: little-endian two's complement
    if isinstance(v, float): return "f" + struct.pack(">d", v).hex()
    if isinstance(v, str): return "s" + v.encode().hex()
    if isinstance(v, bytes):
        if protocol >= 3: return "b" + v.hex()
        # protocols 0-2 have no bytes opcode: _codecs.encode(latin-1 text, 'latin1')
        return "C_codecs.encode(" + r(v.decode("latin1")) + "," + r("latin1") + ")"
    if isinstance(v, tuple): return "(" + ",".join(map(r, v)) + ")"
    if isinstance(v, list): return "[" + ",".join(map(r, v)) + "]"
    if isinstance(v, dict): return "{" + ",".join(r(k) + ":" + r(x) for k, x in v.items()) + "}"
    if isinstance(v, (set, frozenset)): return "<" + ",".join(map(r, v)) + ">"
    raise TypeError(type(v))


def write_all(folder, items):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in items:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def main():
    mp = malicious_pickles()
    for name, _, _, data, wellformed in mp:
        if wellformed:
            pickletools.dis(data, out=io.StringIO())  # a disassembler: checks the stream, runs nothing
    write_all(os.path.join(PKL_DIR, "malicious"), [(n, d) for n, _, _, d, _ in mp])
    with open(os.path.join(PKL_DIR, "malicious", "MANIFEST.json"), "w") as f:
        json.dump({n: {"code": c, "contains": s} for n, c, s, _, _ in mp}, f, indent=1, sort_keys=True)

    mc = malicious_checkpoints()
    write_all(os.path.join(CKPT_DIR, "malicious"), [(n, d) for n, _, _, d in mc])
    with open(os.path.join(CKPT_DIR, "malicious", "MANIFEST.json"), "w") as f:
        json.dump({n: {"code": c, "contains": s} for n, c, s, _ in mc}, f, indent=1, sort_keys=True)

    benign = []
    s = sample()
    for p in range(6):
        benign.append((f"proto{p}.pkl", pickle.dumps(s, protocol=p)))
        benign.append((f"proto{p}.tree", (render(s, p) + "\n").encode()))
    write_all(os.path.join(PKL_DIR, "benign"), benign)

    # Fuzz seeds: every pickle for the pickle target; every checkpoint (benign fixtures too) for the ckpt target.
    # (the 100 KB deep_marks.pkl stays out of the seeds: the fuzzer finds long runs of one opcode itself)
    pk = [(n, d) for n, _, _, d, _ in mp if d and len(d) < 20000] + [(n, d) for n, d in benign if n.endswith(".pkl")]
    write_all(os.path.join(FUZZ_DIR, "pickle"), pk)
    cks = [(n, d) for n, _, _, d in mc]
    for n in sorted(os.listdir(CKPT_DIR)):
        if n.endswith(".pt"):
            with open(os.path.join(CKPT_DIR, n), "rb") as f:
                cks.append(("fixture_" + n, f.read()))
    write_all(os.path.join(FUZZ_DIR, "ckpt"), cks)
    print(f"wrote {len(mp)} hostile pickles, {len(mc)} hostile checkpoints, {len(benign) // 2} benign pickles, "
          f"{len(pk)} + {len(cks)} fuzz seeds")


if __name__ == "__main__":
    main()
