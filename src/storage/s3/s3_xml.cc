#include "storage/s3/s3_xml.h"

#include <charconv>
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
