#ifndef SWITCHYARD_SERVER_STORAGE_SQL_SQL_H_
#define SWITCHYARD_SERVER_STORAGE_SQL_SQL_H_

// The small surface a SQL database engine offers to the shared transaction
// code (sql_transaction.h): prepared statements with positional parameters,
// stepped row by row. SQLite and PostgreSQL implement it.
//
// Statement text uses `?` for parameters and the SQL both engines accept
// (INSERT ... ON CONFLICT DO UPDATE, RETURNING); an engine rewrites what it
// must (PostgreSQL numbers the parameters).

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchyard::storage {

// One prepared statement of a connection. Not thread-safe: it belongs to the
// connection's current user. Parameters are numbered from 1, columns from 0.
// Bind* before the first Step; Reset clears the bindings and the result.
class SqlStatement {
 public:
  virtual ~SqlStatement() = default;

  virtual void BindText(int index, absl::string_view value) = 0;
  // The bytes of a blob are not copied: they must stay alive and unchanged
  // until Reset.
  virtual void BindBlob(int index, absl::string_view value) = 0;
  virtual void BindInt(int index, int64_t value) = 0;
  // NULL for an integer column (the only nullable columns hold times).
  virtual void BindNullInt(int index) = 0;

  // Runs the statement on the first call, then moves to the next row. true:
  // a row is available; false: no more rows. Errors: kAlreadyExists for a
  // unique key taken, kInternal for a broken CHECK constraint or a bug,
  // kUnavailable when the database cannot be reached or is busy, kAborted when
  // the transaction lost a conflict and must be retried as a whole.
  virtual absl::StatusOr<bool> Step() = 0;
  // Rows changed by the statement, after Step returned false.
  virtual int64_t Changes() = 0;

  // Column values of the current row. Int of NULL is 0. Bytes (text or blob)
  // stay valid until the next Step or Reset.
  virtual bool IsNull(int column) = 0;
  virtual int64_t Int(int column) = 0;
  virtual absl::string_view Bytes(int column) = 0;

  virtual void Reset() = 0;
};

// A database connection as the shared transaction code sees it.
class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  // The prepared statement for `sql`, prepared on first use and kept by the
  // connection (which owns it). `sql` must be a string constant: engines may
  // key their cache by its address.
  virtual absl::StatusOr<SqlStatement*> Prepare(const char* sql) = 0;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_SQL_SQL_H_
