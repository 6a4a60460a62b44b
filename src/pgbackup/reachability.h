// A quick look at whether an S3 repository's endpoint accepts connections
// at all. pgBackRest retries a refused or silent endpoint for its io-timeout
// on every request, and `check` or `backup` make many requests, so against
// a stopped server they take minutes to fail; this answers in at most
// `timeout`, so the commands fail fast and name the endpoint.
#pragma once

#include <chrono>

#include "common/result.h"
#include "pgbackup/config.h"

namespace kindling::pgbackup {

// OkStatus when a TCP connection to the endpoint (any of its addresses)
// opens within `timeout`; kIo naming the endpoint and the reason otherwise.
[[nodiscard]] Status ProbeEndpoint(const S3Repository& s3, std::chrono::milliseconds timeout);

}  // namespace kindling::pgbackup
