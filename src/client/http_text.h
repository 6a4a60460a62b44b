// Checks and excerpts of the text the client layer's HTTP callers send and
// quote (the API client, the edge client): base URLs, header values, answer
// bodies in messages.
//
// Thread-safety: free functions.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::client {

// `url` without its trailing '/'s when it is http(s)://host[...]; otherwise
// kInvalidArgument naming `what`: "the <what> URL must start with http:// or
// https://, got ...", "the <what> URL has no valid host: ...".
[[nodiscard]] Result<std::string> NormalizeBaseUrl(std::string url, std::string_view what);

// True when `value` can be sent as a header value as it is: no spaces or
// control characters (which could end the header).
bool IsHeaderSafe(std::string_view value);

// The first 200 characters of `text` on one line, printable ASCII only, with
// "..." when cut (proxies answer with whole HTML pages).
std::string PrintableExcerpt(std::string_view text);

}  // namespace kindling::client
