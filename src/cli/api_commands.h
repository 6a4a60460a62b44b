// The operator commands that drive a running control plane through its HTTP
// API (client::ApiClient): projects, volumes and their backups, restores,
// moves and repairs, operations (show, follow with progress), backup store
// settings, servers, audit events and API keys.
//
// Every command takes --url (KINDLING_URL), --api-key (KINDLING_API_KEY) and
// --json (the API's answer as one JSON document on the last line of stdout).
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kindling::cli {

// Adds project, volume, operation, settings, servers, audit and api-key to
// `app`; the chosen command's runner is stored in `action` when it is parsed.
void AddApiCommands(CLI::App& app, std::function<int()>& action);

}  // namespace kindling::cli
