// Throwaway TLS certificates for tests, made with the openssl command
// (scripts/install-deps.sh installs it): a CA made for one test and a
// certificate for the DNS name `localhost` it signed.
#pragma once

#include <filesystem>
#include <string>

namespace kindling::testutil {

struct TlsFiles {
  std::filesystem::path ca;    // the CA's certificate (PEM): what clients trust
  std::filesystem::path key;   // the server's private key (PEM, mode 0600)
  std::filesystem::path cert;  // the server's certificate (PEM), for localhost
};

// Writes the files in `dir` (created; mode 0755, so other users can read the
// certificates); the CA, named `ca_name`, signs and its key is deleted.
// Throws std::runtime_error when openssl is missing or fails.
TlsFiles MakeLocalhostCertificate(const std::filesystem::path& dir, const std::string& ca_name);

}  // namespace kindling::testutil
