// C2PA content credentials (C2PA technical specification 2.1): a manifest store embedded in a PNG or JPEG, with
// one manifest whose claim (c2pa.claim.v2) lists its assertions by hashed URI, binds the file's bytes with a
// c2pa.hash.data hard binding, and is signed with COSE_Sign1 (ES256/384/512, PS256 or Ed25519) by a certificate chain
// the operator supplies. And the checks a verifier makes: structure, assertion hashes, the hard binding, the
// signature, the chain and the signer certificate's profile. Built on OpenSSL's libcrypto and libcbor (io/cbor.h).
//
//   EASEL_TRY_ASSIGN(C2paSigner signer, load_c2pa_signer("signer.key", "signer.pem"));
//   C2paClaimInput claim{.title = "out.png", .assertions = {{"c2pa.actions.v2", actions}}};
//   EASEL_TRY_ASSIGN(auto signed_png, add_c2pa_manifest(png, claim, signer, "out.png"));
//   C2paReport r = verify_c2pa(signed_png.data(), signed_png.size(), {}, "out.png");   // r.valid()
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/cbor.h"

namespace easel {

using DerCertificate = std::vector<uint8_t>;

struct C2paSigner {
    std::shared_ptr<void> key;          // OpenSSL EVP_PKEY
    std::vector<DerCertificate> chain;  // the signer's certificate first, then its issuers
    std::string subject;                // the signer certificate's subject, for messages
    int cose_alg = -7;                  // COSE algorithm: -7 ES256, -35 ES384, -36 ES512, -37 PS256, -8 Ed25519
};

// A private key (PEM: PKCS#8 or traditional; EC P-256/P-384/P-521, RSA of 2048 bits or more, or Ed25519) and the PEM file of
// its certificate chain, the signer's certificate first. Refuses a key that does not match the first certificate.
// A self-signed root at the end of the chain is not embedded (the verifier's trust anchor, C2PA 2.1 section 14.5).
Result<C2paSigner> load_c2pa_signer(const std::string& key_pem_path, const std::string& chain_pem_path);
// Every certificate in a PEM file, as DER.
Result<std::vector<DerCertificate>> load_pem_certificates(const std::string& path);
// For testing only: a new root CA (EC P-256) and a signer certificate it issues, shaped as C2PA's certificate
// profile asks (key usage digitalSignature, extended key usage emailProtection and documentSigning, not a CA), valid
// for `days`, with a key for `alg`: es256, es384, es512, ps256 (RSA 2048) or ed25519. Writes the signer's key (mode
// 0600) to key_path and the chain (signer, root) to chain_path; the root alone goes to root_path, for
// `easel verify --trust-anchor`.
Status make_c2pa_test_credentials(const std::string& key_path, const std::string& chain_path, const std::string& root_path,
                                  const std::string& organisation, int days, const std::string& alg = "es256");

struct C2paAssertion {
    std::string label;  // "c2pa.actions.v2", ...
    Cbor content;       // held in one CBOR content box
};

struct C2paClaimInput {
    std::string title;  // the claim's dc:title (the file's name)
    std::string generator_name = "easel";
    std::string generator_version;
    std::vector<C2paAssertion> assertions;  // the c2pa.hash.data hard binding is added after these
};

// The file (PNG or JPEG, without a manifest store) with a signed manifest store inserted. The hard binding's
// SHA-256 covers every byte of the result except the caBX chunk / APP11 segments that hold the store.
Result<std::vector<uint8_t>> add_c2pa_manifest(const std::vector<uint8_t>& file, const C2paClaimInput& claim,
                                               const C2paSigner& signer, const std::string& name_for_errors);

struct C2paReport {
    bool present = false;                  // the file holds a manifest store
    std::string error;                     // the store cannot be read (then nothing below was checked)
    std::string manifest;                  // the active manifest's label (urn:c2pa:...)
    std::string claim_generator;           // name and version
    std::string title;
    std::string alg;                       // the signature's algorithm (ES256, ...)
    std::string signer;                    // the signer certificate's subject
    std::string issuer;                    // its issuer
    std::vector<std::pair<std::string, Cbor>> assertions;  // label and content, in store order
    bool assertions_intact = false;        // every hashed URI in the claim matches its assertion
    bool binding_intact = false;           // the hard binding's hash matches the file
    bool signature_valid = false;          // COSE_Sign1 over the claim, by the signer certificate's key
    bool chain_valid = false;              // each certificate is signed by the next
    bool trusted = false;                  // the chain ends at a given trust anchor
    std::vector<std::string> failures;     // what does not hold; empty when the credential is intact
    std::vector<std::string> warnings;     // what the certificate profile asks and the signer's certificate lacks
    bool valid() const { return present && error.empty() && failures.empty(); }
    const Cbor* assertion(const std::string& label) const;
};

// Never fails: a file without a store gives present = false; a malformed one says so in `error`.
C2paReport verify_c2pa(const uint8_t* data, size_t size, const std::vector<DerCertificate>& trust_anchors,
                       const std::string& name_for_errors);

}  // namespace easel
