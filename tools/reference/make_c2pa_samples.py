#!/usr/bin/env python3
"""Make C2PA-signed sample images with the official c2pa-python binding (an independent producer).

Runs in the /work/c2pavenv venv (see tools/reference/README.md, "C2PA verifiers"):

    /work/c2pavenv/bin/python tools/reference/make_c2pa_samples.py /tmp/c2pa_samples

Writes into OUTDIR (never into the repository):

  root_ca.pem           self-signed test root CA (P-256, ecdsa-with-SHA256); pass it as --trust-anchor
  intermediate_ca.pem   intermediate CA signed by the root (omitted with --no-intermediate)
  signer_chain.pem      signer leaf + intermediate, the x5chain the signer embeds (root left out, C2PA 2.1 14.5)
  signer_key.pem        the leaf's P-256 private key (PKCS#8)
  sample.png            64x48 RGB PNG signed with ES256 (manifest store in a caBX chunk)
  sample.jpg            64x48 JPEG signed with ES256 (manifest store in APP11 segment(s))
  sample_multiseg.jpg   as sample.jpg plus a ~150 KB custom assertion, so the store spans 3+ APP11 segments
  plain.png             unsigned PNG ("no manifest", verifier exit 2)
  tampered_pixel.png    sample.png with one byte of IDAT image data changed (chunk CRC recomputed)
  tampered_pixel.jpg    sample.jpg with one byte of entropy-coded scan data changed
  tampered_sig.png      sample.png with one byte flipped inside the COSE signature bstr (chunk CRC recomputed)
  tampered_sig.jpg      sample.jpg with one byte flipped inside the COSE signature bstr
  tampered_assertion.png  sample.png with one byte of the c2pa.actions.v2 assertion's CBOR changed (CRC recomputed)

With --extra-algs it also writes sample_es384.png, sample_es512.jpg (P-384 / P-521 leaves), sample_ps256.png
(RSA-2048 leaf, RSASSA-PSS) and sample_ed25519.jpg (Ed25519 leaf), all under the same root.

Every manifest has a c2pa.actions.v2 assertion whose first action is c2pa.created with digitalSourceType
http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia.

The leaf certificate follows the C2PA 2.1 certificate profile (14.5.1): v3, ecdsa-with-SHA256, P-256 key,
BasicConstraints cA=false, KeyUsage digitalSignature (critical), EKU id-kp-emailProtection +
id-kp-documentSigning (no anyExtendedKeyUsage), SubjectKeyIdentifier and AuthorityKeyIdentifier.

The tampering helpers here locate bytes with their own small parsers (PNG chunks, JPEG segments, JUMBF boxes,
a CBOR skipper); they share no code with c2pa_verify.py.
"""
import argparse
import datetime
import io
import json
import os
import struct
import sys
import zlib

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

DST_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
OID_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
C2CS_UUID = bytes.fromhex("63326373" "00110010800000AA00389B71")


# ----------------------------------------------------------------------------------------------------------------
# certificates

def _name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "easel test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def make_leaf(issuer_cert, issuer_key, leaf_key, cn="easel test C2PA signer"):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(issuer_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, OID_DOCUMENT_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))


def make_chain(with_intermediate=True):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = now - datetime.timedelta(days=1)

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("easel test root CA")
    root = (x509.CertificateBuilder()
            .subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))

    issuer_cert, issuer_key = root, root_key
    inter = None
    if with_intermediate:
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = (x509.CertificateBuilder()
                 .subject_name(_name("easel test intermediate CA")).issuer_name(root.subject)
                 .public_key(inter_key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=1825))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                 .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                                              key_cert_sign=True, crl_sign=True, encipher_only=False,
                                              decipher_only=False), critical=True)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                critical=False)
                 .sign(root_key, hashes.SHA256()))
        issuer_cert, issuer_key = inter, inter_key

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_leaf(issuer_cert, issuer_key, leaf_key)
    return root, inter, leaf, leaf_key, issuer_cert, issuer_key


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


# ----------------------------------------------------------------------------------------------------------------
# images and signing

def make_image():
    img = Image.new("RGB", (64, 48))
    px = img.load()
    for y in range(48):
        for x in range(64):
            px[x, y] = ((x * 4) & 255, (y * 5) & 255, ((x ^ y) * 7) & 255)
    return img


def encode(img, fmt):
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=0)   # stored deflate blocks: IDAT bytes are raw pixel bytes
    else:
        img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def manifest_definition(title, mime, big=False):
    assertions = [{
        "label": "c2pa.actions.v2",
        "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": DST_TRAINED}]},
    }]
    if big:
        # A custom assertion large enough that the manifest store cannot fit one 64 KB APP11 segment.
        assertions.append({"label": "org.easel.test.filler",
                           "data": {"note": "filler to force a multi-segment APP11 store",
                                    "filler": "0123456789abcdef" * 9500}})
    return {
        "claim_generator_info": [{"name": "easel-c2pa-samples", "version": "1.0"}],
        "title": title,
        "format": mime,
        "assertions": assertions,
    }


def sign(signer_chain_pem, key_pem, data, mime, title, big=False, alg=b"es256"):
    info = c2pa.C2paSignerInfo(alg, signer_chain_pem, key_pem, None)
    signer = c2pa.Signer.from_info(info)
    try:
        builder = c2pa.Builder(json.dumps(manifest_definition(title, mime, big)))
        try:
            src, dst = io.BytesIO(data), io.BytesIO()
            builder.sign(signer, mime, src, dst)
            return dst.getvalue()
        finally:
            builder.close()
    finally:
        signer.close()


# ----------------------------------------------------------------------------------------------------------------
# tampering (own minimal parsers)

def png_chunks(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    while pos + 12 <= len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        yield pos, data[pos + 4:pos + 8], pos + 8, n
        pos += 12 + n


def png_fix_crc(buf, chunk_pos):
    n = struct.unpack(">I", buf[chunk_pos:chunk_pos + 4])[0]
    crc = zlib.crc32(bytes(buf[chunk_pos + 4:chunk_pos + 8 + n])) & 0xFFFFFFFF
    buf[chunk_pos + 8 + n:chunk_pos + 12 + n] = struct.pack(">I", crc)


def jpeg_segments(data):
    """(marker_pos, marker, payload_pos, payload_len) for every marker segment up to and including SOS."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("lost JPEG marker sync at %d" % pos)
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        lp = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        yield pos, marker, pos + 4, lp - 2
        if marker == 0xDA:
            return
        pos += 2 + lp


def store_offset_map(data, kind):
    """Return (store_bytes, list of (store_off, file_off, length)) mapping the reassembled JUMBF store to the file."""
    pieces = []
    if kind == "png":
        for _, ctype, dpos, n in png_chunks(data):
            if ctype == b"caBX":
                return data[dpos:dpos + n], [(0, dpos, n)]
        raise ValueError("no caBX chunk")
    store = bytearray()
    for _, marker, ppos, plen in jpeg_segments(data):
        if marker != 0xEB or data[ppos:ppos + 2] != b"JP":
            continue
        z = struct.unpack(">I", data[ppos + 4:ppos + 8])[0]
        box = ppos + 8
        lbox = struct.unpack(">I", data[box:box + 4])[0]
        hdr = 16 if lbox == 1 else 8
        if z == 1:
            start, skip = box, 0
        else:
            start, skip = box + hdr, hdr
        length = plen - 8 - skip
        pieces.append((len(store), start, length))
        store += data[start:start + length]
    if not pieces:
        raise ValueError("no APP11 JUMBF segments")
    return bytes(store), pieces


def store_to_file(pieces, off):
    for s_off, f_off, n in pieces:
        if s_off <= off < s_off + n:
            return f_off + (off - s_off)
    raise ValueError("offset %d outside the store" % off)


def cbor_skip(b, i):
    """Return the index just past the CBOR data item starting at b[i] (definite lengths only)."""
    ib = b[i]
    major, ai = ib >> 5, ib & 31
    i += 1
    if ai < 24:
        val = ai
    elif ai in (24, 25, 26, 27):
        n = 1 << (ai - 24)
        val = int.from_bytes(b[i:i + n], "big")
        i += n
    else:
        raise ValueError("indefinite or reserved CBOR length")
    if major in (0, 1, 7):
        return i
    if major in (2, 3):
        return i + val
    if major == 4:
        for _ in range(val):
            i = cbor_skip(b, i)
        return i
    if major == 5:
        for _ in range(2 * val):
            i = cbor_skip(b, i)
        return i
    return cbor_skip(b, i)   # major 6: tag, then one item


def signature_bstr_range(store):
    """Find the c2cs (claim signature) box's cbor content and return (start, end) of the signature bytes."""
    k = store.rfind(C2CS_UUID)        # the active manifest is the last one
    if k < 0:
        raise ValueError("no claim signature box")
    jumd_start = k - 8
    jumd_len = struct.unpack(">I", store[jumd_start:jumd_start + 4])[0]
    cbor_box = jumd_start + jumd_len
    if store[cbor_box + 4:cbor_box + 8] != b"cbor":
        raise ValueError("claim signature content is not a cbor box")
    cbor_len = struct.unpack(">I", store[cbor_box:cbor_box + 4])[0]
    b = store[cbor_box + 8:cbor_box + cbor_len]
    i = 0
    if b[0] == 0xD2:                    # tag 18
        i = 1
    if b[i] != 0x84:
        raise ValueError("COSE_Sign1 is not a 4-element array")
    i += 1
    for _ in range(3):
        i = cbor_skip(b, i)
    end = cbor_skip(b, i)
    ib = b[i]
    ai = ib & 31
    hdr = 1 if ai < 24 else 1 + (1 << (ai - 24))
    return cbor_box + 8 + i + hdr, cbor_box + 8 + end


def tamper_signature(data, kind):
    store, pieces = store_offset_map(data, kind)
    s, e = signature_bstr_range(store)
    off = store_to_file(pieces, s + (e - s) // 2)
    buf = bytearray(data)
    buf[off] ^= 0x01
    if kind == "png":
        for cpos, ctype, _, _ in png_chunks(data):
            if ctype == b"caBX":
                png_fix_crc(buf, cpos)
    return bytes(buf)


def tamper_assertion(data, label=b"c2pa.actions.v2"):
    """Change one byte inside the CBOR content of the named assertion (PNG)."""
    store, pieces = store_offset_map(data, "png")
    k = store.find(label + b"\x00")
    if k < 0:
        raise ValueError("no %r assertion" % label)
    c = store.find(b"cbor", k) - 4             # the assertion's cbor content box header
    n = struct.unpack(">I", store[c:c + 4])[0]
    t = store.find(b"c2pa.created", c, c + n)  # change the action name: c2pa.created -> c2pa.createe
    if t < 0:
        raise ValueError("no c2pa.created in %r" % label)
    off = store_to_file(pieces, t + len(b"c2pa.created") - 1)
    buf = bytearray(data)
    buf[off] = ord("e")
    for cpos, ctype, _, _ in png_chunks(data):
        if ctype == b"caBX":
            png_fix_crc(buf, cpos)
    return bytes(buf)


def tamper_pixel(data, kind):
    buf = bytearray(data)
    if kind == "png":
        for cpos, ctype, dpos, n in png_chunks(data):
            if ctype == b"IDAT":
                off = dpos + n // 2
                buf[off] ^= 0x10
                png_fix_crc(buf, cpos)
                return bytes(buf)
        raise ValueError("no IDAT")
    for mpos, marker, ppos, plen in jpeg_segments(data):
        if marker == 0xDA:
            off = ppos + plen + 40          # inside the entropy-coded data after the scan header
            while buf[off] == 0xFF or buf[off - 1] == 0xFF or buf[off] ^ 0x01 == 0xFF:
                off += 1
            buf[off] ^= 0x01
            return bytes(buf)
    raise ValueError("no SOS")


# ----------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", help="output directory (outside the repository, e.g. /tmp/c2pa_samples)")
    ap.add_argument("--no-intermediate", action="store_true", help="sign with a leaf issued directly by the root")
    ap.add_argument("--extra-algs", action="store_true", help="also sign with ES384, ES512, PS256 and Ed25519")
    args = ap.parse_args()

    outdir = os.path.abspath(args.outdir)
    os.makedirs(outdir, exist_ok=True)

    def write(name, blob):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(blob)

    def key_pem_of(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    root, inter, leaf, leaf_key, issuer_cert, issuer_key = make_chain(not args.no_intermediate)
    chain_pem = pem(leaf) + (pem(inter) if inter is not None else b"")
    key_pem = key_pem_of(leaf_key)
    write("root_ca.pem", pem(root))
    if inter is not None:
        write("intermediate_ca.pem", pem(inter))
    write("signer_chain.pem", chain_pem)
    write("signer_key.pem", key_pem)

    img = make_image()
    png, jpg = encode(img, "png"), encode(img, "jpeg")
    write("plain.png", png)

    signed_png = sign(chain_pem, key_pem, png, "image/png", "sample.png")
    signed_jpg = sign(chain_pem, key_pem, jpg, "image/jpeg", "sample.jpg")
    signed_big = sign(chain_pem, key_pem, jpg, "image/jpeg", "sample_multiseg.jpg", big=True)
    write("sample.png", signed_png)
    write("sample.jpg", signed_jpg)
    write("sample_multiseg.jpg", signed_big)

    write("tampered_pixel.png", tamper_pixel(signed_png, "png"))
    write("tampered_pixel.jpg", tamper_pixel(signed_jpg, "jpeg"))
    write("tampered_sig.png", tamper_signature(signed_png, "png"))
    write("tampered_sig.jpg", tamper_signature(signed_jpg, "jpeg"))
    write("tampered_assertion.png", tamper_assertion(signed_png))

    if args.extra_algs:
        extra = [("sample_es384.png", b"es384", ec.generate_private_key(ec.SECP384R1()), png, "image/png"),
                 ("sample_es512.jpg", b"es512", ec.generate_private_key(ec.SECP521R1()), jpg, "image/jpeg"),
                 ("sample_ps256.png", b"ps256", rsa.generate_private_key(public_exponent=65537, key_size=2048), png,
                  "image/png"),
                 ("sample_ed25519.jpg", b"ed25519", ed25519.Ed25519PrivateKey.generate(), jpg, "image/jpeg")]
        for name, alg, k, blob, mime in extra:
            lf = make_leaf(issuer_cert, issuer_key, k, "easel test C2PA signer (%s)" % alg.decode())
            cp = pem(lf) + (pem(inter) if inter is not None else b"")
            write(name, sign(cp, key_pem_of(k), blob, mime, name, alg=alg))

    nseg = len(store_offset_map(signed_big, "jpeg")[1])
    print("c2pa-python %s (c2pa-rs %s); wrote samples to %s (sample_multiseg.jpg: %d APP11 segments)"
          % (c2pa.__version__, c2pa.sdk_version(), outdir, nseg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
