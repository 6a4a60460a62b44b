#include "db/projects.h"

#include "db/internal.h"
#include "db/rows.h"

namespace kindling::db {

using internal::kProjectColumns;
using internal::ProjectFromRow;

Result<Project> CreateProject(Tx& tx, const std::string& organization_id, const std::string& name) {
  return internal::Run(tx, "create project", [&](pqxx::transaction_base& w) -> Result<Project> {
    return ProjectFromRow(internal::Exec1(
        w,
        std::string("INSERT INTO projects (organization_id, name) VALUES ($1::uuid, $2) "
                    "RETURNING ") +
            kProjectColumns,
        organization_id, name));
  });
}

Result<Project> GetProject(Tx& tx, const std::string& project_id) {
  return internal::Run(tx, "get project", [&](pqxx::transaction_base& w) -> Result<Project> {
    const pqxx::result rows = internal::Exec(
        w, std::string("SELECT ") + kProjectColumns + " FROM projects WHERE id = $1::uuid",
        project_id);
    if (rows.empty()) return NotFound("project " + project_id + " not found");
    return ProjectFromRow(rows[0]);
  });
}

Result<std::vector<Project>> ListProjects(Tx& tx, const ProjectFilter& filter) {
  return internal::Run(
      tx, "list projects", [&](pqxx::transaction_base& w) -> Result<std::vector<Project>> {
        std::vector<Project> projects;
        for (const auto& r : internal::Exec(
                 w,
                 std::string("SELECT ") + kProjectColumns +
                     " FROM projects p "
                     "WHERE ($1::uuid IS NULL OR organization_id = $1::uuid) "
                     "  AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM organization_memberships m "
                     "    WHERE m.organization_id = p.organization_id AND m.user_id = $2::uuid)) "
                     "ORDER BY name, id",
                 filter.organization_id, filter.member_user_id))
          projects.push_back(ProjectFromRow(r));
        return projects;
      });
}

Status DeleteProject(Tx& tx, const std::string& project_id) {
  return internal::Run(tx, "delete project", [&](pqxx::transaction_base& w) -> Status {
    if (internal::Exec(w, "DELETE FROM projects WHERE id = $1::uuid RETURNING id", project_id)
            .empty())
      return NotFound("project " + project_id + " not found");
    return {};
  });
}

namespace internal {

Project ProjectFromRow(const pqxx::row& r) {
  return Project{Text(r[0]), Text(r[1]), Text(r[2]), Time(r[3]), Time(r[4])};
}

}  // namespace internal
}  // namespace kindling::db
