// The canary's HTTP routes over a RecordStore. The shapes are a contract with
// the host (the drills and, later, the worker's checks):
//   POST /records         body stored as a record -> 201 {"id": N}
//   GET  /records/verify  -> 200 {"records": N, "intact": N, "damaged": [ids]}
//   GET  /healthz         -> 200 {"status": "ok"}
// Anything else: 404, or 405 for a known path with another method; a store
// that fails answers 500 {"error": "..."}.
//
// Thread-safety: as RecordStore.
#pragma once

#include "runtime/canary/http_server.h"
#include "runtime/canary/record_store.h"

namespace kindling::canary {

HttpResponse HandleCanaryRequest(RecordStore& store, const HttpRequest& request);

}  // namespace kindling::canary
