#ifndef SWITCHYARD_SERVER_COMMON_LOG_H_
#define SWITCHYARD_SERVER_COMMON_LOG_H_

// Structured logging: one JSON object per line on stderr, for example
//   {"ts":"2026-11-28T04:20:00.123456Z","level":"info","msg":"listening","port":50051}
// Thread-safe: each line is written with a single write(2).
// Never pass secrets (keys, tokens, credentials) as fields.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/string_view.h"

namespace switchyard::log {

enum class Level { kDebug, kInfo, kWarning, kError };

// A field value: text, integer or boolean.
using Value = std::variant<absl::string_view, int64_t, bool>;

struct Field {
  Field(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  Field(absl::string_view k, const std::string& v) : key(k), value(absl::string_view(v)) {}
  Field(absl::string_view k, const char* v) : key(k), value(absl::string_view(v)) {}
  Field(absl::string_view k, int64_t v) : key(k), value(v) {}
  Field(absl::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(absl::string_view k, bool v) : key(k), value(v) {}
  absl::string_view key;
  Value value;
};

// Lines below `level` are dropped. Default kInfo.
void SetMinLevel(Level level);

void Write(Level level, absl::string_view msg, std::initializer_list<Field> fields = {});
inline void Info(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, msg, fields);
}
inline void Warning(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarning, msg, fields);
}
inline void Error(absl::string_view msg, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, msg, fields);
}

// Appends `s` to `out` as a JSON string literal (with quotes).
void AppendJsonString(std::string& out, absl::string_view s);

// Routes gRPC's own log output through Write().
void CaptureGrpcLogs();

}  // namespace switchyard::log

#endif  // SWITCHYARD_SERVER_COMMON_LOG_H_
