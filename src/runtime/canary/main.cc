// kindling-canary: the guest program of the canary VM (see guest/init).
//
//   kindling-canary serve  --dir DIR [--port 8080] [--address 0.0.0.0]
//   kindling-canary verify --dir DIR
//
// serve answers the routes of canary_routes.h until SIGTERM/SIGINT. verify
// checks every record, prints kVerifyConsolePrefix + JSON on stdout (the
// guest's console) and exits 0 when all are intact, 1 when some are damaged,
// 2 when the records cannot be read at all (printed as
// "kindling-canary-verify-error: ...").
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "runtime/canary/canary_routes.h"
#include "runtime/canary/http_server.h"
#include "runtime/canary/record_store.h"
#include "runtime/canary/verify_report.h"

namespace {

using kindling::canary::HandleCanaryRequest;
using kindling::canary::HttpRequest;
using kindling::canary::HttpServer;
using kindling::canary::RecordStore;
using kindling::canary::VerifyConsoleLine;
using kindling::canary::VerifyRecordDir;

HttpServer* g_server = nullptr;

void OnStopSignal(int /*signal*/) {
  // RequestStop only stores to an atomic: async-signal-safe.
  if (g_server != nullptr) g_server->RequestStop();
}

int Usage() {
  std::fprintf(stderr,
               "usage: kindling-canary serve --dir DIR [--port N] [--address A]\n"
               "       kindling-canary verify --dir DIR\n");
  return 64;
}

int Serve(const std::string& dir, const std::string& address, std::uint16_t port) {
  auto store = RecordStore::Open(dir);
  if (!store) {
    std::fprintf(stderr, "kindling-canary: %s\n", store.error().message().c_str());
    return 1;
  }
  auto server = HttpServer::Listen(address, port);
  if (!server) {
    std::fprintf(stderr, "kindling-canary: %s\n", server.error().message().c_str());
    return 1;
  }
  g_server = &*server;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  std::printf("kindling-canary: serving %s on %s:%u\n", dir.c_str(), address.c_str(),
              static_cast<unsigned>(server->port()));
  std::fflush(stdout);
  auto served = server->Serve(
      [&](const HttpRequest& request) { return HandleCanaryRequest(*store, request); });
  g_server = nullptr;
  if (!served) {
    std::fprintf(stderr, "kindling-canary: %s\n", served.error().message().c_str());
    return 1;
  }
  return 0;
}

int Verify(const std::string& dir) {
  auto report = VerifyRecordDir(dir);
  if (!report) {
    std::printf("kindling-canary-verify-error: %s\n", report.error().message().c_str());
    return 2;
  }
  std::printf("%s\n", VerifyConsoleLine(*report).c_str());
  std::fflush(stdout);
  return report->damaged.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string_view mode = argv[1];
  std::string dir;
  std::string address = "0.0.0.0";
  std::uint16_t port = 8080;
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) return Usage();
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--dir") {
      dir = value;
    } else if (flag == "--address") {
      address = value;
    } else if (flag == "--port") {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc() || ptr != value.data() + value.size()) return Usage();
    } else {
      return Usage();
    }
  }
  if (dir.empty()) return Usage();
  if (mode == "serve") return Serve(dir, address, port);
  if (mode == "verify") return Verify(dir);
  return Usage();
}
