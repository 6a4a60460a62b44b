#include "testutil/test_certificate.h"

#include <sys/stat.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "common/subprocess.h"

namespace kindling::testutil {

namespace fs = std::filesystem;

// A CA made for one server, and a certificate for `localhost` it signed, in
// `dir`: the certificates readable by every user, the server's key by us
// only; the CA's key is deleted once it signed.
TlsFiles MakeLocalhostCertificate(const fs::path& dir, const std::string& ca_name) {
  const fs::path openssl = "/usr/bin/openssl";
  if (!fs::exists(openssl))
    throw std::runtime_error("test certificate: " + openssl.string() +
                             " is missing; run scripts/install-deps.sh (apt-get install openssl)");
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0755);
  const TlsFiles files{dir / "ca.pem", dir / "server.key", dir / "server.pem"};
  const fs::path ca_key = dir / "ca.key";
  auto run = [&](std::vector<std::string> args) {
    CommandOptions options;
    options.args = {openssl.string()};
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.timeout = std::chrono::seconds(30);
    auto result = SystemCommandRunner().Run(options);
    if (!result) throw std::runtime_error("openssl: " + result.error().message());
    if (result->exit_status != 0)
      throw std::runtime_error("openssl " + args.front() + ": " + DescribeExit(*result, options) +
                               ": " + result->errors);
  };
  const std::vector<std::string> new_key = {
      "req",    "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
      "-nodes", "-days", "2"};
  std::vector<std::string> ca_args = new_key;
  ca_args.insert(ca_args.end(), {"-keyout", ca_key.string(), "-out", files.ca.string(), "-subj",
                                 "/CN=" + ca_name, "-addext", "basicConstraints=critical,CA:TRUE",
                                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  run(ca_args);
  std::vector<std::string> server_args = new_key;
  server_args.insert(
      server_args.end(),
      {"-keyout", files.key.string(), "-out", files.cert.string(), "-subj", "/CN=localhost", "-CA",
       files.ca.string(), "-CAkey", ca_key.string(), "-addext", "subjectAltName=DNS:localhost",
       "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"});
  run(server_args);
  fs::remove(ca_key);
  ::chmod(files.ca.c_str(), 0644);
  ::chmod(files.cert.c_str(), 0644);
  ::chmod(files.key.c_str(), 0600);
  return files;
}

}  // namespace kindling::testutil
