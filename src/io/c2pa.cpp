#include "io/c2pa.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "io/jumbf.h"

namespace easel {

namespace {

template <class T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using SigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

// OpenSSL's PEM readers ask for a passphrase on the terminal unless given a callback: this one declines, so an
// encrypted key is an error, never a prompt that a server or a script would wait on forever.
int no_passphrase(char*, int, int, void*) { return 0; }

// A PEM file: a regular file of at most 1 MiB (a folder or a device is refused, not read).
std::string read_file(const std::string& path, bool& ok) {
    std::error_code ec;
    ok = std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) <= (1u << 20) && !ec;
    if (!ok) return {};
    std::ifstream in(path, std::ios::binary);
    ok = bool(in);
    return ok ? std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()) : std::string();
}

X509Ptr parse_der(const DerCertificate& der) {
    const unsigned char* p = der.data();
    X509Ptr x(d2i_X509(nullptr, &p, long(der.size())));
    if (x && p != der.data() + der.size()) x.reset();  // trailing bytes: not one certificate
    return x;
}

std::string name_of(const X509_NAME* n) {
    if (!n) return "";
    BioPtr b(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(b.get(), &data);
    return std::string(data, size_t(len));
}

struct Hash {
    const EVP_MD* md;
    const char* name;
};
Hash hash_named(const std::string& alg) {
    if (alg == "sha256" || alg.empty()) return {EVP_sha256(), "sha256"};
    if (alg == "sha384") return {EVP_sha384(), "sha384"};
    if (alg == "sha512") return {EVP_sha512(), "sha512"};
    return {nullptr, ""};
}

std::vector<uint8_t> digest(const EVP_MD* md, const std::vector<std::pair<const uint8_t*, size_t>>& parts) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_DigestInit_ex(ctx.get(), md, nullptr);
    for (auto [p, n] : parts) EVP_DigestUpdate(ctx.get(), p, n);
    std::vector<uint8_t> out(size_t(EVP_MD_get_size(md)));
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), out.data(), &n);
    return out;
}

// The COSE algorithms (RFC 9053) C2PA allows, as OpenSSL does them.
enum class SigKind { Ecdsa, RsaPss, EdDsa };
struct CoseAlg {
    int id;
    const char* name;
    const EVP_MD* (*md)();  // null for EdDSA, which hashes inside
    SigKind kind;
    int coord_bytes;  // ECDSA: each of r and s in the raw signature
};
constexpr CoseAlg kCoseAlgs[] = {
    {-7, "ES256", EVP_sha256, SigKind::Ecdsa, 32},   {-35, "ES384", EVP_sha384, SigKind::Ecdsa, 48},
    {-36, "ES512", EVP_sha512, SigKind::Ecdsa, 66},  {-37, "PS256", EVP_sha256, SigKind::RsaPss, 0},
    {-38, "PS384", EVP_sha384, SigKind::RsaPss, 0},  {-39, "PS512", EVP_sha512, SigKind::RsaPss, 0},
    {-8, "Ed25519", nullptr, SigKind::EdDsa, 0},
};
const CoseAlg* cose_alg(int64_t id) {
    for (const CoseAlg& a : kCoseAlgs)
        if (a.id == id) return &a;
    return nullptr;
}

// COSE's Sig_structure for COSE_Sign1 with a detached payload (RFC 9052 section 4.4).
std::vector<uint8_t> sig_structure(const std::vector<uint8_t>& protected_header, const std::vector<uint8_t>& payload) {
    return cbor_encode(Cbor::array({Cbor::text("Signature1"), Cbor::bytes(protected_header), Cbor::bytes({}), Cbor::bytes(payload)}));
}

Result<std::vector<uint8_t>> sign(EVP_PKEY* key, const CoseAlg& alg, const std::vector<uint8_t>& tbs) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit(ctx.get(), &pctx, alg.md ? alg.md() : nullptr, nullptr, key) != 1) return Error::internal("C2PA signing: " + openssl_error());
    if (alg.kind == SigKind::RsaPss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        return Error::internal("C2PA signing: " + openssl_error());
    size_t n = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &n, tbs.data(), tbs.size()) != 1) return Error::internal("C2PA signing: " + openssl_error());
    std::vector<uint8_t> sig(n);
    if (EVP_DigestSign(ctx.get(), sig.data(), &n, tbs.data(), tbs.size()) != 1) return Error::internal("C2PA signing: " + openssl_error());
    sig.resize(n);
    if (alg.kind != SigKind::Ecdsa) return sig;
    // COSE carries ECDSA signatures as r || s, each padded to the curve's size, not DER.
    const unsigned char* p = sig.data();
    SigPtr s(d2i_ECDSA_SIG(nullptr, &p, long(sig.size())));
    if (!s) return Error::internal("C2PA signing: OpenSSL returned an unreadable ECDSA signature");
    std::vector<uint8_t> raw(size_t(2 * alg.coord_bytes));
    BN_bn2binpad(ECDSA_SIG_get0_r(s.get()), raw.data(), alg.coord_bytes);
    BN_bn2binpad(ECDSA_SIG_get0_s(s.get()), raw.data() + alg.coord_bytes, alg.coord_bytes);
    return raw;
}

bool verify_signature(EVP_PKEY* key, const CoseAlg& alg, const std::vector<uint8_t>& tbs, const std::vector<uint8_t>& sig) {
    std::vector<uint8_t> der = sig;
    if (alg.kind == SigKind::Ecdsa) {
        if (sig.size() != size_t(2 * alg.coord_bytes)) return false;
        SigPtr s(ECDSA_SIG_new());
        BIGNUM* r = BN_bin2bn(sig.data(), alg.coord_bytes, nullptr);
        BIGNUM* ss = BN_bin2bn(sig.data() + alg.coord_bytes, alg.coord_bytes, nullptr);
        if (!r || !ss || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            return false;
        }
        const int n = i2d_ECDSA_SIG(s.get(), nullptr);
        if (n <= 0) return false;
        der.resize(size_t(n));
        unsigned char* p = der.data();
        i2d_ECDSA_SIG(s.get(), &p);
    }
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = EVP_DigestVerifyInit(ctx.get(), &pctx, alg.md ? alg.md() : nullptr, nullptr, key) == 1;
    if (ok && alg.kind == SigKind::RsaPss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_DigestVerify(ctx.get(), der.data(), der.size(), tbs.data(), tbs.size()) == 1;
    ERR_clear_error();
    return ok;
}

// The COSE algorithm a key signs with: ES256/384/512 by its curve, PS256 for RSA, EdDSA for Ed25519.
Result<int> alg_for_key(EVP_PKEY* key, const std::string& path) {
    if (EVP_PKEY_is_a(key, "ED25519")) return -8;
    if (EVP_PKEY_is_a(key, "RSA")) {
        if (EVP_PKEY_get_bits(key) < 2048) return Error::bad_file(path, "an RSA key of fewer than 2048 bits; C2PA asks for 2048 or more");
        return -37;
    }
    if (EVP_PKEY_is_a(key, "EC")) {
        char curve[64] = {};
        size_t n = 0;
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &n);
        const std::string c = curve;
        if (c == "prime256v1" || c == "P-256") return -7;
        if (c == "secp384r1" || c == "P-384") return -35;
        if (c == "secp521r1" || c == "P-521") return -36;
        return Error::bad_file(path, fmt::format("an EC key on curve '{}'; C2PA signs with P-256, P-384 or P-521", c));
    }
    return Error::bad_file(path, "not an EC, RSA or Ed25519 private key (C2PA signs with ES256/ES384/ES512, PS256 or Ed25519)");
}

std::string random_uuid() {
    uint8_t b[16];
    RAND_bytes(b, sizeof b);
    b[6] = uint8_t((b[6] & 0x0f) | 0x40);
    b[8] = uint8_t((b[8] & 0x3f) | 0x80);
    return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2],
                       b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

// What C2PA hashes of a JUMBF superbox (an assertion named by a hashed URI): its description box and content
// boxes, without the superbox's own 8-byte header (C2PA 2.1 section 8.4.2.3 ... hashing JUMBF boxes).
std::vector<uint8_t> assertion_hash(const EVP_MD* md, const std::vector<uint8_t>& serialized_superbox) {
    return digest(md, {{serialized_superbox.data() + 8, serialized_superbox.size() - 8}});
}

JumbfBox cbor_assertion_box(const std::string& label, const Cbor& content) {
    return jumbf_superbox(kJumbfCborContent, label, {jumbf_content("cbor", cbor_encode(cbor_deterministic(content)))});
}

Cbor hard_binding(size_t start, size_t length, const std::vector<uint8_t>& hash) {
    return Cbor::object({{"exclusions", Cbor::array({Cbor::object({{"start", Cbor::integer(int64_t(start))},
                                                                   {"length", Cbor::integer(int64_t(length))}})})},
                         {"name", Cbor::text("jumbf manifest")},
                         {"alg", Cbor::text("sha256")},
                         {"hash", Cbor::bytes(hash)},
                         {"pad", Cbor::bytes({})}});
}

Status add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return Error::internal(fmt::format("certificate extension '{}': {}", value, openssl_error()));
    return ok();
}

Result<X509Ptr> make_certificate(EVP_PKEY* key, EVP_PKEY* issuer_key, X509* issuer, const std::string& cn, const std::string& org,
                                 int days, bool ca) {
    X509Ptr x(X509_new());
    X509_set_version(x.get(), 2);
    uint8_t serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), long(days) * 86400);
    X509_set_pubkey(x.get(), key);
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509* iss = issuer ? issuer : x.get();
    EASEL_TRY(add_extension(x.get(), iss, NID_subject_key_identifier, "hash"));
    EASEL_TRY(add_extension(x.get(), iss, NID_authority_key_identifier, "keyid:always"));
    if (ca) {
        EASEL_TRY(add_extension(x.get(), iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
        EASEL_TRY(add_extension(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign"));
    } else {
        EASEL_TRY(add_extension(x.get(), iss, NID_basic_constraints, "critical,CA:FALSE"));
        EASEL_TRY(add_extension(x.get(), iss, NID_key_usage, "critical,digitalSignature"));
        EASEL_TRY(add_extension(x.get(), iss, NID_ext_key_usage, "emailProtection,1.3.6.1.5.5.7.3.36"));
    }
    if (X509_sign(x.get(), issuer_key, EVP_sha256()) <= 0) return Error::internal("signing a certificate: " + openssl_error());
    return x;
}

Status write_private(const std::string& path, const std::string& text, bool secret) {
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return Error::io("cannot open for writing", tmp);
    if (secret) chmod(tmp.c_str(), 0600);
    const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !written) {
        std::remove(tmp.c_str());
        return Error::io("write failed", tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) return Error::io("cannot rename into place", path);
    return ok();
}

std::string pem_of(X509* x) {
    BioPtr b(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(b.get(), x);
    char* data = nullptr;
    const long len = BIO_get_mem_data(b.get(), &data);
    return std::string(data, size_t(len));
}

// The path of a JUMBF URI ("self#jumbf=/c2pa/urn:c2pa:.../c2pa.assertions/label", or relative to the manifest).
const JumbfBox* resolve(const JumbfBox& store, const JumbfBox& manifest, const std::string& uri) {
    static constexpr std::string_view kPrefix = "self#jumbf=";
    if (uri.compare(0, kPrefix.size(), kPrefix) != 0) return nullptr;
    std::string path = uri.substr(kPrefix.size());
    const JumbfBox* at = &manifest;
    if (!path.empty() && path[0] == '/') {
        at = &store;
        path.erase(0, 1);
        if (path.compare(0, store.label.size() + 1, store.label + "/") != 0) return nullptr;
        path.erase(0, store.label.size() + 1);
    }
    size_t pos = 0;
    while (at && pos <= path.size()) {
        const size_t slash = path.find('/', pos);
        const std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        at = jumbf_child(*at, part);
        if (slash == std::string::npos) break;
        pos = slash + 1;
    }
    return at;
}

const JumbfBox* content_of(const JumbfBox& superbox, const char* type) {
    for (const JumbfBox& c : superbox.children)
        if (c.type == type) return &c;
    return nullptr;
}

}  // namespace

Result<std::vector<DerCertificate>> load_pem_certificates(const std::string& path) {
    bool read = false;
    const std::string text = read_file(path, read);
    if (!read) return Error::io("cannot open the certificate file", path);
    BioPtr b(BIO_new_mem_buf(text.data(), int(text.size())));
    std::vector<DerCertificate> out;
    while (true) {
        X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, no_passphrase, nullptr));
        if (!x) break;
        const int n = i2d_X509(x.get(), nullptr);
        DerCertificate der(size_t(std::max(n, 0)));
        unsigned char* p = der.data();
        i2d_X509(x.get(), &p);
        out.push_back(std::move(der));
    }
    ERR_clear_error();
    if (out.empty()) return Error::bad_file(path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file");
    return out;
}

Result<C2paSigner> load_c2pa_signer(const std::string& key_path, const std::string& chain_path) {
    bool read = false;
    const std::string key_text = read_file(key_path, read);
    if (!read) return Error::io("cannot open the signing key", key_path);
    BioPtr b(BIO_new_mem_buf(key_text.data(), int(key_text.size())));
    PkeyPtr key(PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr));
    if (!key) {
        const bool encrypted = key_text.find("ENCRYPTED") != std::string::npos;
        ERR_clear_error();
        return Error::bad_file(key_path, encrypted ? "the key is encrypted; easel reads keys without a passphrase (decrypt it with `openssl pkey`)"
                                                   : "not a PEM private key (-----BEGIN PRIVATE KEY-----)");
    }
    EASEL_TRY_ASSIGN(int alg, alg_for_key(key.get(), key_path));
    EASEL_TRY_ASSIGN(std::vector<DerCertificate> chain, load_pem_certificates(chain_path));
    X509Ptr leaf = parse_der(chain[0]);
    if (!leaf) return Error::bad_file(chain_path, "the first certificate cannot be read");
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
        ERR_clear_error();
        return Error::bad_file(chain_path, fmt::format("the first certificate is not the signing key's ({}): put the signer's certificate first", key_path));
    }
    // The trust anchor does not travel in the signature (C2PA 2.1 section 14.5): a self-signed root at the end of
    // the chain file is left out of x5chain.
    if (chain.size() > 1) {
        X509Ptr top = parse_der(chain.back());
        if (top && (X509_get_extension_flags(top.get()) & EXFLAG_SS)) chain.pop_back();
    }
    C2paSigner s;
    s.cose_alg = alg;
    s.subject = name_of(X509_get_subject_name(leaf.get()));
    s.chain = std::move(chain);
    s.key = std::shared_ptr<void>(key.release(), [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
    return s;
}

Status make_c2pa_test_credentials(const std::string& key_path, const std::string& chain_path, const std::string& root_path,
                                  const std::string& organisation, int days, const std::string& alg) {
    if (days < 1 || days > 3650) return Error::invalid_argument(fmt::format("{} days; give 1 to 3650", days), "--days");
    PkeyPtr leaf_key;
    if (alg == "es256" || alg == "es384" || alg == "es512")
        leaf_key.reset(EVP_EC_gen(alg == "es256" ? "P-256" : alg == "es384" ? "P-384" : "P-521"));
    else if (alg == "ps256")
        leaf_key.reset(EVP_RSA_gen(2048));
    else if (alg == "ed25519")
        leaf_key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    else
        return Error::invalid_argument(fmt::format("'{}'; expected es256, es384, es512, ps256 or ed25519", alg), "--alg");
    PkeyPtr root_key(EVP_EC_gen("P-256"));
    if (!root_key || !leaf_key) return Error::internal("generating EC keys: " + openssl_error());
    EASEL_TRY_ASSIGN(X509Ptr root, make_certificate(root_key.get(), root_key.get(), nullptr, organisation + " test root (not trusted)",
                                                    organisation, days, true));
    EASEL_TRY_ASSIGN(X509Ptr leaf, make_certificate(leaf_key.get(), root_key.get(), root.get(), organisation + " content signer (test)",
                                                    organisation, days, false));
    BioPtr kb(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(kb.get(), leaf_key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long len = BIO_get_mem_data(kb.get(), &data);
    EASEL_TRY(write_private(key_path, std::string(data, size_t(len)), true));
    EASEL_TRY(write_private(chain_path, pem_of(leaf.get()) + pem_of(root.get()), false));
    return write_private(root_path, pem_of(root.get()), false);
}

Result<std::vector<uint8_t>> add_c2pa_manifest(const std::vector<uint8_t>& file, const C2paClaimInput& input, const C2paSigner& signer,
                                               const std::string& name) {
    const CoseAlg* alg = cose_alg(signer.cose_alg);
    if (!alg || !signer.key || signer.chain.empty()) return Error::invalid_argument("the C2PA signer has no key, certificate or algorithm", name);
    EASEL_TRY_ASSIGN(size_t offset, c2pa_store_offset(file, name));
    const std::string manifest_label = "urn:c2pa:" + random_uuid();
    const std::string base = "self#jumbf=/c2pa/" + manifest_label + "/";
    // The signed bytes of the file are the file as it is now: the store goes where the exclusion says.
    const std::vector<uint8_t> file_hash = digest(EVP_sha256(), {{file.data(), file.size()}});

    // COSE_Sign1's protected header: the algorithm and the chain (x5chain, label 33: one bstr, or an array).
    std::vector<Cbor> certs;
    for (const DerCertificate& c : signer.chain) certs.push_back(Cbor::bytes(c));
    const std::vector<uint8_t> protected_header =
        cbor_encode(Cbor::map({{Cbor::integer(1), Cbor::integer(alg->id)},
                               {Cbor::integer(33), certs.size() == 1 ? certs[0] : Cbor::array(certs)}}));

    // The store's size depends on the exclusion's numbers, which depend on the store's size: iterate to a fixed point
    // (a change of length only changes the width of a CBOR integer, so this settles in two or three rounds).
    size_t container = 0;
    for (int round = 0; round < 8; ++round) {
        std::vector<JumbfBox> assertion_boxes;
        std::vector<Cbor> hashed_uris;
        auto add = [&](const std::string& label, const Cbor& content) {
            JumbfBox box = cbor_assertion_box(label, content);
            hashed_uris.push_back(Cbor::object({{"url", Cbor::text(base + "c2pa.assertions/" + label)},
                                                {"hash", Cbor::bytes(assertion_hash(EVP_sha256(), serialize_jumbf(box)))}}));
            assertion_boxes.push_back(std::move(box));
        };
        for (const C2paAssertion& a : input.assertions) add(a.label, a.content);
        add("c2pa.hash.data", hard_binding(offset, container, file_hash));

        Cbor generator = Cbor::object({{"name", Cbor::text(input.generator_name)}});
        if (!input.generator_version.empty()) generator.add("version", Cbor::text(input.generator_version));
        std::vector<std::pair<std::string, Cbor>> claim_fields = {
            {"instanceID", Cbor::text("xmp:iid:" + random_uuid())},
            {"claim_generator_info", std::move(generator)},
            {"signature", Cbor::text(base + "c2pa.signature")},
            {"created_assertions", Cbor::array(std::move(hashed_uris))},
            {"alg", Cbor::text("sha256")},
        };
        if (!input.title.empty()) claim_fields.emplace_back("dc:title", Cbor::text(input.title));
        const std::vector<uint8_t> claim = cbor_encode(cbor_deterministic(Cbor::object(std::move(claim_fields))));

        EASEL_TRY_ASSIGN(std::vector<uint8_t> signature, sign(static_cast<EVP_PKEY*>(signer.key.get()), *alg, sig_structure(protected_header, claim)));
        const Cbor cose = Cbor::tag(18, Cbor::array({Cbor::bytes(protected_header), Cbor::map({}), Cbor::null(), Cbor::bytes(signature)}));

        const JumbfBox manifest = jumbf_superbox(kJumbfC2paManifest, manifest_label,
                                                 {jumbf_superbox(kJumbfAssertionStore, "c2pa.assertions", std::move(assertion_boxes)),
                                                  jumbf_superbox(kJumbfClaim, "c2pa.claim.v2", {jumbf_content("cbor", claim)}),
                                                  jumbf_superbox(kJumbfSignature, "c2pa.signature", {jumbf_content("cbor", cbor_encode(cose))})});
        const std::vector<uint8_t> store = serialize_jumbf(jumbf_superbox(kJumbfC2paStore, "c2pa", {manifest}));
        const size_t need = c2pa_store_container_size(file, store.size());
        if (need == container) return embed_c2pa_store(file, store, name);
        container = need;
    }
    return Error::internal("the C2PA manifest's size did not settle");
}

const Cbor* C2paReport::assertion(const std::string& label) const {
    for (const auto& [l, c] : assertions)
        if (l == label) return &c;
    return nullptr;
}

C2paReport verify_c2pa(const uint8_t* data, size_t size, const std::vector<DerCertificate>& anchors, const std::string& name) {
    C2paReport r;
    auto where = find_c2pa_store(data, size, name);
    if (!where) {
        r.error = where.error().to_string();
        return r;
    }
    if (!where->found) return r;
    r.present = true;
    auto store = parse_jumbf(where->store.data(), where->store.size(), name);
    if (!store) {
        r.error = store.error().to_string();
        return r;
    }
    if (store->uuid != kJumbfC2paStore || store->label != "c2pa") {
        r.error = "the manifest store's description is not C2PA's (type c2pa, label \"c2pa\")";
        return r;
    }
    // The active manifest is the last one in the store (C2PA 2.1 section 15.5).
    const JumbfBox* manifest = nullptr;
    for (const JumbfBox& c : store->children)
        if (c.type == "jumb" && c.uuid == kJumbfC2paManifest) manifest = &c;
    if (!manifest) {
        r.error = "the manifest store holds no manifest";
        return r;
    }
    r.manifest = manifest->label;
    const JumbfBox* claim_box = jumbf_child(*manifest, "c2pa.claim.v2");
    if (!claim_box) claim_box = jumbf_child(*manifest, "c2pa.claim");
    const JumbfBox* sig_box = jumbf_child(*manifest, "c2pa.signature");
    const JumbfBox* assertion_store = jumbf_child(*manifest, "c2pa.assertions");
    const JumbfBox* claim_cbor = claim_box ? content_of(*claim_box, "cbor") : nullptr;
    const JumbfBox* sig_cbor = sig_box ? content_of(*sig_box, "cbor") : nullptr;
    if (!claim_cbor || !sig_cbor || !assertion_store) {
        r.error = fmt::format("the manifest {} lacks its {}", r.manifest, !claim_cbor ? "claim" : !sig_cbor ? "claim signature" : "assertion store");
        return r;
    }
    auto claim = cbor_decode(claim_cbor->data.data(), claim_cbor->data.size(), name + ": claim");
    if (!claim || claim->type != Cbor::Type::Map) {
        r.error = claim ? "the claim is not a CBOR map" : claim.error().to_string();
        return r;
    }
    if (const Cbor* g = claim->get("claim_generator_info")) {
        const Cbor* info = g->type == Cbor::Type::Array && !g->items.empty() ? &g->items[0] : g;
        r.claim_generator = info->get("name") ? info->get("name")->str() : "";
        if (const Cbor* v = info->get("version"); v && !v->str().empty()) r.claim_generator += " " + v->str();
    } else if (const Cbor* g1 = claim->get("claim_generator")) {
        r.claim_generator = g1->str();
    }
    if (const Cbor* t = claim->get("dc:title")) r.title = t->str();
    const std::string claim_alg = claim->get("alg") ? claim->get("alg")->str() : "sha256";

    // Every assertion the store holds, decoded where it is CBOR.
    for (const JumbfBox& a : assertion_store->children) {
        if (a.type != "jumb") continue;
        Cbor content;
        if (const JumbfBox* c = content_of(a, "cbor")) {
            auto decoded = cbor_decode(c->data.data(), c->data.size(), name + ": " + a.label);
            if (decoded) content = std::move(*decoded);
        } else if (const JumbfBox* j = content_of(a, "json")) {
            content = Cbor::text(std::string(j->data.begin(), j->data.end()));
        }
        r.assertions.emplace_back(a.label, std::move(content));
    }

    // The hashed URIs of the claim against the boxes they name. Each box is hashed once per algorithm however many
    // URIs name it, and a claim naming more than 1,000 is refused: a hostile claim cannot make the hashing quadratic.
    r.assertions_intact = true;
    std::map<std::pair<const JumbfBox*, const EVP_MD*>, std::vector<uint8_t>> hashed;
    size_t uri_count = 0;
    for (const char* list : {"created_assertions", "gathered_assertions", "assertions"})
        if (const Cbor* uris = claim->get(list); uris && uris->type == Cbor::Type::Array) uri_count += uris->items.size();
    if (uri_count > 1000) {
        r.error = fmt::format("the claim names {} assertions; easel reads claims of up to 1,000", uri_count);
        return r;
    }
    const Cbor* hard_binding_box = nullptr;
    std::string hard_binding_label;
    for (const char* list : {"created_assertions", "gathered_assertions", "assertions"}) {
        const Cbor* uris = claim->get(list);
        if (!uris) continue;
        if (uris->type != Cbor::Type::Array) {
            r.failures.push_back(fmt::format("the claim's {} is not an array", list));
            r.assertions_intact = false;
            continue;
        }
        for (const Cbor& u : uris->items) {
            const std::string url = u.get("url") ? u.get("url")->str() : "";
            const Cbor* want = u.get("hash");
            const Hash h = hash_named(u.get("alg") ? u.get("alg")->str() : claim_alg);
            const JumbfBox* box = resolve(*store, *manifest, url);
            if (!box || !want || want->type != Cbor::Type::Bytes || !h.md) {
                r.failures.push_back(fmt::format("the claim names an assertion that is not there or not hashable: '{}'", url));
                r.assertions_intact = false;
                continue;
            }
            std::vector<uint8_t>& got = hashed[{box, h.md}];
            if (got.empty()) got = digest(h.md, {{where->store.data() + box->offset + box->header, box->size - box->header}});
            if (got != want->bin) {
                r.failures.push_back(fmt::format("assertion {} does not match its hash in the claim (it was changed)", box->label));
                r.assertions_intact = false;
            }
            if (box->label.rfind("c2pa.hash.data", 0) == 0) {
                hard_binding_label = box->label;
                for (const auto& [l, c] : r.assertions)
                    if (l == box->label) hard_binding_box = &c;
            }
        }
    }

    // The hard binding: the file's bytes, less the exclusions, against the hash it records.
    if (!hard_binding_box || hard_binding_box->type != Cbor::Type::Map) {
        r.failures.push_back("the claim has no c2pa.hash.data hard binding to the file's bytes");
    } else {
        const Cbor& hb = *hard_binding_box;
        const Hash h = hash_named(hb.get("alg") ? hb.get("alg")->str() : claim_alg);
        const Cbor* want = hb.get("hash");
        const Cbor* excl = hb.get("exclusions");
        std::vector<std::pair<size_t, size_t>> ranges;
        bool well_formed = h.md && want && want->type == Cbor::Type::Bytes;
        if (excl && excl->type == Cbor::Type::Array) {
            for (const Cbor& e : excl->items) {
                const int64_t s = e.get("start") ? e.get("start")->as_int(-1) : -1;
                const int64_t l = e.get("length") ? e.get("length")->as_int(-1) : -1;
                if (s < 0 || l < 0 || uint64_t(s) > size || uint64_t(l) > size - uint64_t(s) ||
                    (!ranges.empty() && size_t(s) < ranges.back().first + ranges.back().second)) {
                    well_formed = false;
                    break;
                }
                ranges.emplace_back(size_t(s), size_t(l));
            }
        }
        if (!well_formed) {
            r.failures.push_back(fmt::format("the hard binding {} is malformed (hash, algorithm or exclusions)", hard_binding_label));
        } else {
            std::vector<std::pair<const uint8_t*, size_t>> parts;
            size_t pos = 0;
            for (auto [s, l] : ranges) {
                parts.emplace_back(data + pos, s - pos);
                pos = s + l;
            }
            parts.emplace_back(data + pos, size - pos);
            r.binding_intact = digest(h.md, parts) == want->bin;
            if (!r.binding_intact) r.failures.push_back("the image's bytes do not match the hard binding's hash (the image was changed after signing)");
            // An exclusion may only leave out the store itself; anything else would leave pixels unsigned.
            size_t excluded_elsewhere = 0;
            for (auto [s, l] : ranges) {
                const size_t lo = std::max(s, where->start), hi = std::min(s + l, where->start + where->length);
                excluded_elsewhere += l - (hi > lo ? hi - lo : 0);
            }
            if (excluded_elsewhere > 0) {
                r.binding_intact = false;
                r.failures.push_back(fmt::format("the hard binding leaves {} bytes outside the manifest store unhashed", excluded_elsewhere));
            }
        }
    }

    // The signature: COSE_Sign1 (tag 18 optional), detached payload = the claim's bytes.
    auto cose = cbor_decode(sig_cbor->data.data(), sig_cbor->data.size(), name + ": claim signature");
    const Cbor* sign1 = cose ? &*cose : nullptr;
    if (sign1 && sign1->type == Cbor::Type::Tag && sign1->u == 18 && !sign1->items.empty()) sign1 = &sign1->items[0];
    if (!sign1 || sign1->type != Cbor::Type::Array || sign1->items.size() != 4 || sign1->items[0].type != Cbor::Type::Bytes ||
        sign1->items[3].type != Cbor::Type::Bytes) {
        r.failures.push_back("the claim signature is not a COSE_Sign1 structure");
        return r;
    }
    auto prot = cbor_decode(sign1->items[0].bin.data(), sign1->items[0].bin.size(), name + ": COSE protected header");
    const Cbor* alg_v = prot ? prot->get(1) : nullptr;
    const CoseAlg* alg = alg_v ? cose_alg(alg_v->as_int(0)) : nullptr;
    if (!alg) {
        r.failures.push_back("the claim signature's algorithm is missing or not one C2PA allows");
        return r;
    }
    r.alg = alg->name;
    const Cbor* x5 = prot->get(33);
    if (!x5) x5 = sign1->items[1].get(33);  // C2PA 1.x kept the chain unprotected
    std::vector<DerCertificate> chain;
    if (x5 && x5->type == Cbor::Type::Bytes) chain.push_back(x5->bin);
    if (x5 && x5->type == Cbor::Type::Array)
        for (const Cbor& c : x5->items)
            if (c.type == Cbor::Type::Bytes) chain.push_back(c.bin);
    std::vector<X509Ptr> certs;
    for (const DerCertificate& d : chain) {
        certs.push_back(parse_der(d));
        if (!certs.back()) {
            r.failures.push_back(fmt::format("certificate {} of the signature's chain cannot be read", certs.size()));
            return r;
        }
    }
    if (certs.empty()) {
        r.failures.push_back("the claim signature carries no certificate (x5chain)");
        return r;
    }
    X509* leaf = certs[0].get();
    r.signer = name_of(X509_get_subject_name(leaf));
    r.issuer = name_of(X509_get_issuer_name(leaf));
    EVP_PKEY* leaf_key = X509_get0_pubkey(leaf);
    r.signature_valid = leaf_key && verify_signature(leaf_key, *alg, sig_structure(sign1->items[0].bin, claim_cbor->data), sign1->items[3].bin);
    if (!r.signature_valid) r.failures.push_back("the claim signature does not verify with the signer certificate's key (the claim or signature was changed)");
    r.chain_valid = true;
    for (size_t i = 0; i + 1 < certs.size(); ++i) {
        EVP_PKEY* k = X509_get0_pubkey(certs[i + 1].get());
        if (!k || X509_verify(certs[i].get(), k) != 1 || X509_check_issued(certs[i + 1].get(), certs[i].get()) != X509_V_OK) {
            r.chain_valid = false;
            r.failures.push_back(fmt::format("certificate {} of the chain is not issued by certificate {}", i + 1, i + 2));
        }
    }
    ERR_clear_error();
    // Trust: the chain's last certificate is an anchor, or an anchor issued it.
    X509* top = certs.back().get();
    for (const DerCertificate& a : anchors) {
        X509Ptr anchor = parse_der(a);
        if (!anchor) continue;
        EVP_PKEY* k = X509_get0_pubkey(anchor.get());
        if (X509_cmp(anchor.get(), top) == 0 ||
            (k && X509_check_issued(anchor.get(), top) == X509_V_OK && X509_verify(top, k) == 1))
            r.trusted = r.chain_valid;
    }
    ERR_clear_error();
    // The signer certificate's profile (C2PA 2.1 section 14.5.1).
    const uint32_t flags = X509_get_extension_flags(leaf);
    if (flags & EXFLAG_CA) r.warnings.push_back("the signer certificate is a CA certificate");
    if (flags & EXFLAG_SS) r.warnings.push_back("the signer certificate is self-signed");
    if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
        r.warnings.push_back("the signer certificate's key usage does not include digitalSignature");
    if (!(flags & EXFLAG_XKUSAGE)) r.warnings.push_back("the signer certificate has no extended key usage");
    else if (X509_get_extended_key_usage(leaf) & XKU_ANYEKU) r.warnings.push_back("the signer certificate allows anyExtendedKeyUsage");
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0 || X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        r.warnings.push_back("the signer certificate is not valid now (and the signature has no time-stamp)");
    ERR_clear_error();
    return r;
}

}  // namespace easel
