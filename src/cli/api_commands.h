// The operator commands that drive a running control plane through its HTTP
// API (client::ApiClient): projects, their backups and their workload
// (deploy, deployments, stop, start; following a deployment until it runs or
// fails), volumes (create with their retention policy, delete, backups, the
// retention preview, restores, moves, repairs, grows, verifies, pinning
// backups, quarantined images and their adoption), operations (show, follow
// with progress), the quarantine, backup store settings and history,
// servers (list, drain, activate), audit events, users, organisations and
// their members, API keys (yours, or anyone's for platform admins), and
// `admin backups` (rescan the stores, orphan backups and their assignment).
//
// Every command takes --url (KINDLING_URL), --api-key (KINDLING_API_KEY),
// --ca-file (KINDLING_CA_FILE: the CA certificates an https:// API is
// verified with instead of the system store) and --json (the API's answer as
// one JSON document on the last line of stdout).
// Exit codes: 0 ok, 1 failed or refused, 2 usage or validation_error, 3 a
// followed verify found problems, 130 interrupted.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds project, volume, operation, settings, quarantine, servers, audit, user,
// org, api-key and `admin backups` (under the `admin` group when `app` has
// one) to `app`;
// the chosen command's runner is stored in `action` when it is parsed.
void AddApiCommands(CLI::App& app, std::function<int()>& action);

}  // namespace kindling::cli
