#include "http/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <mutex>
#include <new>

namespace kindling::http {
namespace {

// Largest body we pre-allocate from a Content-Length header; a bogus header
// must not make us reserve gigabytes before a byte has arrived.
constexpr std::uint64_t kMaxReserve = 256u << 20;

struct Exchange {
  std::string_view upload;
  std::size_t upload_offset = 0;
  HttpResponse* response = nullptr;
  bool out_of_memory = false;
};

std::string Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() &&
         (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n'))
    text.remove_suffix(1);
  return std::string(text);
}

// libcurl calls these from C; they must not throw.
std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* exchange = static_cast<Exchange*>(user);
  const std::string_view line(data, size * count);
  try {
    if (line.starts_with("HTTP/")) {
      // A new status line (after "100 Continue" or a retried request) starts
      // a fresh set of headers.
      exchange->response->headers.clear();
      exchange->response->body.clear();
      return line.size();
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return line.size();
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    exchange->response->headers[std::move(name)] = Trim(line.substr(colon + 1));
  } catch (const std::bad_alloc&) {
    exchange->out_of_memory = true;
    return 0;
  }
  return line.size();
}

std::size_t OnBody(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* exchange = static_cast<Exchange*>(user);
  HttpResponse& response = *exchange->response;
  try {
    if (response.body.empty()) {
      if (auto length = response.ContentLength())
        response.body.reserve(static_cast<std::size_t>(std::min(*length, kMaxReserve)));
    }
    response.body.append(data, size * count);
  } catch (const std::bad_alloc&) {
    exchange->out_of_memory = true;
    return 0;
  }
  return size * count;
}

std::size_t OnRead(char* buffer, std::size_t size, std::size_t count, void* user) noexcept {
  auto* exchange = static_cast<Exchange*>(user);
  const std::size_t n = std::min(size * count, exchange->upload.size() - exchange->upload_offset);
  std::copy_n(exchange->upload.data() + exchange->upload_offset, n, buffer);
  exchange->upload_offset += n;
  return n;
}

// Lets libcurl resend the body, e.g. when a reused connection turns out to be
// closed by the server and the request is retried on a fresh one.
int OnSeek(void* user, curl_off_t offset, int origin) noexcept {
  auto* exchange = static_cast<Exchange*>(user);
  if (origin != SEEK_SET || offset < 0 ||
      static_cast<std::size_t>(offset) > exchange->upload.size())
    return CURL_SEEKFUNC_FAIL;
  exchange->upload_offset = static_cast<std::size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

bool IsTransient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_AGAIN:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
  }
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

std::optional<std::uint64_t> HttpResponse::ContentLength() const {
  const std::string* value = Header("content-length");
  if (value == nullptr) return std::nullopt;
  std::uint64_t length = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), length);
  if (ec != std::errc() || end != value->data() + value->size()) return std::nullopt;
  return length;
}

const std::string* HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

HttpClient::HttpClient(HttpClientOptions options) : options_(options) {
  // curl_global_init is not thread-safe; every client goes through here first.
  static std::once_flag curl_initialised;
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  options_.max_connections = std::max<std::size_t>(options_.max_connections, 1);
}

HttpClient::~HttpClient() {
  std::lock_guard lock(mu_);
  for (void* handle : idle_) curl_easy_cleanup(handle);
}

void* HttpClient::Acquire() {
  std::unique_lock lock(mu_);
  available_.wait(lock, [&] { return !idle_.empty() || created_ < options_.max_connections; });
  if (!idle_.empty()) {
    void* handle = idle_.back();
    idle_.pop_back();
    return handle;
  }
  CURL* handle = curl_easy_init();
  if (handle != nullptr) ++created_;
  return handle;
}

void HttpClient::Release(void* handle) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(handle);
  }
  available_.notify_one();
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request, std::string_view what) {
  CURL* curl = Acquire();
  if (curl == nullptr) return InternalError(std::string(what) + ": curl_easy_init failed");
  // Returned to the pool on every path; curl_easy_reset keeps the handle's
  // live connections, which is the point of pooling it.
  struct Lease {
    HttpClient* client;
    CURL* handle;
    ~Lease() { client->Release(handle); }
  } lease{this, curl};
  curl_easy_reset(curl);

  HttpResponse response;
  Exchange exchange;
  exchange.upload = request.body;
  exchange.response = &response;
  char error_buffer[CURL_ERROR_SIZE] = {};

  curl_slist* raw_headers = nullptr;
  for (const std::string& header : request.headers)
    raw_headers = curl_slist_append(raw_headers, header.c_str());
  // No "Expect: 100-continue" round trip before each upload.
  raw_headers = curl_slist_append(raw_headers, "Expect:");
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);
  if (!headers) return InternalError(std::string(what) + ": out of memory");

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &exchange);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &exchange);
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(curl, CURLOPT_READDATA, &exchange);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, &OnSeek);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &exchange);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  const CURLcode code = curl_easy_perform(curl);
  if (exchange.out_of_memory) return InternalError(std::string(what) + ": out of memory");
  if (code != CURLE_OK) {
    std::string message = std::string(what) + ": " + curl_easy_strerror(code);
    if (error_buffer[0] != '\0') message += std::string(" (") + error_buffer + ")";
    if (code == CURLE_PEER_FAILED_VERIFICATION) {
      return MakeError(ErrorKind::kPermissionDenied,
                       std::string(what) + ": TLS certificate verification failed: " +
                           (error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code)));
    }
    if (IsTransient(code)) return TransientError(std::move(message));
    return InternalError(std::move(message));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace kindling::http
