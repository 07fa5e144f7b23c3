"""JUMBF boxes and where PNG and JPEG files keep a C2PA manifest store, for c2pa_verify.py (which see).

Written from the C2PA 2.1 specification and ISO/IEC 19566-5's public descriptions; the facts, with their
sections, are in C2PA_NOTES.md. Standard library plus python3-cryptography (for the COSE algorithms' hashes).
"""

import hashlib
import struct
import zlib

from cryptography.hazmat.primitives import hashes

# ------------------------------------------------------------------------------------------------------------------
# constants (C2PA 2.1 11.1.4, ISO/IEC 19566-5 Annex B)

def _c2pa_uuid(fourcc):
    return fourcc + bytes.fromhex("00110010800000AA00389B71")


UUID_STORE = _c2pa_uuid(b"c2pa")          # C2PA Manifest Store
UUID_MANIFEST = _c2pa_uuid(b"c2ma")       # standard manifest
UUID_MANIFEST_OLD = _c2pa_uuid(b"c2md")   # standard manifest, accepted on read only
UUID_UPDATE = _c2pa_uuid(b"c2um")         # update manifest
UUID_COMPRESSED = _c2pa_uuid(b"c2cm")     # compressed (brob) manifest
UUID_TIMESTAMP = _c2pa_uuid(b"c2tm")      # time-stamp manifest
UUID_ASSERTIONS = _c2pa_uuid(b"c2as")     # assertion store
UUID_CLAIM = _c2pa_uuid(b"c2cl")          # claim
UUID_SIGNATURE = _c2pa_uuid(b"c2cs")      # claim signature
UUID_DATABOXES = _c2pa_uuid(b"c2db")      # data box store
UUID_CBOR = _c2pa_uuid(b"cbor")           # JUMBF CBOR content type
UUID_JSON = _c2pa_uuid(b"json")           # JUMBF JSON content type
UUID_XML = _c2pa_uuid(b"xml ")            # JUMBF XML content type
UUID_UUID = _c2pa_uuid(b"uuid")           # JUMBF UUID content type
UUID_CODESTREAM = bytes.fromhex("6579D6FBDBA2446BB2AC1B82FEEB89D1")
UUID_EMBEDDED_FILE = bytes.fromhex("40CB0C32BB8A489DA70B2AD6F47F4369")

MANIFEST_KINDS = {
    UUID_MANIFEST: "standard (c2ma)",
    UUID_MANIFEST_OLD: "standard (c2md, legacy)",
    UUID_UPDATE: "update (c2um)",
    UUID_COMPRESSED: "compressed (c2cm)",
    UUID_TIMESTAMP: "time-stamp (c2tm)",
}
CONTENT_TYPES = {
    UUID_CBOR: "cbor", UUID_JSON: "json", UUID_XML: "xml", UUID_UUID: "uuid",
    UUID_CODESTREAM: "codestream", UUID_EMBEDDED_FILE: "embedded file",
}

TOGGLE_REQUESTABLE = 0x01
TOGGLE_LABEL = 0x02
TOGGLE_ID = 0x04
TOGGLE_SIGNATURE = 0x08
TOGGLE_PRIVATE = 0x10

HASH_ALGS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}   # 13.1
HARD_BINDINGS = ("c2pa.hash.data", "c2pa.hash.boxes", "c2pa.hash.collection.data", "c2pa.hash.bmff.v2",
                 "c2pa.hash.bmff.v3", "c2pa.hash.bmff")

# COSE algorithm identifiers (IANA COSE Algorithms; C2PA 2.1 13.2.1 allowed list)
COSE_ALGS = {
    -7: ("ES256", "ecdsa", hashes.SHA256),
    -35: ("ES384", "ecdsa", hashes.SHA384),
    -36: ("ES512", "ecdsa", hashes.SHA512),
    -37: ("PS256", "pss", hashes.SHA256),
    -38: ("PS384", "pss", hashes.SHA384),
    -39: ("PS512", "pss", hashes.SHA512),
    -8: ("EdDSA", "eddsa", None),
}
COSE_HDR_ALG = 1
COSE_HDR_X5CHAIN = 33

# X.509 (C2PA 2.1 14.5.1.1)
ALLOWED_CERT_SIG_OIDS = {
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "id-RSASSA-PSS",
    "1.3.101.112": "id-Ed25519",
}
ALLOWED_CURVES = {"secp256r1": "prime256v1", "secp384r1": "secp384r1", "secp521r1": "secp521r1"}
EKU_EMAIL = "1.3.6.1.5.5.7.3.4"
EKU_DOCSIGN = "1.3.6.1.5.5.7.3.36"
EKU_C2PA_CLAIM = "1.3.6.1.4.1.62558.2.1"   # c2pa-kp-claimSigning (C2PA 2.2 onwards)
EKU_TIMESTAMP = "1.3.6.1.5.5.7.3.8"
EKU_OCSP = "1.3.6.1.5.5.7.3.9"
EKU_ANY = "2.5.29.37.0"
EKU_NAMES = {EKU_EMAIL: "emailProtection", EKU_DOCSIGN: "documentSigning", EKU_C2PA_CLAIM: "c2pa-kp-claimSigning",
             EKU_TIMESTAMP: "timeStamping", EKU_OCSP: "OCSPSigning", EKU_ANY: "anyExtendedKeyUsage",
             "1.3.6.1.5.5.7.3.1": "serverAuth", "1.3.6.1.5.5.7.3.2": "clientAuth",
             "1.3.6.1.5.5.7.3.3": "codeSigning"}

MAX_DEPTH = 32


class ReadError(Exception):
    """The file cannot be read as a PNG/JPEG container (exit 2)."""


class ManifestError(Exception):
    """The manifest store is present but malformed (exit 1)."""


# ------------------------------------------------------------------------------------------------------------------
# containers

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def find_store_png(data, notes):
    """Return (store_bytes, carrier) where carrier describes the caBX chunk, or (None, None)."""
    pos = 8
    found = []
    seen_idat = False
    cabx_before_idat = None
    while True:
        if pos == len(data):
            notes.append("PNG ends without an IEND chunk")
            break
        if pos + 12 > len(data):
            raise ReadError("truncated PNG chunk header at offset %d" % pos)
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        ctype = data[pos + 4:pos + 8]
        if n > 0x7FFFFFFF or pos + 12 + n > len(data):
            raise ReadError("PNG chunk %r at offset %d runs past the end of the file" % (ctype, pos))
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if ctype == b"caBX":
            if zlib.crc32(data[pos + 4:pos + 8 + n]) & 0xFFFFFFFF != crc:
                notes.append("caBX chunk CRC mismatch (a PNG decoder may reject the file)")
            found.append((pos, n))
            if cabx_before_idat is None:
                cabx_before_idat = not seen_idat
        elif ctype == b"IDAT":
            seen_idat = True
        pos += 12 + n
        if ctype == b"IEND":
            if pos != len(data):
                notes.append("%d bytes after IEND" % (len(data) - pos))
            break
    if not found:
        return None, None
    if len(found) > 1:
        raise ManifestError("%d caBX chunks: multiple manifest stores, all invalid (C2PA 2.1 15.5.2.1)" % len(found))
    cpos, n = found[0]
    if not cabx_before_idat:
        notes.append("caBX chunk follows IDAT (A.2.2 recommends it precede IDAT)")
    carrier = {
        "kind": "png caBX chunk",
        "ranges": [(cpos, 12 + n)],
        "description": "caBX chunk at offset %d: %d data bytes, %d bytes with length, type and CRC" % (cpos, n, 12 + n),
        "png_chunk": (cpos, n),
    }
    return data[cpos + 8:cpos + 8 + n], carrier


def jpeg_segments(data):
    """Yield (marker_pos, marker, seg_len) for every marker segment; seg_len counts the marker and Lp (0 if none).

    Walks the whole file: after SOS it skips entropy-coded data (byte stuffing FF00, RSTn) to the next marker."""
    pos = 2
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise ReadError("JPEG: expected a marker at offset %d" % pos)
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1            # fill bytes
        if pos + 1 >= n:
            raise ReadError("JPEG: truncated marker at offset %d" % pos)
        marker = data[pos + 1]
        if marker == 0xD9:      # EOI
            yield pos, marker, 2
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            yield pos, marker, 2
            pos += 2
            continue
        if pos + 4 > n:
            raise ReadError("JPEG: truncated segment at offset %d" % pos)
        lp = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if lp < 2 or pos + 2 + lp > n:
            raise ReadError("JPEG: segment 0x%02X at offset %d has bad length %d" % (marker, pos, lp))
        yield pos, marker, 2 + lp
        pos += 2 + lp
        if marker == 0xDA:      # SOS: skip the entropy-coded segment
            while pos < n:
                if data[pos] == 0xFF and pos + 1 < n:
                    m = data[pos + 1]
                    if m == 0x00 or 0xD0 <= m <= 0xD7 or m == 0xFF:
                        pos += 2 if m != 0xFF else 1
                        continue
                    break
                pos += 1
    raise ReadError("JPEG: no EOI marker")


def find_store_jpeg(data, notes):
    groups = {}
    order = []
    for mpos, marker, seglen in jpeg_segments(data):
        if marker != 0xEB or seglen < 4 + 8:
            continue
        body = mpos + 4
        if data[body:body + 2] != b"JP":         # CI: JPEG XT box-in-APP11 (ISO/IEC 18477-3)
            continue
        en = struct.unpack(">H", data[body + 2:body + 4])[0]
        z = struct.unpack(">I", data[body + 4:body + 8])[0]
        box = body + 8
        end = mpos + seglen
        if end - box < 8:
            raise ManifestError("APP11 JP segment at %d too short for a box header" % mpos)
        lbox, tbox = struct.unpack(">I4s", data[box:box + 8])
        hdr = 8
        xl = None
        if lbox == 1:
            if end - box < 16:
                raise ManifestError("APP11 JP segment at %d too short for an XLBox header" % mpos)
            xl = struct.unpack(">Q", data[box + 8:box + 16])[0]
            hdr = 16
        if en not in groups:
            groups[en] = []
            order.append(en)
        groups[en].append({"pos": mpos, "len": seglen, "z": z, "box": box, "end": end, "lbox": lbox, "tbox": tbox,
                           "xlbox": xl, "hdr": hdr})
    stores = []
    for en in order:
        pkts = groups[en]
        if pkts[0]["tbox"] != b"jumb":
            continue
        # The packet with Z=1 carries the box from its start; the others repeat LBox/TBox(/XLBox), then continue it.
        pkts_sorted = sorted(pkts, key=lambda p: p["z"])
        zs = [p["z"] for p in pkts_sorted]
        if zs != list(range(1, len(pkts) + 1)):
            raise ManifestError("APP11 box instance En=%d: packet sequence numbers %s are not 1..%d"
                                % (en, zs, len(pkts)))
        first = pkts_sorted[0]
        buf = bytearray(data[first["box"]:first["end"]])
        for p in pkts_sorted[1:]:
            if (p["lbox"], p["tbox"], p["xlbox"]) != (first["lbox"], first["tbox"], first["xlbox"]):
                raise ManifestError("APP11 En=%d Z=%d: repeated LBox/TBox differ from the first packet's"
                                    % (en, p["z"]))
            buf += data[p["box"] + p["hdr"]:p["end"]]
        total = first["xlbox"] if first["lbox"] == 1 else first["lbox"]
        if total != 0 and total != len(buf):
            raise ManifestError("APP11 En=%d: reassembled box is %d bytes but its LBox says %d"
                                % (en, len(buf), total))
        # is it a C2PA manifest store? (jumd type UUID)
        if len(buf) >= first["hdr"] + 8 + 16 and buf[first["hdr"] + 4:first["hdr"] + 8] == b"jumd" \
                and bytes(buf[first["hdr"] + 8:first["hdr"] + 24]) == UUID_STORE:
            stores.append((en, pkts, bytes(buf)))
        else:
            notes.append("APP11 JUMBF box instance En=%d is not a C2PA manifest store (ignored)" % en)
    if not stores:
        return None, None
    if len(stores) > 1:
        raise ManifestError("%d C2PA manifest stores in APP11: all invalid (C2PA 2.1 15.5.2.1)" % len(stores))
    en, pkts, buf = stores[0]
    in_file_order = sorted(pkts, key=lambda p: p["pos"])
    if [p["z"] for p in in_file_order] != sorted(p["z"] for p in pkts):
        notes.append("APP11 segments are not written in sequence-number order (A.2.1 requires sequential order)")
    contiguous = all(in_file_order[i]["pos"] + in_file_order[i]["len"] == in_file_order[i + 1]["pos"]
                     for i in range(len(in_file_order) - 1))
    ranges = [(p["pos"], p["len"]) for p in in_file_order]
    desc = "%d APP11 segment(s), box instance En=%d, offsets %d..%d (%d bytes incl. markers and lengths), " \
           "JUMBF store %d bytes" % (len(pkts), en, ranges[0][0], ranges[-1][0] + ranges[-1][1],
                                     sum(r[1] for r in ranges), len(buf))
    carrier = {"kind": "jpeg APP11 segments", "ranges": ranges, "description": desc, "contiguous": contiguous,
               "segments": [{"offset": p["pos"], "length": p["len"], "z": p["z"]} for p in in_file_order]}
    if not contiguous:
        notes.append("C2PA APP11 segments are not contiguous (A.2.1 requires contiguous segments)")
    return buf, carrier


# ------------------------------------------------------------------------------------------------------------------
# JUMBF (ISO/IEC 19566-5)

class Box:
    __slots__ = ("type", "offset", "hdr", "length", "children", "jumd", "parent")

    def __init__(self, btype, offset, hdr, length):
        self.type = btype
        self.offset = offset
        self.hdr = hdr
        self.length = length
        self.children = []
        self.jumd = None
        self.parent = None

    @property
    def payload(self):
        return (self.offset + self.hdr, self.offset + self.length)

    @property
    def label(self):
        return self.jumd["label"] if self.jumd else None

    @property
    def uuid(self):
        return self.jumd["uuid"] if self.jumd else None


def parse_boxes(buf, start, end, depth, notes, parent=None):
    if depth > MAX_DEPTH:
        raise ManifestError("JUMBF nesting deeper than %d" % MAX_DEPTH)
    boxes = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise ManifestError("JUMBF: %d stray bytes at offset %d" % (end - pos, pos))
        lbox, tbox = struct.unpack(">I4s", buf[pos:pos + 8])
        hdr = 8
        if lbox == 1:
            if end - pos < 16:
                raise ManifestError("JUMBF: truncated XLBox at offset %d" % pos)
            lbox = struct.unpack(">Q", buf[pos + 8:pos + 16])[0]
            hdr = 16
        elif lbox == 0:
            lbox = end - pos
            notes.append("JUMBF box %r at store offset %d has LBox 0 (extends to the end of its container)"
                         % (tbox, pos))
        if lbox < hdr or pos + lbox > end:
            raise ManifestError("JUMBF: box %r at offset %d has bad length %d" % (tbox, pos, lbox))
        b = Box(tbox.decode("latin-1"), pos, hdr, lbox)
        b.parent = parent
        if tbox == b"jumb":
            b.children = parse_boxes(buf, pos + hdr, pos + lbox, depth + 1, notes, b)
            if not b.children or b.children[0].type != "jumd":
                raise ManifestError("JUMBF: superbox at offset %d does not start with a jumd box" % pos)
            b.jumd = parse_jumd(buf, *b.children[0].payload)
        boxes.append(b)
        pos += lbox
    return boxes


def parse_jumd(buf, s, e):
    if e - s < 17:
        raise ManifestError("JUMBF: description box too short")
    d = {"uuid": bytes(buf[s:s + 16]), "toggles": buf[s + 16], "label": None, "id": None, "signature": None,
         "private": None}
    p = s + 17
    t = d["toggles"]
    if t & TOGGLE_LABEL:
        z = buf.find(b"\x00", p, e)
        if z < 0:
            raise ManifestError("JUMBF: description box label is not null-terminated")
        try:
            d["label"] = buf[p:z].decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("JUMBF: description box label is not UTF-8")
        p = z + 1
    if t & TOGGLE_ID:
        if e - p < 4:
            raise ManifestError("JUMBF: description box ID truncated")
        d["id"] = struct.unpack(">I", buf[p:p + 4])[0]
        p += 4
    if t & TOGGLE_SIGNATURE:
        if e - p < 32:
            raise ManifestError("JUMBF: description box signature truncated")
        d["signature"] = bytes(buf[p:p + 32])
        p += 32
    if t & TOGGLE_PRIVATE:
        if e - p < 8:
            raise ManifestError("JUMBF: description box private field truncated")
        plen, ptype = struct.unpack(">I4s", buf[p:p + 8])
        if plen < 8 or p + plen > e:
            raise ManifestError("JUMBF: description box private box has bad length")
        d["private"] = {"type": ptype.decode("latin-1"), "data": bytes(buf[p + 8:p + plen])}
        p += plen
    d["trailing"] = e - p
    return d


def superboxes(box):
    return [c for c in box.children if c.type == "jumb"]


def content_boxes(box):
    return [c for c in box.children[1:] if c.type != "jumb"]


def uuid_str(u):
    h = u.hex().upper()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def uuid_name(u):
    for table in (MANIFEST_KINDS, CONTENT_TYPES):
        if u in table:
            return table[u]
    names = {UUID_STORE: "manifest store (c2pa)", UUID_ASSERTIONS: "assertion store (c2as)",
             UUID_CLAIM: "claim (c2cl)", UUID_SIGNATURE: "claim signature (c2cs)",
             UUID_DATABOXES: "data boxes (c2db)"}
    return names.get(u, uuid_str(u))


def dump_tree(buf, boxes, out, depth=0):
    for b in boxes:
        ind = "  " * depth
        if b.type == "jumb":
            j = b.jumd
            extra = ""
            if j["private"]:
                extra = ", private %s box (%d bytes)" % (j["private"]["type"], len(j["private"]["data"]))
            out.append("%sjumb @%d len %d  label=%r type=%s toggles=0x%02x%s"
                       % (ind, b.offset, b.length, j["label"], uuid_name(j["uuid"]), j["toggles"], extra))
            dump_tree(buf, b.children[1:], out, depth + 1)
        else:
            out.append("%s%s @%d len %d" % (ind, b.type, b.offset, b.length))


LABEL_FORBIDDEN = set("/;?#")


def check_jumd_rules(box, notes, path="c2pa"):
    """C2PA 2.1 11.1.4.1: every description box has a label and the requestable toggle; labels avoid some chars."""
    j = box.jumd
    if (j["toggles"] & (TOGGLE_LABEL | TOGGLE_REQUESTABLE)) != (TOGGLE_LABEL | TOGGLE_REQUESTABLE):
        notes.append("JUMBF %s: toggles 0x%02x lack label-present and requestable (11.1.4.1.2 requires 0x03)"
                     % (path, j["toggles"]))
    lab = j["label"] or ""
    if any(ch in LABEL_FORBIDDEN or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in lab):
        notes.append("JUMBF label %r contains a character 11.1.4.1.1 forbids" % lab)
    if j["private"] is not None:
        if j["private"]["type"] != "c2sh":
            notes.append("JUMBF %s: private box of type %r (C2PA defines only c2sh)" % (path, j["private"]["type"]))
        elif len(j["private"]["data"]) not in (16, 32):
            notes.append("JUMBF %s: c2sh salt of %d bytes (8.4.2.3 says 16 or 32)"
                         % (path, len(j["private"]["data"])))
    if j["trailing"]:
        notes.append("JUMBF %s: %d unexpected bytes at the end of the description box" % (path, j["trailing"]))
    for c in superboxes(box):
        check_jumd_rules(c, notes, path + "/" + str(c.label))
