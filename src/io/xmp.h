// XMP packets (Adobe's Extensible Metadata Platform, ISO 16684-1) as images carry them: what easel writes into
// every image it makes (the IPTC "trained algorithmic media" label, the generator, the model, its hash and
// licence) and reads back (`easel verify`). Only the flat subset easel writes is parsed back: simple properties as
// attributes of one rdf:Description, and language alternatives (rdf:Alt) as elements.
//
//   XmpFields f = {{"Iptc4xmpExt:DigitalSourceType", std::string(kIptcTrainedAlgorithmicMedia)}, {"easel:Model", "tiny"}};
//   std::string packet = build_xmp(f);
//   XmpFields back = parse_xmp(packet);   // the same pairs
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace easel {

// IPTC's digital source type for media made by a trained model (NewsCodes digitalsourcetype).
inline constexpr std::string_view kIptcTrainedAlgorithmicMedia =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
// easel's own namespace, for what no standard schema names (model, model hash, model licence, LoRA hashes).
inline constexpr std::string_view kEaselXmpNamespace = "urn:easel:ns:1.0/";
// The key under which PNG keeps XMP (an iTXt chunk) and io/image's TextChunks carry it to any format.
inline constexpr std::string_view kXmpKey = "XML:com.adobe.xmp";

// "prefix:Name" -> value, in order. Prefixes easel knows: Iptc4xmpExt, xmp, dc, xmpRights, easel; a value of
// xmpRights:UsageTerms or dc:rights is written as a language alternative (x-default).
using XmpFields = std::vector<std::pair<std::string, std::string>>;

std::string build_xmp(const XmpFields& fields);
// The properties of an XMP packet (attributes of rdf:Description, and x-default entries of rdf:Alt), XML entities
// decoded; empty when it is not XMP easel can read.
XmpFields parse_xmp(std::string_view packet);
// The value of one property ("" when absent).
std::string xmp_value(const XmpFields& fields, std::string_view name);

}  // namespace easel
