#include "storage/s3/s3_xml.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <pugixml.hpp>
#include <sstream>

namespace kindling::storage::s3 {
namespace {

bool Load(pugi::xml_document& document, std::string_view xml) {
  return static_cast<bool>(document.load_buffer(xml.data(), xml.size()));
}

}  // namespace

ErrorBody ParseErrorBody(std::string_view xml) {
  pugi::xml_document document;
  if (xml.empty() || !Load(document, xml)) return {};
  const pugi::xml_node error = document.child("Error");
  if (!error) return {};
  return {error.child("Code").text().as_string(), error.child("Message").text().as_string()};
}

namespace {

// "2026-12-03T07:00:00.000Z" (ListObjectsV2's LastModified) as Unix ms; 0
// when malformed (the time is advisory: gc's grace).
std::int64_t ParseIsoTimeMs(const char* text) {
  std::tm tm{};
  int millis = 0;
  const int fields = std::sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                                 &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis);
  if (fields < 6) return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t seconds = ::timegm(&tm);
  if (seconds < 0) return 0;
  return static_cast<std::int64_t>(seconds) * 1000 + (fields == 7 ? millis : 0);
}

}  // namespace

Result<ListPage> ParseListObjectsV2(std::string_view xml) {
  pugi::xml_document document;
  if (!Load(document, xml)) return InternalError("ListObjectsV2: response is not XML");
  const pugi::xml_node result = document.child("ListBucketResult");
  if (!result) return InternalError("ListObjectsV2: response has no ListBucketResult");
  ListPage page;
  for (pugi::xml_node contents : result.children("Contents")) {
    ObjectInfo info;
    info.key = contents.child("Key").text().as_string();
    const std::string size = contents.child("Size").text().as_string();
    const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), info.size);
    if (info.key.empty() || size.empty() || ec != std::errc() || end != size.data() + size.size())
      return InternalError("ListObjectsV2: malformed Contents entry");
    info.modified_unix_ms = ParseIsoTimeMs(contents.child("LastModified").text().as_string());
    page.objects.push_back(std::move(info));
  }
  page.truncated = std::string_view(result.child("IsTruncated").text().as_string()) == "true";
  page.next_continuation_token = result.child("NextContinuationToken").text().as_string();
  if (page.truncated && page.next_continuation_token.empty())
    return InternalError("ListObjectsV2: truncated page without NextContinuationToken");
  return page;
}

Result<std::string> ParseUploadId(std::string_view xml) {
  pugi::xml_document document;
  if (!Load(document, xml)) return InternalError("CreateMultipartUpload: response is not XML");
  std::string id =
      document.child("InitiateMultipartUploadResult").child("UploadId").text().as_string();
  if (id.empty()) return InternalError("CreateMultipartUpload: response has no UploadId");
  return id;
}

std::string CompleteMultipartBody(const std::vector<std::string>& etags) {
  pugi::xml_document document;
  pugi::xml_node root = document.append_child("CompleteMultipartUpload");
  for (std::size_t i = 0; i < etags.size(); ++i) {
    pugi::xml_node part = root.append_child("Part");
    part.append_child("PartNumber").text().set(std::to_string(i + 1).c_str());
    part.append_child("ETag").text().set(etags[i].c_str());
  }
  std::ostringstream out;
  document.save(out, "", pugi::format_raw);
  return out.str();
}

}  // namespace kindling::storage::s3
