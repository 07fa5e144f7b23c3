// C2PA content credentials (io/c2pa.h) and what they are made of (io/cbor.h, io/jumbf.h): CBOR and JUMBF round
// trips and hostile inputs; signing PNG and JPEG files and verifying them; each kind of tampering caught by the
// check that should catch it. tests/cli checks the same files with the independent Python verifier.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/scoped_path.h"
#include "io/c2pa.h"
#include "io/cbor.h"
#include "io/image.h"
#include "io/jumbf.h"

namespace fs = std::filesystem;
using namespace easel;

namespace {

Image gradient(int w, int h) {
    Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)};
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * w + x) * 3 + c] = uint8_t((x * 3 + y * 5 + c * 70) & 0xff);
    return img;
}

struct Credentials {
    static inline int made = 0;
    easel::testing::ScopedPath dir{fs::temp_directory_path() / fmt::format("easel_c2pa_{}_{}", getpid(), made++)};
    C2paSigner signer;
    std::vector<DerCertificate> root;
    Credentials() {
        fs::create_directories(dir.path);
        const std::string key = (dir.path / "signer.key").string(), chain = (dir.path / "signer.pem").string(),
                          root_pem = (dir.path / "root.pem").string();
        auto st = make_c2pa_test_credentials(key, chain, root_pem, "easel tests", 30);
        EXPECT_TRUE(st) << st.error().to_string();
        auto s = load_c2pa_signer(key, chain);
        EXPECT_TRUE(s) << s.error().to_string();
        if (s) signer = *s;
        auto r = load_pem_certificates(root_pem);
        EXPECT_TRUE(r) << r.error().to_string();
        if (r) root = *r;
    }
};

const Credentials& credentials() {
    static Credentials c;
    return c;
}

C2paClaimInput claim_for(const std::string& title) {
    C2paClaimInput c;
    c.title = title;
    c.generator_version = "0.1.0";
    c.assertions.push_back(
        {"c2pa.actions.v2",
         Cbor::object({{"actions", Cbor::array({Cbor::object({{"action", Cbor::text("c2pa.created")},
                                                              {"digitalSourceType", Cbor::text("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")}})})}})});
    return c;
}

std::vector<uint8_t> signed_file(ImageFormat fmt, const C2paClaimInput& claim) {
    auto enc = encode_image(gradient(64, 48), fmt, {{"parameters", "a test"}});
    EXPECT_TRUE(enc);
    auto out = add_c2pa_manifest(*enc, claim, credentials().signer, "test");
    EXPECT_TRUE(out) << out.error().to_string();
    return out ? *out : std::vector<uint8_t>{};
}

std::string failures(const C2paReport& r) {
    std::string s = r.error;
    for (const auto& f : r.failures) s += "\n  " + f;
    return s;
}

}  // namespace

TEST(Cbor, RoundTripsEveryType) {
    const Cbor v = Cbor::map({{Cbor::integer(1), Cbor::integer(-7)},
                              {Cbor::integer(33), Cbor::array({Cbor::bytes({1, 2, 3}), Cbor::bytes(std::vector<uint8_t>(300, 9))})},
                              {Cbor::text("big"), Cbor::integer(int64_t(1) << 40)},
                              {Cbor::text("neg"), Cbor::integer(-100000)},
                              {Cbor::text("t"), Cbor::tag(18, Cbor::array({Cbor::null(), Cbor::boolean(true), Cbor::text("é")}))}});
    const std::vector<uint8_t> bytes = cbor_encode(v);
    // Shortest forms: {1: -7} starts a5 01 26.
    ASSERT_GE(bytes.size(), 3u);
    EXPECT_EQ(bytes[0], 0xa5);
    EXPECT_EQ(bytes[1], 0x01);
    EXPECT_EQ(bytes[2], 0x26);
    auto back = cbor_decode(bytes.data(), bytes.size(), "t");
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(cbor_encode(*back), bytes);
    EXPECT_EQ(back->get(1)->as_int(), -7);
    EXPECT_EQ(back->get("big")->as_int(), int64_t(1) << 40);
    EXPECT_EQ(back->get("neg")->as_int(), -100000);
    EXPECT_EQ(back->get(33)->items[1].bin.size(), 300u);
    EXPECT_EQ(back->get("t")->u, 18u);
    EXPECT_EQ(back->get("t")->items[0].items[2].s, "é");
}

TEST(Cbor, ReadsIndefiniteItems) {
    // [_ "ab" (_ h'01' h'02')] {_ "k": 1}: indefinite array holding a definite text and an indefinite byte string.
    const std::vector<uint8_t> arr = {0x9f, 0x62, 'a', 'b', 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0xff};
    auto a = cbor_decode(arr.data(), arr.size(), "t");
    ASSERT_TRUE(a) << a.error().to_string();
    ASSERT_EQ(a->items.size(), 2u);
    EXPECT_EQ(a->items[0].s, "ab");
    EXPECT_EQ(a->items[1].bin, (std::vector<uint8_t>{1, 2}));
    const std::vector<uint8_t> map = {0xbf, 0x61, 'k', 0x01, 0xff};
    auto m = cbor_decode(map.data(), map.size(), "t");
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ(m->get("k")->as_int(), 1);
}

TEST(Cbor, RefusesHostileInput) {
    auto refused = [](std::vector<uint8_t> b, const std::string& what) {
        auto r = cbor_decode(b.data(), b.size(), "hostile");
        EXPECT_FALSE(r) << what;
        if (!r) std::printf("  %s: %s\n", what.c_str(), r.error().to_string().c_str());
    };
    refused(std::vector<uint8_t>(100000, 0x81), "100,000 nested arrays");
    refused({0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "an array of 2^64-1 items in 10 bytes");
    refused({0xbb, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00}, "a map of 2^40 pairs");
    refused({0x5b, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01}, "a byte string longer than the input");
    refused({0x82, 0x01}, "an array cut off");
    refused({0x01, 0x02}, "two items");
    refused({}, "nothing");
    refused({0xff}, "a break outside an indefinite item");
    refused({0x1c}, "a reserved additional-information value");
    refused({0xa1, 0x01}, "a map with a key and no value");
}

TEST(Jumbf, RoundTripsAndRefusesOverruns) {
    const JumbfBox store = jumbf_superbox(kJumbfC2paStore, "c2pa",
                                          {jumbf_superbox(kJumbfC2paManifest, "urn:c2pa:x", {jumbf_content("cbor", {0xa0})})});
    const std::vector<uint8_t> bytes = serialize_jumbf(store);
    auto back = parse_jumbf(bytes.data(), bytes.size(), "t");
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(back->label, "c2pa");
    EXPECT_EQ(back->uuid, kJumbfC2paStore);
    ASSERT_EQ(back->children.size(), 1u);
    const JumbfBox* m = jumbf_child(*back, "urn:c2pa:x");
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(m->children.size(), 1u);
    EXPECT_EQ(m->children[0].type, "cbor");
    EXPECT_EQ(m->children[0].data, std::vector<uint8_t>{0xa0});
    EXPECT_EQ(serialize_jumbf(*back), bytes);
    // The manifest box declares 1 byte more than its parent holds.
    std::vector<uint8_t> bad = bytes;
    const size_t inner = m->offset;
    bad[inner + 3] = uint8_t(bad[inner + 3] + 1);
    auto r = parse_jumbf(bad.data(), bad.size(), "bad");
    ASSERT_FALSE(r);
    std::printf("  overrun: %s\n", r.error().to_string().c_str());
    // Superboxes nested 9 deep.
    JumbfBox deep = jumbf_content("cbor", {0xa0});
    for (int i = 0; i < 9; ++i) deep = jumbf_superbox(kJumbfCborContent, "d", {deep});
    const std::vector<uint8_t> d = serialize_jumbf(deep);
    EXPECT_FALSE(parse_jumbf(d.data(), d.size(), "deep"));
}

TEST(C2pa, SignedPngAndJpegVerify) {
    for (ImageFormat fmt : {ImageFormat::Png, ImageFormat::Jpeg}) {
        const std::vector<uint8_t> file = signed_file(fmt, claim_for("out.png"));
        // The image still decodes, with its text.
        ASSERT_TRUE(decode_image(file.data(), file.size()));
        auto text = read_image_text(file.data(), file.size());
        ASSERT_TRUE(text);
        EXPECT_EQ((*text)["parameters"], "a test");
        const C2paReport r = verify_c2pa(file.data(), file.size(), credentials().root, "signed");
        EXPECT_TRUE(r.valid()) << failures(r);
        EXPECT_TRUE(r.assertions_intact && r.binding_intact && r.signature_valid && r.chain_valid && r.trusted);
        EXPECT_TRUE(r.warnings.empty()) << r.warnings[0];
        EXPECT_EQ(r.alg, "ES256");
        EXPECT_EQ(r.claim_generator, "easel 0.1.0");
        EXPECT_EQ(r.title, "out.png");
        EXPECT_NE(r.signer.find("content signer"), std::string::npos) << r.signer;
        ASSERT_NE(r.assertion("c2pa.actions.v2"), nullptr);
        EXPECT_NE(r.assertion("c2pa.hash.data"), nullptr);
        EXPECT_EQ(r.manifest.rfind("urn:c2pa:", 0), 0u);
        // Without the root as an anchor: intact, not trusted.
        const C2paReport u = verify_c2pa(file.data(), file.size(), {}, "signed");
        EXPECT_TRUE(u.valid());
        EXPECT_FALSE(u.trusted);
    }
}

TEST(C2pa, EveryTamperingIsCaught) {
    for (ImageFormat fmt : {ImageFormat::Png, ImageFormat::Jpeg}) {
        const std::vector<uint8_t> file = signed_file(fmt, claim_for("t"));
        auto where = find_c2pa_store(file.data(), file.size(), "t");
        ASSERT_TRUE(where && where->found);
        // One byte of image data (the last byte before PNG's IEND chunk / JPEG's EOI).
        std::vector<uint8_t> pixels = file;
        pixels[pixels.size() - (fmt == ImageFormat::Png ? 20 : 10)] ^= 0x01;
        C2paReport r = verify_c2pa(pixels.data(), pixels.size(), {}, "pixels");
        EXPECT_FALSE(r.valid());
        EXPECT_FALSE(r.binding_intact);
        EXPECT_TRUE(r.signature_valid && r.assertions_intact);
        std::printf("  a changed image byte: %s\n", failures(r).c_str());
        // The metadata outside the store is signed too: the infotext's first letter.
        std::vector<uint8_t> text = file;
        const std::string needle = "a test";
        auto at = std::search(text.begin(), text.end(), needle.begin(), needle.end());
        ASSERT_NE(at, text.end());
        *at = 'A';
        r = verify_c2pa(text.data(), text.size(), {}, "text");
        EXPECT_FALSE(r.binding_intact);
        // An assertion's content (the digital source type's last letter, inside the store).
        std::vector<uint8_t> assertion = file;
        const std::string dst = "trainedAlgorithmicMedia";
        auto a = std::search(assertion.begin() + std::ptrdiff_t(where->start), assertion.end(), dst.begin(), dst.end());
        ASSERT_NE(a, assertion.end());
        a[dst.size() - 1] = 'X';
        r = verify_c2pa(assertion.data(), assertion.size(), {}, "assertion");
        EXPECT_FALSE(r.assertions_intact);
        EXPECT_TRUE(r.signature_valid);
        std::printf("  a changed assertion: %s\n", failures(r).c_str());
        // The claim (its title) breaks the signature.
        std::vector<uint8_t> claim = file;
        const std::string title = "dc:title";
        auto c = std::search(claim.begin() + std::ptrdiff_t(where->start), claim.end(), title.begin(), title.end());
        ASSERT_NE(c, claim.end());
        c[title.size() + 1] ^= 0x20;  // the title's first character, after its text header byte
        r = verify_c2pa(claim.data(), claim.size(), {}, "claim");
        EXPECT_FALSE(r.signature_valid);
        std::printf("  a changed claim: %s\n", failures(r).c_str());
        // The signature's last byte.
        std::vector<uint8_t> sig = file;
        const size_t store_end = where->start + where->length;
        sig[store_end - (fmt == ImageFormat::Png ? 5 : 1)] ^= 0x80;
        r = verify_c2pa(sig.data(), sig.size(), {}, "signature");
        EXPECT_FALSE(r.signature_valid);
        EXPECT_TRUE(r.binding_intact);
        // Another root as the anchor: intact but untrusted.
        Credentials other;
        r = verify_c2pa(file.data(), file.size(), other.root, "other root");
        EXPECT_TRUE(r.valid());
        EXPECT_FALSE(r.trusted);
    }
}

TEST(C2pa, StrippedStoreIsAbsentAndReencodedImageHasNone) {
    const std::vector<uint8_t> file = signed_file(ImageFormat::Png, claim_for("t"));
    auto where = find_c2pa_store(file.data(), file.size(), "t");
    ASSERT_TRUE(where && where->found);
    std::vector<uint8_t> stripped(file.begin(), file.begin() + std::ptrdiff_t(where->start));
    stripped.insert(stripped.end(), file.begin() + std::ptrdiff_t(where->start + where->length), file.end());
    EXPECT_FALSE(verify_c2pa(stripped.data(), stripped.size(), {}, "stripped").present);
    auto img = decode_image(file.data(), file.size());
    ASSERT_TRUE(img);
    auto jpeg = encode_image(*img, ImageFormat::Jpeg);
    ASSERT_TRUE(jpeg);
    const C2paReport r = verify_c2pa(jpeg->data(), jpeg->size(), {}, "reencoded");
    EXPECT_FALSE(r.present);
    EXPECT_TRUE(r.error.empty());
}

TEST(C2pa, LargeManifestSpansJpegSegments) {
    // An assertion of 150 kB: the store takes three APP11 segments, reassembled by the reader.
    C2paClaimInput c = claim_for("big");
    c.assertions.push_back({"easel.padding", Cbor::object({{"bytes", Cbor::bytes(std::vector<uint8_t>(150000, 7))}})});
    const std::vector<uint8_t> file = signed_file(ImageFormat::Jpeg, c);
    auto where = find_c2pa_store(file.data(), file.size(), "big");
    ASSERT_TRUE(where && where->found);
    EXPECT_GT(where->store.size(), 150000u);
    EXPECT_EQ(where->length, c2pa_store_container_size(file, where->store.size()));
    size_t segments = 0;
    for (size_t i = where->start; i < where->start + where->length; i += 2 + (size_t(file[i + 2]) << 8 | file[i + 3])) ++segments;
    EXPECT_EQ(segments, 3u);
    const C2paReport r = verify_c2pa(file.data(), file.size(), {}, "big");
    EXPECT_TRUE(r.valid()) << failures(r);
    ASSERT_TRUE(decode_image(file.data(), file.size()));
}

TEST(C2pa, SignerFilesAreChecked) {
    const Credentials& c = credentials();
    const std::string key = (c.dir.path / "signer.key").string(), chain = (c.dir.path / "signer.pem").string(),
                      root = (c.dir.path / "root.pem").string();
    // The root's certificate does not belong to the signer's key.
    auto wrong = load_c2pa_signer(key, root);
    ASSERT_FALSE(wrong);
    std::printf("  %s\n", wrong.error().to_string().c_str());
    auto not_key = load_c2pa_signer(chain, chain);
    ASSERT_FALSE(not_key);
    std::printf("  %s\n", not_key.error().to_string().c_str());
    EXPECT_FALSE(load_c2pa_signer(key, (c.dir.path / "missing.pem").string()));
    // An encrypted key is refused at once (OpenSSL would otherwise prompt for its passphrase on the terminal).
    {
        BIO* in = BIO_new_file(key.c_str(), "r");
        EVP_PKEY* k = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
        BIO_free(in);
        ASSERT_NE(k, nullptr);
        const std::string enc = (c.dir.path / "encrypted.key").string();
        BIO* out = BIO_new_file(enc.c_str(), "w");
        static char pass[] = "secret";
        ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(out, k, EVP_aes_128_cbc(), nullptr, 0, nullptr, pass), 1);
        BIO_free(out);
        EVP_PKEY_free(k);
        auto refused = load_c2pa_signer(enc, chain);
        ASSERT_FALSE(refused);
        std::printf("  %s\n", refused.error().to_string().c_str());
        EXPECT_NE(refused.error().to_string().find("encrypted"), std::string::npos);
    }
    EXPECT_EQ(fs::status(key).permissions() & fs::perms::others_read, fs::perms::none);
    // Refused before any work: a WebP, and a file that already holds a store.
    auto webp = encode_image(gradient(16, 16), ImageFormat::Webp);
    ASSERT_TRUE(webp);
    EXPECT_FALSE(add_c2pa_manifest(*webp, claim_for("w"), c.signer, "w.webp"));
    const std::vector<uint8_t> once = signed_file(ImageFormat::Png, claim_for("t"));
    EXPECT_FALSE(add_c2pa_manifest(once, claim_for("t"), c.signer, "twice"));
}

// What another implementation wrote (tests/data/c2pa: c2pa-rs 0.91.3 through c2pa-python): easel's verifier reads
// each algorithm, an intermediate CA, a store over four JPEG segments, and catches a flipped signature byte.
TEST(C2pa, ReadsTheReferenceLibrarysFiles) {
    const std::string dir = std::string(EASEL_TEST_DATA_DIR) + "/c2pa/";
    auto anchors = load_pem_certificates(dir + "root_ca.pem");
    ASSERT_TRUE(anchors) << anchors.error().to_string();
    struct Case {
        const char* file;
        const char* alg;
        bool valid;
    };
    for (const Case& c : {Case{"sample.png", "ES256", true}, Case{"sample_es512.jpg", "ES512", true}, Case{"sample_ps256.png", "PS256", true},
                          Case{"sample_ed25519.jpg", "Ed25519", true}, Case{"sample_multiseg.jpg", "ES256", true},
                          Case{"tampered_sig.jpg", "ES256", false}}) {
        std::ifstream in(dir + c.file, std::ios::binary);
        const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_FALSE(bytes.empty()) << c.file;
        const C2paReport r = verify_c2pa(bytes.data(), bytes.size(), *anchors, c.file);
        std::printf("  %-20s %s, %s, signer %s%s\n", c.file, r.alg.c_str(), r.valid() ? "intact" : "FAILS", r.signer.c_str(),
                    r.failures.empty() ? "" : (": " + r.failures[0]).c_str());
        EXPECT_TRUE(r.present) << c.file;
        EXPECT_EQ(r.valid(), c.valid) << c.file << failures(r);
        EXPECT_EQ(r.alg, c.alg) << c.file;
        EXPECT_EQ(r.signature_valid, c.valid) << c.file;
        EXPECT_TRUE(r.binding_intact && r.assertions_intact && r.chain_valid && r.trusted) << c.file << failures(r);
        const Cbor* actions = r.assertion("c2pa.actions.v2");
        ASSERT_NE(actions, nullptr) << c.file;
        EXPECT_EQ(actions->get("actions")->items[0].get("digitalSourceType")->str(),
                  "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
    }
}

// Every algorithm easel signs with, through its own verifier (the CAI library and the Python verifier check ES256
// outputs in tests/cli and by hand: docs/provenance.md).
TEST(C2pa, SignsWithEveryAlgorithm) {
    for (const char* alg : {"es256", "es384", "es512", "ps256", "ed25519"}) {
        Credentials c;  // the ES256 pair, replaced below
        const std::string key = (c.dir.path / "a.key").string(), chain = (c.dir.path / "a.pem").string(), root = (c.dir.path / "a-root.pem").string();
        auto st = make_c2pa_test_credentials(key, chain, root, "alg test", 1, alg);
        ASSERT_TRUE(st) << alg << ": " << st.error().to_string();
        auto signer = load_c2pa_signer(key, chain);
        ASSERT_TRUE(signer) << alg << ": " << signer.error().to_string();
        auto anchors = load_pem_certificates(root);
        ASSERT_TRUE(anchors);
        auto png = encode_image(gradient(40, 40), ImageFormat::Png);
        ASSERT_TRUE(png);
        auto out = add_c2pa_manifest(*png, claim_for("a.png"), *signer, alg);
        ASSERT_TRUE(out) << alg << ": " << out.error().to_string();
        const C2paReport r = verify_c2pa(out->data(), out->size(), *anchors, alg);
        EXPECT_TRUE(r.valid() && r.trusted) << alg << failures(r);
        EXPECT_TRUE(r.warnings.empty()) << alg << ": " << (r.warnings.empty() ? "" : r.warnings[0]);
        std::printf("  %s: %s, %zu bytes of manifest store\n", alg, r.alg.c_str(), out->size() - png->size());
    }
    EXPECT_FALSE(make_c2pa_test_credentials("/tmp/x", "/tmp/y", "/tmp/z", "o", 1, "dsa"));
}

// A claim naming more assertions than any real one (1,000) is refused before they are hashed: the hashing of a
// hostile claim stays linear in the file's size.
TEST(C2pa, RefusesAClaimOfTooManyAssertions) {
    C2paClaimInput c = claim_for("many");
    for (int i = 0; i < 1000; ++i) c.assertions.push_back({fmt::format("easel.filler.{}", i), Cbor::integer(i)});
    const std::vector<uint8_t> file = signed_file(ImageFormat::Png, c);
    const C2paReport r = verify_c2pa(file.data(), file.size(), {}, "many");
    EXPECT_TRUE(r.present);
    EXPECT_FALSE(r.valid());
    EXPECT_NE(r.error.find("1002 assertions"), std::string::npos) << r.error;
}
