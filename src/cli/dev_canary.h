// `kindling dev --canary`: once dev is ready, a project named "canary" with a
// 1 GiB volume runs the canary guest, and dev says on stderr how it answered
// through the edge (the validation checklist's canary step, client/
// cluster_validation.h) with the commands to ask it yourself. Made on the
// first start, reused (and started again if it is not running) on the next.
// Needs workers with a VM runtime and the canary guest; without, it says why
// and dev carries on.
//
// Thread-safety: call from one thread.
#pragma once

#include "service/dev.h"

namespace kindling::cli {

void ShowDevCanary(const service::DevEndpoints& endpoints);

}  // namespace kindling::cli
