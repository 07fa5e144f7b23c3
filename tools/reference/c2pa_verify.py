#!/usr/bin/python3
"""Independent C2PA verifier for PNG and JPEG, written from the C2PA 2.1 specification.

Usage: c2pa_verify.py [--json] [--trust-anchor PEM] [--dump] IMAGE...

Runs on Debian's /usr/bin/python3 (3.11) with the standard library plus python3-cbor2 and python3-cryptography.
The facts it relies on, with the specification sections they come from, are in C2PA_NOTES.md next to this file.

For each image it:
  * finds the C2PA Manifest Store (PNG: the caBX chunk; JPEG: APP11 JPEG XT segments with CI "JP", grouped by
    box instance number En and ordered by packet sequence number Z, the repeated LBox/TBox stripped from the
    continuation packets) and parses its JUMBF boxes;
  * takes the last C2PA Manifest as the active manifest and locates its claim, claim signature and assertion store;
  * checks every hashed URI in the claim (created_assertions / gathered_assertions, or a v1 claim's assertions)
    against the assertion superbox it names: hash over the superbox contents (jumd + content boxes) without the
    superbox's own LBox/TBox(/XLBox) header;
  * verifies the COSE_Sign1_Tagged claim signature (Sig_structure ["Signature1", protected, h'', claim bytes]),
    ES256/ES384/ES512 (raw r||s), PS256/PS384/PS512 and Ed25519, key from the first x5chain certificate;
  * checks that each x5chain certificate is signed by the next, and with --trust-anchor that the chain ends at an
    anchor; reports the signer certificate's compliance with the C2PA certificate profile and its validity now;
  * checks the c2pa.hash.data hard binding and that its exclusion covers exactly the manifest store's chunk or
    APP11 segments.

Exit status (over all files): 1 if any file fails verification (claim signature, an x5chain certificate signature,
an assertion hash / undeclared or missing assertion, the hard binding, a malformed manifest; or, when --trust-anchor
is given, a chain that does not lead to it); otherwise 2 if any file has no manifest store or cannot be read;
otherwise 0.  An untrusted chain (no anchor given, or a self-made root) and certificate-profile findings are
reported but are not failures.
"""
import argparse
import base64
import datetime
import hashlib
import io
import json
import struct
import sys
import zlib

try:
    import cbor2
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
except ImportError as _e:   # pragma: no cover
    sys.stderr.write("c2pa_verify: missing dependency (%s); install python3-cbor2 and python3-cryptography\n" % _e)
    sys.exit(2)

from c2pa_jumbf import *  # noqa: E402,F401,F403  (constants, containers and JUMBF boxes: c2pa_jumbf.py)


# ------------------------------------------------------------------------------------------------------------------
# CBOR helpers

def cbor_load_exact(blob, what, notes):
    """Decode one CBOR item; raise ManifestError if it is not well-formed; note trailing bytes."""
    try:
        fp = io.BytesIO(blob)
        obj = cbor2.CBORDecoder(fp).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError, EOFError,
            KeyError, IndexError, UnicodeDecodeError) as e:
        raise ManifestError("%s is not well-formed CBOR: %s" % (what, e))
    if fp.tell() != len(blob):
        notes.append("%s: %d bytes after the CBOR item" % (what, len(blob) - fp.tell()))
    return obj


def jsonable(o, depth=0):
    if depth > 64:
        return "..."
    if isinstance(o, bytes):
        return {"bytes_b64": base64.b64encode(o).decode()} if len(o) <= 256 else \
            {"bytes_len": len(o), "sha256": hashlib.sha256(o).hexdigest()}
    if isinstance(o, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v, depth + 1) for v in o]
    if isinstance(o, cbor2.CBORTag):
        return {"cbor_tag": o.tag, "value": jsonable(o.value, depth + 1)}
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    if o is None or isinstance(o, (bool, int, float, str)):
        return o
    return str(o)


# ------------------------------------------------------------------------------------------------------------------
# JUMBF URIs (C2PA 2.1 8.4.1-8.4.2; ISO/IEC 19566-5 C.2)

def resolve_uri(url, store_box, manifest_box):
    """Return (box, error). Absolute URIs (leading '/') start at the store; others at the current manifest."""
    if not isinstance(url, str) or not url.startswith("self#jumbf="):
        return None, "not a self#jumbf URI"
    path = url[len("self#jumbf="):]
    if ".." in path:
        return None, "URI contains '..' (8.4.2.1)"
    absolute = path.startswith("/")
    parts = [p for p in path.strip("/").split("/") if p != ""]
    if not parts:
        return None, "empty JUMBF path"
    if absolute:
        if parts[0] != store_box.label:
            return None, "absolute URI does not start at the manifest store label %r" % store_box.label
        node, rest = store_box, parts[1:]
    else:
        node, rest = manifest_box, parts
    for p in rest:
        matches = [c for c in superboxes(node) if c.label == p]
        if not matches:
            return None, "no box labelled %r under %r" % (p, node.label)
        if len(matches) > 1:
            return None, "%d boxes labelled %r under %r (ambiguous)" % (len(matches), p, node.label)
        node = matches[0]
    return node, None


def is_inside(box, ancestor):
    while box is not None:
        if box is ancestor:
            return True
        box = box.parent
    return False


def base_label(label):
    """Strip a multiple-instance suffix (__N, C2PA 2.1 6.4)."""
    if label and "__" in label:
        head, _, tail = label.rpartition("__")
        if tail.isdigit():
            return head
    return label


# ------------------------------------------------------------------------------------------------------------------
# certificates

def name_str(name):
    try:
        return name.rfc4514_string()
    except Exception:   # pragma: no cover
        return str(name)


def cert_not_before(c):
    return c.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def cert_not_after(c):
    return c.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def der_tbs_has_unique_ids(tbs):
    """True if TBSCertificate carries issuerUniqueID [1] or subjectUniqueID [2] (tiny DER walk)."""
    def read_len(b, i):
        first = b[i]
        i += 1
        if first < 0x80:
            return first, i
        n = first & 0x7F
        return int.from_bytes(b[i:i + n], "big"), i + n
    if not tbs or tbs[0] != 0x30:
        return False
    ln, i = read_len(tbs, 1)
    end = i + ln
    while i < end:
        tag = tbs[i]
        ln, j = read_len(tbs, i + 1)
        if tag in (0x81, 0x82, 0xA1, 0xA2):
            return True
        i = j + ln
    return False


def verify_cert_signature(cert, issuer):
    """Verify that cert's signature verifies under issuer's public key. Returns (ok, detail)."""
    key = issuer.public_key()
    sig = cert.signature
    tbs = cert.tbs_certificate_bytes
    oid = cert.signature_algorithm_oid.dotted_string
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, tbs, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            if oid == "1.2.840.113549.1.1.10":   # RSASSA-PSS: try the allowed hashes, salt length auto
                last = None
                for h in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
                    try:
                        key.verify(sig, tbs, padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO), h)
                        return True, "RSASSA-PSS"
                    except InvalidSignature as e:
                        last = e
                raise last
            key.verify(sig, tbs, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, tbs)
        else:
            return False, "unsupported issuer key type %s" % type(key).__name__
    except InvalidSignature:
        return False, "signature does not verify"
    except Exception as e:
        return False, "cannot verify: %s" % e
    return True, ALLOWED_CERT_SIG_OIDS.get(oid, oid)


def is_self_signed(cert):
    if cert.issuer != cert.subject:
        return False
    ok, _ = verify_cert_signature(cert, cert)
    return ok


def get_ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None
    except Exception:
        return None


def signer_profile(cert, now):
    """C2PA 2.1 14.5.1.1 checks for the signing (end-entity) certificate. Returns (violations, warnings, info)."""
    v, w = [], []
    info = {}
    oid = cert.signature_algorithm_oid.dotted_string
    info["signature_algorithm"] = ALLOWED_CERT_SIG_OIDS.get(oid, oid)
    if oid not in ALLOWED_CERT_SIG_OIDS:
        v.append("signatureAlgorithm %s is not on the allowed list" % oid)
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        info["key"] = "EC %s" % key.curve.name
        if key.curve.name not in ALLOWED_CURVES:
            v.append("EC key on curve %s (allowed: P-256, P-384, P-521)" % key.curve.name)
    elif isinstance(key, rsa.RSAPublicKey):
        info["key"] = "RSA %d" % key.key_size
        if key.key_size < 2048:
            v.append("RSA modulus %d bits < 2048" % key.key_size)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        info["key"] = "Ed25519"
    else:
        info["key"] = type(key).__name__
        v.append("public key type %s is not allowed" % type(key).__name__)
    if cert.version != x509.Version.v3:
        v.append("version is %s, not v3" % cert.version.name)
    if der_tbs_has_unique_ids(cert.tbs_certificate_bytes):
        v.append("issuerUniqueID/subjectUniqueID present")
    bc = get_ext(cert, x509.BasicConstraints)
    ku = get_ext(cert, x509.KeyUsage)
    eku = get_ext(cert, x509.ExtendedKeyUsage)
    is_ca = bool(bc and bc.value.ca)
    info["basic_constraints"] = "absent" if bc is None else "cA=%s" % bc.value.ca
    if is_ca:
        v.append("BasicConstraints cA is asserted: a CA certificate shall not sign manifests (14.5.1.2)")
    if ku is None:
        v.append("KeyUsage extension absent")
    else:
        info["key_usage_critical"] = ku.critical
        if not ku.critical:
            w.append("KeyUsage is not marked critical (should be)")
        if not ku.value.digital_signature:
            v.append("KeyUsage lacks digitalSignature")
        if ku.value.key_cert_sign and not is_ca:
            v.append("KeyUsage asserts keyCertSign without BasicConstraints cA")
    if eku is None:
        v.append("ExtendedKeyUsage extension absent (required for end-entity certificates)")
        info["eku"] = []
    else:
        oids = [o.dotted_string for o in eku.value]
        info["eku"] = [EKU_NAMES.get(o, o) for o in oids]
        if not oids:
            v.append("ExtendedKeyUsage is empty")
        if EKU_ANY in oids:
            v.append("anyExtendedKeyUsage present")
        if not (EKU_EMAIL in oids or EKU_DOCSIGN in oids or EKU_C2PA_CLAIM in oids):
            v.append("no C2PA signing EKU (emailProtection, documentSigning; c2pa-kp-claimSigning from 2.2)")
        elif EKU_C2PA_CLAIM in oids and not (EKU_EMAIL in oids or EKU_DOCSIGN in oids):
            w.append("only c2pa-kp-claimSigning EKU: accepted by C2PA 2.2+, not by the 2.1 default list")
        if EKU_TIMESTAMP in oids or EKU_OCSP in oids:
            v.append("timeStamping/OCSPSigning EKU on a manifest signer (they must be the only purpose)")
    aki = get_ext(cert, x509.AuthorityKeyIdentifier)
    ski = get_ext(cert, x509.SubjectKeyIdentifier)
    self_signed = is_self_signed(cert)
    info["self_signed"] = self_signed
    if self_signed:
        v.append("self-signed signer certificate")
    elif aki is None:
        v.append("AuthorityKeyIdentifier absent")
    if ski is None:
        w.append("SubjectKeyIdentifier absent (should be present)")
    nb, na = cert_not_before(cert), cert_not_after(cert)
    info["not_before"] = nb.isoformat()
    info["not_after"] = na.isoformat()
    info["valid_now"] = nb <= now <= na
    return v, w, info


def ca_profile(cert, idx):
    """Light checks on an intermediate/root CA certificate (14.5.1.1). Returns a list of findings."""
    f = []
    bc = get_ext(cert, x509.BasicConstraints)
    if bc is None or not bc.value.ca:
        f.append("certificate %d issues a certificate but BasicConstraints cA is not asserted" % idx)
    ku = get_ext(cert, x509.KeyUsage)
    if ku is not None and not ku.value.key_cert_sign:
        f.append("certificate %d issues a certificate but KeyUsage lacks keyCertSign" % idx)
    if get_ext(cert, x509.SubjectKeyIdentifier) is None:
        f.append("certificate %d (a CA) lacks SubjectKeyIdentifier" % idx)
    oid = cert.signature_algorithm_oid.dotted_string
    if oid not in ALLOWED_CERT_SIG_OIDS:
        f.append("certificate %d signatureAlgorithm %s not allowed" % (idx, oid))
    return f


def load_cert_checked(der, what):
    """Parse a DER certificate and touch every field used later (cryptography parses lazily)."""
    try:
        c = x509.load_der_x509_certificate(der)
        c.subject, c.issuer, c.version, c.serial_number
        c.not_valid_before, c.not_valid_after
        c.public_key()
        c.signature_algorithm_oid, c.signature, c.tbs_certificate_bytes
        list(c.extensions)
        name_str(c.subject), name_str(c.issuer)
    except Exception as e:
        raise ManifestError("%s is not a well-formed X.509 certificate: %s" % (what, e))
    return c


def load_anchors(path):
    with open(path, "rb") as f:
        blob = f.read()
    certs = []
    marker = b"-----BEGIN CERTIFICATE-----"
    if marker in blob:
        for part in blob.split(marker)[1:]:
            certs.append(x509.load_pem_x509_certificate(marker + part.split(b"-----END CERTIFICATE-----")[0]
                                                        + b"-----END CERTIFICATE-----\n"))
    else:
        certs.append(x509.load_der_x509_certificate(blob))
    return certs


# ------------------------------------------------------------------------------------------------------------------
# COSE (RFC 9052; C2PA 2.1 13.2)

def cose_verify(cose_bytes, claim_bytes, res, notes):
    """Verify the claim signature. Fills res['signature'], returns the list of certificates (may be empty)."""
    sig = res["signature"]
    obj = cbor_load_exact(cose_bytes, "claim signature", notes)
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != 18:
            raise ManifestError("claim signature has CBOR tag %d, not 18 (COSE_Sign1_Tagged)" % obj.tag)
        obj = obj.value
    else:
        res["failures"].append("claim signature is not COSE_Sign1_Tagged (tag 18) (13.2.3)")
    if not isinstance(obj, list) or len(obj) != 4:
        raise ManifestError("claim signature is not a 4-element COSE_Sign1 array")
    prot_bstr, unprot, payload, signature = obj
    if not isinstance(prot_bstr, bytes) or not isinstance(unprot, dict) or not isinstance(signature, bytes):
        raise ManifestError("COSE_Sign1 elements have the wrong CBOR types")
    prot = cbor_load_exact(prot_bstr, "COSE protected header", notes) if prot_bstr else {}
    if not isinstance(prot, dict):
        raise ManifestError("COSE protected header is not a map")
    sig["protected_labels"] = [str(k) for k in prot]
    sig["unprotected_labels"] = [str(k) for k in unprot]
    if "pad" in unprot and isinstance(unprot["pad"], bytes):
        sig["unprotected_pad_bytes"] = len(unprot["pad"])
        if any(unprot["pad"]):
            notes.append("COSE unprotected 'pad' is not all zero bytes (10.4.2)")
    for tl in ("sigTst", "sigTst2"):
        if tl in unprot or tl in prot:
            sig["timestamp"] = tl + " present (RFC 3161 token not validated by this tool)"
    if "rVals" in unprot:
        sig["rVals"] = "present (OCSP responses not validated by this tool)"
    alg = prot.get(COSE_HDR_ALG)
    if alg is None:
        if COSE_HDR_ALG in unprot:
            res["failures"].append("COSE alg header is in the unprotected bucket (13.2.3: shall be protected)")
            alg = unprot[COSE_HDR_ALG]
        else:
            raise ManifestError("COSE alg header (label 1) missing")
    if alg not in COSE_ALGS:
        res["failures"].append("signature algorithm %r not on the allowed list (13.2.1): algorithm.unsupported"
                               % (alg,))
        sig["alg"] = str(alg)
        sig["valid"] = False
        return []
    alg_name, kind, hcls = COSE_ALGS[alg]
    sig["alg"] = alg_name

    # credential: x5chain, integer label 33 preferred over the string label (14.5)
    found = [(bn, lab) for bn, bucket in (("protected", prot), ("unprotected", unprot))
             for lab in (COSE_HDR_X5CHAIN, "x5chain") if lab in bucket]
    for lab in (COSE_HDR_X5CHAIN, "x5chain"):
        if ("protected", lab) in found and ("unprotected", lab) in found:
            res["failures"].append("x5chain label %r in both the protected and unprotected headers: multiple "
                                   "credentials (14.2, 14.5)" % (lab,))
    chain = None
    where = None
    for cand in (("protected", COSE_HDR_X5CHAIN), ("unprotected", COSE_HDR_X5CHAIN), ("protected", "x5chain"),
                 ("unprotected", "x5chain")):
        if cand in found:      # 14.5: the integer label wins over the string label
            where = cand
            chain = (prot if cand[0] == "protected" else unprot)[cand[1]]
            break
    if chain is None:
        res["failures"].append("no x5chain certificate in the COSE headers (14.2): signingCredential.invalid")
        sig["valid"] = False
        return []
    sig["x5chain_location"] = "%s header, label %r" % where
    if where[0] != "protected":
        notes.append("x5chain is in the unprotected header (accepted for old files, 14.5; generators shall use the "
                     "protected header, and c2pa-rs 0.91 rejects this file)")
    if where[1] != COSE_HDR_X5CHAIN:
        notes.append("x5chain uses the deprecated string label (14.5: use integer 33)")
    if isinstance(chain, bytes):
        ders = [chain]
    elif isinstance(chain, list) and chain and all(isinstance(c, bytes) for c in chain):
        ders = chain
    else:
        raise ManifestError("x5chain is neither a bstr nor a non-empty array of bstr")
    certs = [load_cert_checked(d, "x5chain certificate %d" % i) for i, d in enumerate(ders)]
    sig["x5chain_count"] = len(certs)

    if payload is not None:
        if isinstance(payload, bytes):
            res["failures"].append("COSE payload is not nil: a standard manifest's claim signature shall use "
                                   "detached content (10.3.2.4)")
        else:
            raise ManifestError("COSE payload is neither nil nor a bstr")
    to_be_signed = cbor2.dumps(["Signature1", prot_bstr, b"", claim_bytes])
    key = certs[0].public_key()
    ok = False
    detail = ""
    try:
        if kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                detail = "%s needs an EC key, certificate has %s" % (alg_name, type(key).__name__)
            elif key.curve.name not in ALLOWED_CURVES:
                detail = "EC key on curve %s not allowed (13.2.1)" % key.curve.name
            else:
                n = (key.curve.key_size + 7) // 8
                if len(signature) != 2 * n:
                    detail = "ECDSA signature is %d bytes, expected %d (raw r||s, RFC 9053 2.1)" % (
                        len(signature), 2 * n)
                else:
                    r = int.from_bytes(signature[:n], "big")
                    s = int.from_bytes(signature[n:], "big")
                    key.verify(utils.encode_dss_signature(r, s), to_be_signed, ec.ECDSA(hcls()))
                    ok = True
        elif kind == "pss":
            if not isinstance(key, rsa.RSAPublicKey):
                detail = "%s needs an RSA key" % alg_name
            elif key.key_size < 2048:
                detail = "RSA key of %d bits < 2048 (13.2.1)" % key.key_size
            else:
                h = hcls()
                key.verify(signature, to_be_signed, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
                ok = True
        elif kind == "eddsa":
            if not isinstance(key, ed25519.Ed25519PublicKey):
                detail = "EdDSA needs an Ed25519 key"
            else:
                key.verify(signature, to_be_signed)
                ok = True
    except InvalidSignature:
        detail = "signature does not verify over the claim"
    sig["valid"] = ok
    if not ok:
        res["failures"].append("claim signature: %s (claimSignature.mismatch)" % (detail or "invalid"))
    return certs


# ------------------------------------------------------------------------------------------------------------------
# verification of one file

def verify_file(path, anchors, want_dump=False):
    res = {"file": path, "format": None, "manifest_store": None, "failures": [], "notes": [], "exit": 0,
           "signature": {}, "certificates": {}, "assertions": [], "hard_binding": {}}
    notes = res["notes"]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        res["error"] = "cannot read: %s" % e.strerror
        res["exit"] = 2
        return res
    try:
        if data.startswith(PNG_SIG):
            res["format"] = "PNG"
            store, carrier = find_store_png(data, notes)
        elif data.startswith(b"\xff\xd8"):
            res["format"] = "JPEG"
            store, carrier = find_store_jpeg(data, notes)
        else:
            raise ReadError("not a PNG or JPEG file")
    except ReadError as e:
        res["error"] = str(e)
        res["exit"] = 2
        return res
    except ManifestError as e:
        res["failures"].append(str(e))
        res["exit"] = 1
        return res
    if store is None:
        res["error"] = "no manifest (no C2PA manifest store found)"
        res["exit"] = 2
        return res
    res["manifest_store"] = carrier["description"]
    try:
        verify_store(data, store, carrier, anchors, res, want_dump)
    except ManifestError as e:
        res["failures"].append(str(e))
    res["exit"] = 1 if res["failures"] else 0
    return res


def verify_store(data, store, carrier, anchors, res, want_dump):
    notes = res["notes"]
    top = parse_boxes(store, 0, len(store), 0, notes)
    if want_dump:
        out = []
        dump_tree(store, top, out)
        res["jumbf_tree"] = out
    if len(top) != 1 or top[0].type != "jumb":
        raise ManifestError("manifest store is not a single JUMBF superbox")
    root = top[0]
    if root.uuid != UUID_STORE:
        raise ManifestError("outer superbox type is %s, not the C2PA manifest store UUID" % uuid_str(root.uuid))
    if root.label != "c2pa":
        notes.append("manifest store label is %r, not 'c2pa' (11.1.4.2)" % root.label)
    check_jumd_rules(root, notes)
    manifests = [b for b in superboxes(root) if b.uuid in MANIFEST_KINDS]
    if not manifests:
        raise ManifestError("manifest store contains no C2PA manifest")
    res["manifest_count"] = len(manifests)
    active = manifests[-1]                   # 15.5.1: the last manifest superbox is the active manifest
    kind = MANIFEST_KINDS[active.uuid]
    res["active_manifest"] = {"label": active.label, "kind": kind}
    if active.uuid == UUID_COMPRESSED:
        raise ManifestError("active manifest is Brotli-compressed (c2cm); this verifier cannot decompress it")

    # claim (15.6)
    claims = [b for b in superboxes(active) if b.uuid == UUID_CLAIM]
    if not claims:
        raise ManifestError("active manifest has no claim box (claim.missing)")
    if len(claims) > 1:
        raise ManifestError("active manifest has %d claim boxes (claim.multiple)" % len(claims))
    claim_box = claims[0]
    cb = content_boxes(claim_box)
    if len(cb) != 1 or cb[0].type != "cbor":
        raise ManifestError("claim box does not hold exactly one cbor content box (11.1.4.4)")
    claim_bytes = bytes(store[cb[0].payload[0]:cb[0].payload[1]])
    claim = cbor_load_exact(claim_bytes, "claim", notes)
    if not isinstance(claim, dict):
        raise ManifestError("claim is not a CBOR map (claim.malformed)")
    v2 = claim_box.label == "c2pa.claim.v2"
    if claim_box.label not in ("c2pa.claim.v2", "c2pa.claim"):
        notes.append("claim box label %r (expected c2pa.claim.v2)" % claim_box.label)
        v2 = "created_assertions" in claim
    try:
        if cbor2.dumps(claim, canonical=True) != claim_bytes:
            notes.append("claim CBOR is not in core deterministic encoding (10.1)")
    except Exception:
        pass
    required = ("instanceID", "claim_generator_info", "signature", "created_assertions") if v2 else \
        ("claim_generator", "signature", "assertions", "dc:format", "instanceID")
    missing = [k for k in required if k not in claim]
    if missing:
        res["failures"].append("claim lacks required field(s) %s (claim.malformed, 15.6.2)" % ", ".join(missing))
    cgi = claim.get("claim_generator_info")
    gen = {}
    if v2:
        if not isinstance(cgi, dict) or not isinstance(cgi.get("name"), str):
            res["failures"].append("claim_generator_info is not a map with a name (claim.malformed, 15.6.2)")
        else:
            gen = cgi
    else:
        if isinstance(cgi, list) and cgi and isinstance(cgi[0], dict):
            gen = cgi[0]
    claim_alg = claim.get("alg")
    res["claim"] = {
        "label": claim_box.label,
        "version": 2 if v2 else 1,
        "claim_generator": (gen.get("name") if gen else None) or claim.get("claim_generator"),
        "claim_generator_info": jsonable(cgi),
        "instanceID": claim.get("instanceID"),
        "dc:title": claim.get("dc:title"),
        "alg": claim_alg,
    }
    for k in claim:
        if k not in ("instanceID", "claim_generator_info", "signature", "created_assertions", "gathered_assertions",
                     "dc:title", "redacted_assertions", "alg", "alg_soft", "metadata", "claim_generator",
                     "assertions", "dc:format", "specVersion"):
            notes.append("claim has an unrecognised field %r" % (k,))
    if v2 and "dc:format" in claim:
        notes.append("claim v2 carries dc:format (a v1 field, not in claim-map-v2)")
    if v2 and "claim_generator" in claim:
        notes.append("claim v2 carries claim_generator (a v1 field, not in claim-map-v2)")

    # assertion store
    stores = [b for b in superboxes(active) if b.uuid == UUID_ASSERTIONS]
    if len(stores) != 1:
        raise ManifestError("active manifest has %d assertion stores (expected 1)" % len(stores))
    astore = stores[0]
    if astore.label != "c2pa.assertions":
        notes.append("assertion store label %r (expected c2pa.assertions)" % astore.label)

    # hashed URIs (15.10.3)
    refs = []
    if v2:
        for field in ("created_assertions", "gathered_assertions"):
            lst = claim.get(field, [])
            if field in claim and (not isinstance(lst, list) or not lst):
                res["failures"].append("%s is not a non-empty array (claim.malformed)" % field)
                continue
            refs += [(field, r) for r in lst]
    else:
        lst = claim.get("assertions", [])
        refs += [("assertions", r) for r in (lst if isinstance(lst, list) else [])]
    referenced = set()
    by_label = {}
    for field, ref in refs:
        entry = {"field": field, "url": None, "label": None, "hash_ok": False}
        res["assertions"].append(entry)
        if not isinstance(ref, dict) or not isinstance(ref.get("url"), str) or not isinstance(ref.get("hash"), bytes):
            res["failures"].append("%s has a malformed hashed-uri entry" % field)
            entry["error"] = "malformed hashed-uri"
            continue
        entry["url"] = ref["url"]
        box, err = resolve_uri(ref["url"], root, active)
        if box is None:
            res["failures"].append("%s: cannot resolve (%s) (assertion.missing)" % (ref["url"], err))
            entry["error"] = err
            continue
        if not is_inside(box, active):
            res["failures"].append("%s resolves outside the active manifest (assertion.outsideManifest)"
                                   % ref["url"])
            entry["error"] = "outside manifest"
            continue
        if box.parent is not astore:
            notes.append("%s does not point at a box in the assertion store" % ref["url"])
        entry["label"] = box.label
        alg = ref.get("alg", claim_alg)
        entry["alg"] = alg
        if alg not in HASH_ALGS:
            res["failures"].append("%s: hash algorithm %r not allowed (algorithm.unsupported)" % (ref["url"], alg))
            entry["error"] = "algorithm.unsupported"
            continue
        s, e = box.payload      # superbox contents without its LBox/TBox(/XLBox) header (8.4.2.3)
        digest = HASH_ALGS[alg](store[s:e]).digest()
        entry["hash_ok"] = digest == ref["hash"]
        entry["salted"] = bool(box.jumd["private"] and box.jumd["private"]["type"] == "c2sh")
        if not entry["hash_ok"]:
            res["failures"].append("assertion %s: hash mismatch (assertion.hashedURI.mismatch)" % box.label)
        if id(box) in referenced:
            notes.append("assertion %s is referenced more than once" % box.label)
        referenced.add(id(box))
        by_label[box.label] = box
    for b in superboxes(astore):
        if id(b) not in referenced:
            res["failures"].append("assertion %s is in the assertion store but not in the claim "
                                   "(assertion.undeclared, 15.10.3.1)" % b.label)
            res["assertions"].append({"field": None, "url": None, "label": b.label, "hash_ok": None,
                                      "error": "undeclared"})
            by_label.setdefault(b.label, b)
    redacted = claim.get("redacted_assertions", [])
    if not isinstance(redacted, list):
        res["failures"].append("redacted_assertions is not an array (claim.malformed)")
        redacted = []
    for u in redacted:
        box, _ = resolve_uri(u, root, active) if isinstance(u, str) else (None, None)
        if (box is not None and is_inside(box, active)) or (isinstance(u, str) and active.label and
                                                           ("/" + active.label + "/") in u):
            res["failures"].append("redacted_assertions names the claim's own assertion %s (assertion.selfRedacted)"
                                   % u)

    # decode assertions for the report
    decoded = {}
    for entry in res["assertions"]:
        lab = entry.get("label")
        if not lab or lab not in by_label or lab in decoded:
            continue
        box = by_label[lab]
        ctype = CONTENT_TYPES.get(box.uuid, uuid_str(box.uuid))
        entry["content_type"] = ctype
        cbs = content_boxes(box)
        if box.uuid == UUID_CBOR:
            if len(cbs) != 1 or cbs[0].type != "cbor":
                res["failures"].append("assertion %s: CBOR assertion without exactly one cbor box" % lab)
                continue
            blob = bytes(store[cbs[0].payload[0]:cbs[0].payload[1]])
            try:
                decoded[lab] = cbor_load_exact(blob, "assertion %s" % lab, notes)
            except ManifestError as e:
                res["failures"].append("%s (assertion.cbor.invalid)" % e)
        elif box.uuid == UUID_JSON:
            if len(cbs) != 1 or cbs[0].type != "json":
                res["failures"].append("assertion %s: JSON assertion without exactly one json box" % lab)
                continue
            try:
                decoded[lab] = json.loads(bytes(store[cbs[0].payload[0]:cbs[0].payload[1]]).decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                res["failures"].append("assertion %s is not valid JSON: %s (assertion.json.invalid)" % (lab, e))
        elif box.uuid == UUID_EMBEDDED_FILE:
            info = {}
            for c in cbs:
                s, e = c.payload
                if c.type == "bfdb" and e - s >= 1:
                    toggles = store[s]
                    rest = bytes(store[s + 1:e]).split(b"\x00")
                    info["media_type"] = rest[0].decode("utf-8", "replace")
                    if toggles & 1 and len(rest) > 1:
                        info["file_name"] = rest[1].decode("utf-8", "replace")
                elif c.type == "bidb":
                    info["size"] = e - s
            entry["embedded_file"] = info

    # actions
    dst = None
    created = False
    for lab, obj in decoded.items():
        if base_label(lab) in ("c2pa.actions", "c2pa.actions.v2") and isinstance(obj, dict):
            acts = obj.get("actions")
            if not isinstance(acts, list):
                notes.append("%s has no actions array" % lab)
                continue
            res.setdefault("actions", {})[lab] = [a.get("action") for a in acts if isinstance(a, dict)]
            for i, a in enumerate(acts):
                if isinstance(a, dict) and a.get("action") == "c2pa.created":
                    created = True
                    if dst is None:
                        dst = a.get("digitalSourceType")
                    if i != 0 and lab == "c2pa.actions.v2":
                        notes.append("c2pa.created is not the first action (18.12.2)")
    res["c2pa_created"] = created
    res["digital_source_type"] = dst
    if active.uuid in (UUID_MANIFEST, UUID_MANIFEST_OLD) and "actions" not in res:
        notes.append("standard manifest without an actions assertion (18.12.2 requires one)")

    # claim signature (15.7)
    sig_url = claim.get("signature")
    sig_box, err = resolve_uri(sig_url, root, active) if isinstance(sig_url, str) else (None, "absent")
    if sig_box is None or not is_inside(sig_box, active) or sig_box.uuid != UUID_SIGNATURE:
        res["failures"].append("claim 'signature' %r does not resolve to a claim signature box in the active "
                               "manifest (claimSignature.missing): %s" % (sig_url, err or "wrong box"))
        sig_candidates = [b for b in superboxes(active) if b.uuid == UUID_SIGNATURE]
        sig_box = sig_candidates[0] if len(sig_candidates) == 1 else None
    certs = []
    if sig_box is None:
        res["signature"]["valid"] = False
    else:
        scb = content_boxes(sig_box)
        if len(scb) != 1 or scb[0].type != "cbor":
            raise ManifestError("claim signature box does not hold exactly one cbor box (11.1.4.4)")
        cose_bytes = bytes(store[scb[0].payload[0]:scb[0].payload[1]])
        certs = cose_verify(cose_bytes, claim_bytes, res, notes)

    # certificates
    check_certificates(certs, anchors, res)

    # hard binding (15.12)
    check_hard_binding(data, store, carrier, active, by_label, decoded, claim_alg, res)


def check_certificates(certs, anchors, res):
    ci = res["certificates"]
    if not certs:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = certs[0]
    ci["signer_subject"] = name_str(leaf.subject)
    ci["signer_issuer"] = name_str(leaf.issuer)
    ci["chain"] = [name_str(c.subject) for c in certs]
    v, w, info = signer_profile(leaf, now)
    ci.update(info)
    ci["profile_violations"] = v
    ci["profile_warnings"] = w
    ci["meets_profile"] = not v
    links = []
    for i in range(len(certs) - 1):
        ok, detail = verify_cert_signature(certs[i], certs[i + 1])
        name_ok = certs[i].issuer == certs[i + 1].subject
        links.append({"cert": i, "issuer": i + 1, "signature_ok": ok, "issuer_name_matches": name_ok,
                      "detail": detail})
        if not ok:
            res["failures"].append("x5chain certificate %d is not signed by certificate %d (%s)"
                                   % (i, i + 1, detail))
        elif not name_ok:
            res["notes"].append("x5chain certificate %d's issuer name differs from certificate %d's subject"
                                % (i, i + 1))
        ci.setdefault("ca_findings", []).extend(ca_profile(certs[i + 1], i + 1))
        nb, na = cert_not_before(certs[i + 1]), cert_not_after(certs[i + 1])
        if not (nb <= now <= na):
            ci.setdefault("ca_findings", []).append("certificate %d is outside its validity period now" % (i + 1))
    ci["chain_links"] = links
    last = certs[-1]
    if len(certs) > 1 and is_self_signed(last):
        res["notes"].append("x5chain includes its self-signed root (14.5: the root should not be included)")
    trust = {"anchor_given": bool(anchors), "trusted": False}
    if anchors:
        for a in anchors:
            if a.public_bytes(serialization.Encoding.DER) == last.public_bytes(serialization.Encoding.DER):
                trust.update(trusted=True, detail="chain ends with the anchor itself: %s" % name_str(a.subject))
                break
            if last.issuer == a.subject:
                ok, detail = verify_cert_signature(last, a)
                if ok:
                    trust.update(trusted=True, detail="last x5chain certificate is signed by anchor %s"
                                 % name_str(a.subject))
                    bc = get_ext(a, x509.BasicConstraints)
                    if bc is None or not bc.value.ca:
                        res["notes"].append("trust anchor %s is not a CA certificate" % name_str(a.subject))
                    nb, na = cert_not_before(a), cert_not_after(a)
                    if not (nb <= datetime.datetime.now(datetime.timezone.utc) <= na):
                        res["notes"].append("trust anchor is outside its validity period now")
                    break
        if not trust["trusted"]:
            trust["detail"] = "the chain does not lead to the given trust anchor(s)"
            res["failures"].append("signing credential is not trusted by the given --trust-anchor "
                                   "(signingCredential.untrusted)")
    else:
        trust["detail"] = "untrusted: no --trust-anchor given (chain ends at %s)" % name_str(last.issuer)
    ci["trust"] = trust


def check_hard_binding(data, store, carrier, active, by_label, decoded, claim_alg, res):
    hb = res["hard_binding"]
    bindings = [lab for lab in by_label if base_label(lab) in HARD_BINDINGS]
    if active.uuid not in (UUID_MANIFEST, UUID_MANIFEST_OLD):
        hb["status"] = "not checked: active manifest is not a standard manifest (its binding is in a parent)"
        res["failures"].append("active manifest is an update/time-stamp manifest: following parentOf ingredients "
                               "to the hard binding is not supported by this verifier")
        return
    if not bindings:
        res["failures"].append("no hard binding assertion (claim.hardBindings.missing)")
        hb["status"] = "missing"
        return
    if len(bindings) > 1:
        res["failures"].append("%d hard binding assertions (assertion.multipleHardBindings)" % len(bindings))
    lab = bindings[0]
    hb["label"] = lab
    if base_label(lab) != "c2pa.hash.data":
        res["failures"].append("hard binding %s is not supported by this verifier (only c2pa.hash.data)" % lab)
        hb["status"] = "unsupported"
        return
    dh = decoded.get(lab)
    if not isinstance(dh, dict):
        res["failures"].append("c2pa.hash.data is not a CBOR map (assertion.dataHash.malformed)")
        return
    alg = dh.get("alg", claim_alg)
    hb["alg"] = alg
    if alg not in HASH_ALGS:
        res["failures"].append("c2pa.hash.data alg %r not allowed (algorithm.unsupported)" % (alg,))
        return
    if "pad" not in dh:
        res["notes"].append("c2pa.hash.data has no 'pad' field (18.5.2: pad shall always be present)")
    for pk in ("pad", "pad2"):
        if pk in dh and (not isinstance(dh[pk], bytes) or any(dh[pk])):
            res["notes"].append("c2pa.hash.data %s is not a zero-filled byte string" % pk)
    hb["pad_bytes"] = len(dh["pad"]) if isinstance(dh.get("pad"), bytes) else None
    if "url" in dh:
        res["notes"].append("c2pa.hash.data carries the deprecated url field")
    exc = dh.get("exclusions", [])
    ranges = []
    if not isinstance(exc, list):
        res["failures"].append("c2pa.hash.data exclusions is not an array (assertion.dataHash.malformed)")
        return
    for x in exc:
        if not isinstance(x, dict) or not isinstance(x.get("start"), int) or not isinstance(x.get("length"), int) \
                or isinstance(x.get("start"), bool) or isinstance(x.get("length"), bool):
            res["failures"].append("c2pa.hash.data exclusion %r malformed (assertion.dataHash.malformed)" % (x,))
            return
        ranges.append((x["start"], x["length"]))
    hb["exclusions"] = [{"start": s, "length": n} for s, n in ranges]
    prev_end = 0
    for s, n in ranges:
        if s < 0 or n < 0 or s < prev_end:
            res["failures"].append("c2pa.hash.data exclusions negative, unordered or overlapping "
                                   "(assertion.dataHash.malformed, 15.12.1.1)")
            return
        if s + n > len(data):
            res["failures"].append("exclusion [%d, +%d) runs past the end of the file (assertion.dataHash.mismatch)"
                                   % (s, n))
            return
        prev_end = s + n
    h = HASH_ALGS[alg]()
    pos = 0
    for s, n in ranges:
        h.update(data[pos:s])
        pos = s + n
    h.update(data[pos:])
    want = dh.get("hash")
    hb["hash_ok"] = isinstance(want, bytes) and h.digest() == want
    if not hb["hash_ok"]:
        res["failures"].append("hard binding: %s over the file minus the exclusions does not match "
                               "c2pa.hash.data (assertion.dataHash.mismatch)" % alg)

    # the exclusions must cover exactly the manifest store's carrier (15.12.1.1, 15.12.1.2, 18.5.3, 18.5.4)
    nonempty = [(s, n) for s, n in ranges if n > 0]
    if len(nonempty) != len(ranges):
        res["notes"].append("c2pa.hash.data has zero-length exclusion(s)")
    cr = carrier["ranges"]
    c_start = cr[0][0]
    c_end = cr[-1][0] + cr[-1][1]
    total = sum(n for _, n in cr)
    exact = False
    if len(nonempty) == 1:
        s, n = nonempty[0]
        if carrier["kind"].startswith("png"):
            cpos, dlen = carrier["png_chunk"]
            if (s, n) == (cpos, dlen + 12):
                exact = True
                hb["exclusion_coverage"] = "exactly the caBX chunk (length, type, data and CRC)"
            elif (s, n) == (cpos, dlen + 8):
                res["notes"].append("the exclusion leaves the caBX chunk's CRC hashed: the CRC depends on the "
                                    "whole store (which holds this hash and the signature), so the hash cannot "
                                    "match without tuning unsigned filler; exclude the whole chunk (length, type, "
                                    "data and CRC), as c2pa-rs does")
        else:
            if carrier.get("contiguous") and (s, n) == (c_start, c_end - c_start) and n == total:
                exact = True
                hb["exclusion_coverage"] = "exactly the %d C2PA APP11 segment(s), markers and Lp included" % len(cr)
    if not exact:
        hb["exclusion_coverage"] = "MISMATCH: exclusions %s vs manifest store bytes [%d, %d) (%d bytes)" % (
            [(s, n) for s, n in nonempty], c_start, c_end, total)
        res["failures"].append("hard binding exclusions do not cover exactly the manifest store's %s "
                               "(must be one range [%d, +%d); 15.12.1.1/15.12.1.2/18.5.3/18.5.4) "
                               "(assertion.dataHash.mismatch)" % (
                                   "caBX chunk" if carrier["kind"].startswith("png") else "APP11 segments",
                                   c_start, c_end - c_start))
    hb["status"] = "ok" if (hb["hash_ok"] and exact) else "failed"


# ------------------------------------------------------------------------------------------------------------------
# reporting

def print_report(r, out):
    w = out.write
    w("== %s" % r["file"])
    if r.get("format"):
        w(" (%s)" % r["format"])
    w("\n")
    if r.get("error"):
        w("error: %s\n" % r["error"])
        w("RESULT: %s\n\n" % ("NO MANIFEST" if r["error"].startswith("no manifest") else "UNREADABLE"))
        return
    if r.get("manifest_store"):
        w("manifest store: %s\n" % r["manifest_store"])
    for line in r.get("jumbf_tree", []):
        w("  | %s\n" % line)
    am = r.get("active_manifest")
    if am:
        w("active manifest: %s, %s; %d manifest(s) in the store\n" % (am["label"], am["kind"],
                                                                     r.get("manifest_count", 0)))
    c = r.get("claim")
    if c:
        info = c.get("claim_generator_info")
        extra = ""
        if isinstance(info, dict):
            extra = " " + ", ".join("%s=%s" % (k, v) for k, v in info.items() if k != "name" and
                                    isinstance(v, (str, int)))
        w("claim: %s; claim generator: %s%s\n" % (c["label"], c["claim_generator"], extra))
        w("  instanceID: %s; dc:title: %s; alg: %s\n" % (c["instanceID"], c["dc:title"], c["alg"]))
    if r["assertions"]:
        w("assertions:\n")
        for a in r["assertions"]:
            status = "ok" if a.get("hash_ok") else ("UNDECLARED" if a.get("error") == "undeclared"
                                                    else "FAIL" if a.get("hash_ok") is False else "--")
            desc = a.get("content_type") or ""
            if a.get("embedded_file"):
                ef = a["embedded_file"]
                desc += " %s, %s bytes" % (ef.get("media_type"), ef.get("size"))
            if a.get("salted"):
                desc += ", salted"
            w("  [%s] %s (%s; %s%s)\n" % (status, a.get("label") or a.get("url"), desc.strip(), a.get("field"),
                                         ", " + a["error"] if a.get("error") and a["error"] != "undeclared" else ""))
    for lab, acts in (r.get("actions") or {}).items():
        w("%s actions: %s\n" % (lab, ", ".join(str(x) for x in acts)))
    if r.get("c2pa_created"):
        w("c2pa.created digitalSourceType: %s\n" % r.get("digital_source_type"))
    else:
        w("c2pa.created action: none\n")
    s = r.get("signature") or {}
    if s:
        w("claim signature: COSE_Sign1 %s, x5chain %s (%s cert(s)): %s\n" % (
            s.get("alg"), s.get("x5chain_location"), s.get("x5chain_count"),
            "VALID" if s.get("valid") else "INVALID"))
        if s.get("timestamp"):
            w("  time-stamp: %s\n" % s["timestamp"])
        if s.get("rVals"):
            w("  rVals: %s\n" % s["rVals"])
    ci = r.get("certificates") or {}
    if ci:
        w("signer: %s\n" % ci["signer_subject"])
        w("  issuer: %s\n" % ci["signer_issuer"])
        w("  key %s, cert signature %s, EKU %s, %s\n" % (ci.get("key"), ci.get("signature_algorithm"),
                                                         ", ".join(ci.get("eku", [])) or "none",
                                                         ci.get("basic_constraints")))
        w("  validity %s .. %s: %s\n" % (ci.get("not_before"), ci.get("not_after"),
                                         "valid now" if ci.get("valid_now") else "NOT VALID NOW"))
        if ci.get("meets_profile"):
            w("  certificate profile (C2PA 14.5.1): meets it\n")
        else:
            w("  certificate profile (C2PA 14.5.1): DOES NOT MEET: %s\n" % "; ".join(ci["profile_violations"]))
        for x in ci.get("profile_warnings", []):
            w("  profile warning: %s\n" % x)
        for l in ci.get("chain_links", []):
            w("  chain: cert %d signed by cert %d: %s\n" % (l["cert"], l["issuer"],
                                                          "ok" if l["signature_ok"] else "FAIL (%s)" % l["detail"]))
        for x in ci.get("ca_findings", []):
            w("  chain note: %s\n" % x)
        t = ci.get("trust") or {}
        w("  trust: %s%s\n" % ("TRUSTED, " if t.get("trusted") else "", t.get("detail")))
    hb = r.get("hard_binding") or {}
    if hb.get("label"):
        w("hard binding: %s, %s, exclusions %s: %s\n" % (
            hb["label"], hb.get("alg"), [(e["start"], e["length"]) for e in hb.get("exclusions", [])],
            "hash matches" if hb.get("hash_ok") else "HASH MISMATCH"))
        if hb.get("exclusion_coverage"):
            w("  exclusion covers %s\n" % hb["exclusion_coverage"])
        if hb.get("pad_bytes") is not None:
            w("  pad: %d zero byte(s)\n" % hb["pad_bytes"])
    for n in r["notes"]:
        w("note: %s\n" % n)
    for f in r["failures"]:
        w("FAILURE: %s\n" % f)
    if r["exit"] == 0:
        t = (ci.get("trust") or {}) if ci else {}
        extra = ["trusted" if t.get("trusted") else "signer not trusted (no anchor)"]
        if ci and not ci.get("meets_profile"):
            extra.append("signer certificate does NOT meet the C2PA certificate profile")
        if ci and not ci.get("valid_now"):
            extra.append("signer certificate NOT valid now")
        w("RESULT: VALID (claim signature, x5chain signatures, assertion hashes and hard binding hold); %s\n\n"
          % "; ".join(extra))
    else:
        w("RESULT: INVALID (%d failure(s))\n\n" % len(r["failures"]))


def verify_file_safe(path, anchors, want_dump=False):
    """verify_file that turns any unexpected exception into a one-line error (never a traceback)."""
    try:
        return verify_file(path, anchors, want_dump)
    except RecursionError:
        err = "structure nested too deeply"
    except MemoryError:
        err = "out of memory while parsing"
    except Exception as e:
        err = "internal error while verifying: %s: %s" % (type(e).__name__, e)
    return {"file": path, "error": err, "exit": 2, "failures": [], "notes": [], "assertions": []}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify C2PA manifests in PNG and JPEG files (C2PA 2.1).")
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    ap.add_argument("--trust-anchor", metavar="PEM", help="trust anchor certificate(s), PEM (or one DER)")
    ap.add_argument("--dump", action="store_true", help="also print the JUMBF box tree")
    args = ap.parse_args(argv)
    anchors = []
    if args.trust_anchor:
        try:
            anchors = load_anchors(args.trust_anchor)
        except (OSError, ValueError) as e:
            sys.stderr.write("c2pa_verify: cannot load trust anchor %s: %s\n" % (args.trust_anchor, e))
            return 2
        if not anchors:
            sys.stderr.write("c2pa_verify: no certificate in %s\n" % args.trust_anchor)
            return 2
    results = [verify_file_safe(path, anchors, args.dump) for path in args.images]
    codes = [r["exit"] for r in results]
    overall = 1 if 1 in codes else (2 if 2 in codes else 0)
    if args.json:
        sys.stdout.write(json.dumps({"results": jsonable(results), "exit": overall}, indent=2) + "\n")
    else:
        for r in results:
            if not args.json and r.get("error") and r["exit"] == 2 and len(results) >= 1:
                sys.stderr.write("c2pa_verify: %s: %s\n" % (r["file"], r["error"]))
            print_report(r, sys.stdout)
    return overall


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
