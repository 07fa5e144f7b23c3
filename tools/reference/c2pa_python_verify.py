#!/usr/bin/env python3
"""Second, official C2PA verifier: read an image with c2pa-python's Reader (the CAI's Rust c2pa library).

Runs in the /work/c2pavenv venv (see tools/reference/README.md, "C2PA verifiers"):

    /work/c2pavenv/bin/python tools/reference/c2pa_python_verify.py [--trust-anchor PEM] [--quiet] IMAGE...

For each image it prints the validation state, the validation status list (success / informational / failure codes
of the active manifest and of any ingredients) and the manifest store JSON (omitted with --quiet).

Exit status (over all files): 1 if any file has a validation failure other than a trust-related one (signing
credential untrusted / unknown root), or cannot be parsed as a manifest; otherwise 2 if any file has no manifest or
cannot be read; otherwise 0.  With --trust-anchor the anchor PEM is configured as a trust anchor (settings
trust.trust_anchors, verify.verify_trust), and then an untrusted credential is a failure too.
"""
import argparse
import json
import sys

import c2pa

# Failure codes that only say the signer's chain does not reach a configured trust anchor.
TRUST_ONLY_CODES = {"signingCredential.untrusted"}


def status_lists(store):
    """Return {"success": [...], "informational": [...], "failure": [...]} of (where, code, url, explanation)."""
    out = {"success": [], "informational": [], "failure": []}
    vr = store.get("validation_results")
    if isinstance(vr, dict):
        am = vr.get("activeManifest") or {}
        for kind in out:
            for s in am.get(kind) or []:
                out[kind].append(("active manifest", s.get("code"), s.get("url"), s.get("explanation")))
        for delta in vr.get("ingredientDeltas") or []:
            where = "ingredient %s" % delta.get("ingredientAssertionURI")
            vd = delta.get("validationDeltas") or {}
            for kind in out:
                for s in vd.get(kind) or []:
                    out[kind].append((where, s.get("code"), s.get("url"), s.get("explanation")))
    else:
        # older stores: validation_status holds the failures only
        for s in store.get("validation_status") or []:
            out["failure"].append(("manifest store", s.get("code"), s.get("url"), s.get("explanation")))
    return out


def check(path, context, quiet, trust_given):
    print("== %s" % path)
    try:
        reader = c2pa.Reader.try_create(path, context=context) if context else c2pa.Reader.try_create(path)
    except c2pa.C2paError as e:
        msg = str(e)
        if "NotSupported" in type(e).__name__ or "unsupported" in msg.lower() or "FileNotFound" in type(e).__name__ \
                or "Io" in type(e).__name__:
            print("error: cannot read: %s" % msg)
            print("RESULT: UNREADABLE\n")
            return 2
        print("error: manifest cannot be parsed: %s" % msg)
        print("RESULT: INVALID\n")
        return 1
    except OSError as e:
        print("error: cannot read: %s" % e)
        print("RESULT: UNREADABLE\n")
        return 2
    if reader is None:
        print("no manifest (c2pa-python: no JUMBF data found)")
        print("RESULT: NO MANIFEST\n")
        return 2
    try:
        store = json.loads(reader.json())
    finally:
        reader.close()
    print("validation_state: %s" % store.get("validation_state"))
    lists = status_lists(store)
    for kind in ("success", "informational", "failure"):
        for where, code, url, expl in lists[kind]:
            print("  %-13s %-40s %s (%s) [%s]" % (kind, code, expl, url, where))
    if not quiet:
        print("manifest store JSON:")
        print(json.dumps(store, indent=2))
    real = [f for f in lists["failure"] if trust_given or f[1] not in TRUST_ONLY_CODES]
    if real:
        print("RESULT: INVALID (%s)\n" % ", ".join(sorted({f[1] for f in real})))
        return 1
    trust_fail = [f for f in lists["failure"] if f[1] in TRUST_ONLY_CODES]
    print("RESULT: VALID%s\n" % (" (signer untrusted: no trust anchor)" if trust_fail else ""))
    return 0


def main():
    ap = argparse.ArgumentParser(description="Validate C2PA manifests with c2pa-python's Reader.")
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--trust-anchor", metavar="PEM", help="configure this PEM as a trust anchor")
    ap.add_argument("--quiet", action="store_true", help="omit the manifest store JSON")
    args = ap.parse_args()
    print("c2pa-python %s (c2pa-rs %s)" % (c2pa.__version__, c2pa.sdk_version()))
    context = None
    if args.trust_anchor:
        try:
            with open(args.trust_anchor) as f:
                pem = f.read()
            context = c2pa.Context.from_dict({"trust": {"trust_anchors": pem}, "verify": {"verify_trust": True}})
        except (OSError, c2pa.C2paError) as e:
            sys.stderr.write("c2pa_python_verify: cannot use trust anchor %s: %s\n" % (args.trust_anchor, e))
            return 2
    codes = [check(p, context, args.quiet, bool(args.trust_anchor)) for p in args.images]
    return 1 if 1 in codes else (2 if 2 in codes else 0)


if __name__ == "__main__":
    sys.exit(main())
