// projects: a project belongs to one organization and has at most one live
// volume (project_volumes).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db {

struct Project {
  std::string id{};
  std::string organization_id{};
  std::string name{};
  Timestamp created_at{};
  Timestamp updated_at{};
};

// kInvalidArgument for an empty name, a name taken in the organization or an
// unknown organization.
[[nodiscard]] Result<Project> CreateProject(Tx& tx, const std::string& organization_id,
                                            const std::string& name);
[[nodiscard]] Result<Project> GetProject(Tx& tx, const std::string& project_id);  // kNotFound

struct ProjectFilter {
  std::optional<std::string> organization_id{};
  // Only projects of organizations this user is a member of.
  std::optional<std::string> member_user_id{};
};

// By name, then id. An empty filter lists every project (platform admins).
[[nodiscard]] Result<std::vector<Project>> ListProjects(Tx& tx, const ProjectFilter& filter = {});

// kNotFound when missing; kInvalidArgument while it still has a volume row.
[[nodiscard]] Status DeleteProject(Tx& tx, const std::string& project_id);

}  // namespace kindling::db
