#include "db/internal.h"

#include <cstdio>
#include <functional>
#include <stdexcept>

namespace kindling::db::internal {

std::string PreparedName(pqxx::transaction_base& work, const std::string& sql) {
  char name[24];
  std::snprintf(name, sizeof name, "k%016zx", std::hash<std::string>{}(sql));
  // Defines it the first time (PostgreSQL prepares it at its first
  // execution); the same name and text again is a no-op. Two texts with one
  // 64-bit hash would throw (kInternal), not run the wrong statement.
  work.conn().prepare(name, sql);
  return name;
}

std::string Text(const pqxx::field& f) {
  if (f.is_null()) throw std::runtime_error(std::string("unexpected NULL in column ") + f.name());
  return std::string(f.c_str(), f.size());
}

std::optional<std::string> OptText(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string(f.c_str(), f.size());
}

Timestamp Time(const pqxx::field& f) {
  const std::optional<Timestamp> t = OptTime(f);
  if (!t) throw std::runtime_error(std::string("unexpected NULL in column ") + f.name());
  return *t;
}

std::optional<Timestamp> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  const std::optional<Timestamp> t = ParseTimestamp(f.c_str());
  if (!t)
    throw std::runtime_error(std::string("unparsable timestamp '") + f.c_str() + "' in column " +
                             f.name());
  return t;
}

std::vector<std::string> TextArray(const pqxx::field& f) {
  std::vector<std::string> out;
  if (f.is_null()) return out;
  pqxx::array_parser parser = f.as_array();
  int depth = 0;
  for (auto [juncture, value] = parser.get_next(); juncture != pqxx::array_parser::done;
       std::tie(juncture, value) = parser.get_next()) {
    switch (juncture) {
      case pqxx::array_parser::row_start:
        if (++depth > 1)
          throw std::runtime_error("nested array in column " + std::string(f.name()));
        break;
      case pqxx::array_parser::row_end:
        --depth;
        break;
      case pqxx::array_parser::string_value:
        out.push_back(std::move(value));
        break;
      case pqxx::array_parser::null_value:
      case pqxx::array_parser::done:
        break;
    }
  }
  return out;
}

std::string Bytes(const pqxx::field& f) {
  if (f.is_null()) throw std::runtime_error(std::string("unexpected NULL in column ") + f.name());
  return pqxx::binarystring(f).str();
}

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::optional<std::string> OptTimeParam(const std::optional<Timestamp>& t) {
  if (!t) return std::nullopt;
  return FormatTimestamp(*t);
}

void Notify(pqxx::transaction_base& work, std::string_view channel, std::string_view payload) {
  internal::Exec(work, "SELECT pg_notify($1, $2)", std::string(channel), std::string(payload));
}

}  // namespace kindling::db::internal
