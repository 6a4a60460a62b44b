// Operation routes: GET /api/operations/{id}, and its server-sent event
// stream GET /api/operations/{id}/events.
#include <httplib.h>

#include <memory>

#include "api/api_context.h"
#include "api/json_views.h"
#include "db/operations.h"
#include "db/volumes.h"

namespace kindling::api {
namespace {

// The operation as GET /api/operations/{id} answers it (with project_id),
// read in one transaction.
Result<json> ReadOperation(db::Database& db, const std::string& id, db::Project* project_out) {
  return db.Transact([&](db::Tx& tx) -> Result<json> {
    KINDLING_ASSIGN_OR_RETURN(auto op, db::GetOperation(tx, id));
    KINDLING_ASSIGN_OR_RETURN(auto volume, db::GetVolume(tx, op.project_volume_id));
    KINDLING_ASSIGN_OR_RETURN(auto project, db::GetProject(tx, volume.project_id));
    json out = OperationJson(op);
    out["project_id"] = project.id;
    if (project_out != nullptr) *project_out = std::move(project);
    return out;
  });
}

// The operation, if the caller may see it: 404 otherwise (its existence is
// not revealed to other organisations).
ControlResult<json> OperationFor(ApiContext& api, const Call& call, const std::string& id) {
  db::Project project;
  auto found = ReadOperation(api.db, id, &project);
  if (!found) {
    if (found.error().is_not_found()) {
      return Refuse(404, control::kCodeNotFound, "operation " + id + " not found");
    }
    return std::unexpected(control::FromError(found.error()));
  }
  if (!call.IsAdmin() && !call.principal.RoleIn(project.organization_id)) {
    return Refuse(404, control::kCodeNotFound, "operation " + id + " not found");
  }
  return std::move(*found);
}

bool Finished(const json& op) {
  const std::string status = op.value("status", "");
  return status == "succeeded" || status == "failed";
}

// One stream's state, shared by the calls of its content provider.
struct OperationStream {
  ApiContext* api = nullptr;
  std::string id{};
  std::string last{};  // the last operation sent, as sent
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_write = opened;
};

bool Send(httplib::DataSink& sink, OperationStream& s, const std::string& text) {
  s.last_write = std::chrono::steady_clock::now();
  return sink.write(text.data(), text.size());
}

// One call of the content provider: the first sends the operation at once;
// each later one waits a poll interval, reads it again and sends it when it
// changed (a comment line when nothing was sent for keep_alive). Ends the
// stream (`event: end`) once the operation is finished, at max_duration
// (`event: timeout`), when the operation cannot be read (`event: error`)
// or when the server stops.
bool NextEvent(OperationStream& s, httplib::DataSink& sink) {
  EventStreams& streams = s.api->event_streams;
  const EventStreamOptions& options = streams.options();
  if (!s.last.empty() && !streams.Sleep(options.poll)) {
    sink.done();
    return true;
  }
  if (std::chrono::steady_clock::now() - s.opened >= options.max_duration) {
    if (!Send(sink, s, "event: timeout\ndata: {}\n\n")) return false;
    sink.done();
    return true;
  }
  // A transaction: another thread serves requests while it runs.
  Result<json> op = ReadOperation(s.api->db, s.id, nullptr);
  if (!op) {
    const json error = {{"error", "operation " + s.id + " cannot be read now"},
                        {"code", control::kCodeUnavailable}};
    if (!Send(sink, s, "event: error\ndata: " + error.dump() + "\n\n")) return false;
    sink.done();
    return true;
  }
  std::string text = op->dump();
  if (text != s.last) {
    if (!Send(sink, s, "data: " + text + "\n\n")) return false;
    s.last = std::move(text);
  } else if (std::chrono::steady_clock::now() - s.last_write >= options.keep_alive) {
    if (!Send(sink, s, ": keep-alive\n\n")) return false;
  }
  if (Finished(*op)) {
    if (!Send(sink, s, "event: end\ndata: {}\n\n")) return false;
    sink.done();
  }
  return true;
}

}  // namespace

void AddOperationRoutes(ApiContext& api) {
  const std::string operation = R"(/api/operations/([^/]+))";
  api.Route("GET", operation, [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "operation"));
    API_ASSIGN_OR_RETURN(json op, OperationFor(api, call, id));
    return Reply{200, std::move(op)};
  });
  api.Route("GET", operation + "/events", [&api](Call& call) -> ControlResult<Reply> {
    API_ASSIGN_OR_RETURN(std::string id, call.PathId(1, "operation"));
    API_RETURN_IF_ERROR(OperationFor(api, call, id));
    if (!api.event_streams.TryOpen()) {
      return Refuse(503, control::kCodeUnavailable,
                    "too many event streams are open: poll GET /api/operations/" + id);
    }
    auto stream = std::make_shared<OperationStream>(OperationStream{.api = &api, .id = id});
    Reply reply;
    reply.stream = [stream](std::size_t, httplib::DataSink& sink) {
      return NextEvent(*stream, sink);
    };
    reply.stream_closed = [&api](bool) { api.event_streams.Close(); };
    return reply;
  });
}

}  // namespace kindling::api
