// libpqxx glue shared by the db/ implementation files. Not for other layers:
// with db/rows.h, it is the only header that includes libpqxx.
#pragma once

#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "db/database.h"
#include "db/types.h"

namespace kindling::db::internal {

struct ConnectionState {
  std::unique_ptr<pqxx::connection> conn;
  // Swallows server NOTICEs (e.g. "relation already exists, skipping"),
  // which libpqxx would otherwise print to stderr.
  std::unique_ptr<pqxx::errorhandler> quiet;
};

struct TxState {
  explicit TxState(pqxx::transaction_base& w) : work(w) {}
  pqxx::transaction_base& work;
  // The first failure; once set, the transaction only rolls back.
  std::optional<Error> failure;
  bool retryable = false;  // a fresh transaction may succeed
  bool broken = false;     // the connection must not go back to the pool
};

// An Error for the exception being handled (call inside a catch block), with
// `what` as context. Sets `retryable`/`broken` like TxState's fields.
Error MapCurrentException(std::string_view what, bool* retryable, bool* broken);

// Runs `body(work)` with libpqxx exceptions mapped to Errors; records the
// first failure in the Tx so Transact rolls back (and retries when it may).
template <typename F>
auto Run(Tx& tx, std::string_view what, F&& body)
    -> std::invoke_result_t<F&, pqxx::transaction_base&> {
  TxState& state = tx.state();
  if (state.failure) return std::unexpected(*state.failure);
  try {
    return body(state.work);
  } catch (...) {
    bool retryable = false;
    bool broken = false;
    Error error = MapCurrentException(what, &retryable, &broken);
    state.failure = error;
    state.retryable = retryable;
    state.broken = broken;
    return std::unexpected(std::move(error));
  }
}

// Runs `sql` (parameters $1..$n bound to `args`, as exec_params) as a
// prepared statement of the pooled connection: PostgreSQL parses and plans
// it on its first use there, and later runs skip both (most of a short
// query's cost). The name is derived from the text, so every text must be
// fixed SQL: values go in parameters, never into the text (each distinct
// text stays prepared for the connection's life). The 1/0 variants check
// the row count like exec_params1/exec_params0.
std::string PreparedName(pqxx::transaction_base& work, const std::string& sql);
template <typename... Args>
pqxx::result Exec(pqxx::transaction_base& work, const std::string& sql, Args&&... args) {
  return work.exec_prepared(PreparedName(work, sql), std::forward<Args>(args)...);
}
template <typename... Args>
pqxx::row Exec1(pqxx::transaction_base& work, const std::string& sql, Args&&... args) {
  return work.exec_prepared1(PreparedName(work, sql), std::forward<Args>(args)...);
}
template <typename... Args>
pqxx::result Exec0(pqxx::transaction_base& work, const std::string& sql, Args&&... args) {
  return work.exec_prepared0(PreparedName(work, sql), std::forward<Args>(args)...);
}

// Field readers. They throw (libpqxx or std::runtime_error) on unexpected
// values; Run turns that into kInternal.
std::string Text(const pqxx::field& f);
std::optional<std::string> OptText(const pqxx::field& f);
Timestamp Time(const pqxx::field& f);
std::optional<Timestamp> OptTime(const pqxx::field& f);
std::vector<std::string> TextArray(const pqxx::field& f);
std::string Bytes(const pqxx::field& f);  // bytea

template <typename E>
E Enum(const pqxx::field& f) {
  const std::string text = f.as<std::string>();
  const std::optional<E> value = ParseEnum<E>(text);
  if (!value) throw std::runtime_error("unexpected value '" + text + "' in column " + f.name());
  return *value;
}

// Parameter helpers. libpqxx passes std::nullopt as SQL NULL.
std::string PgTextArray(const std::vector<std::string>& values);  // '{"a","b"}'
std::optional<std::string> OptTimeParam(const std::optional<Timestamp>& t);

// Announces `payload` on `channel` when the transaction commits.
void Notify(pqxx::transaction_base& work, std::string_view channel, std::string_view payload);

}  // namespace kindling::db::internal
