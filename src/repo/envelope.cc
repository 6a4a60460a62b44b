#include "repo/envelope.h"

#include "common/bytes.h"

namespace kindling::repo {
namespace {

constexpr std::string_view kMagic = "KNDL";
constexpr std::uint8_t kCipherAesGcm = 1;

std::string HeaderBytes(const EnvelopeHeader& header) {
  std::string out;
  ByteWriter w(out);
  w.Raw(kMagic);
  w.U8(static_cast<std::uint8_t>(header.type));
  w.U8(header.version);
  w.U8(static_cast<std::uint8_t>(header.codec));
  w.U8(kCipherAesGcm);
  w.U32(header.plain_size);
  return out;
}

}  // namespace

void SealEnvelope(const crypto::Key& key, const EnvelopeHeader& header, std::string_view body,
                  std::string_view context, std::string& out) {
  const std::string head = HeaderBytes(header);
  std::string aad = head;
  aad.append(context);
  out.append(head);
  crypto::SealAppend(key, body, aad, out);
}

Result<EnvelopeHeader> ParseEnvelopeHeader(std::string_view object, ObjectType expected) {
  if (object.size() < kEnvelopeHeaderSize + crypto::kSealOverhead)
    return Corruption("object too short (" + std::to_string(object.size()) + " bytes)");
  ByteReader r(object);
  if (*r.Raw(4) != kMagic) return Corruption("not a kindling object (bad magic)");
  EnvelopeHeader header;
  const std::uint8_t type = *r.U8();
  header.version = *r.U8();
  const std::uint8_t codec = *r.U8();
  const std::uint8_t cipher = *r.U8();
  header.plain_size = *r.U32();
  if (type != static_cast<std::uint8_t>(expected))
    return Corruption("unexpected object type " + std::to_string(type));
  if (header.version != kFormatVersion)
    return Corruption("unsupported format version " + std::to_string(header.version));
  if (codec > static_cast<std::uint8_t>(Codec::kZstd))
    return Corruption("unknown codec " + std::to_string(codec));
  if (cipher != kCipherAesGcm) return Corruption("unknown cipher " + std::to_string(cipher));
  header.type = expected;
  header.codec = static_cast<Codec>(codec);
  return header;
}

Result<EnvelopeHeader> OpenEnvelope(const crypto::Key& key, std::string_view object,
                                    ObjectType expected, std::string_view context,
                                    std::string& body) {
  KINDLING_ASSIGN_OR_RETURN(EnvelopeHeader header, ParseEnvelopeHeader(object, expected));
  std::string aad(object.substr(0, kEnvelopeHeaderSize));
  aad.append(context);
  KINDLING_RETURN_IF_ERROR(crypto::Open(key, object.substr(kEnvelopeHeaderSize), aad, body));
  return header;
}

}  // namespace kindling::repo
