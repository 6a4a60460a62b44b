// The few S3 XML documents the store reads and writes (pugixml). Private to
// the S3 store. Parsing never throws; malformed documents are kInternal errors
// (an S3 service that answers garbage has a bug, retrying will not help).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "storage/object_store.h"

namespace kindling::storage::s3 {

// <Error><Code>..</Code><Message>..</Message></Error>; both empty when `xml`
// is not such a document (e.g. the empty body of a HEAD).
struct ErrorBody {
  std::string code;
  std::string message;
};
ErrorBody ParseErrorBody(std::string_view xml);

// One page of ListObjectsV2 (<ListBucketResult>).
struct ListPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;
  std::string next_continuation_token;
};
[[nodiscard]] Result<ListPage> ParseListObjectsV2(std::string_view xml);

// The UploadId of an <InitiateMultipartUploadResult>.
[[nodiscard]] Result<std::string> ParseUploadId(std::string_view xml);

// The <CompleteMultipartUpload> body for parts 1..etags.size(), in order.
std::string CompleteMultipartBody(const std::vector<std::string>& etags);

}  // namespace kindling::storage::s3
