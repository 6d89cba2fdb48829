#ifndef SWITCHYARD_SERVER_STORAGE_SQL_SQL_TRANSACTION_H_
#define SWITCHYARD_SERVER_STORAGE_SQL_SQL_TRANSACTION_H_

// The Transaction interface written once in SQL, over any SqlConnection whose
// schema has the tables of the store (both engines' migrations create the
// same tables and columns).

#include <memory>
#include <vector>

#include "server/storage/sql/sql.h"
#include "server/storage/store.h"

namespace switchyard::storage {

// A Transaction running its statements on `connection` (borrowed; it must
// outlive the result). The caller begins and ends the database transaction.
// `inserted` (borrowed, may be null) collects one notice per inserted event,
// `changes` (borrowed, may be null: nobody to tell) the announced changes.
// Not thread-safe, like the connection.
std::unique_ptr<Transaction> NewSqlTransaction(SqlConnection& connection,
                                               std::vector<EventNotice>* inserted,
                                               std::vector<ChangeNotice>* changes = nullptr);

// One notice per connection with the highest sequence of `inserted`.
std::vector<EventNotice> MergeNotices(std::vector<EventNotice> inserted);

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_SQL_SQL_TRANSACTION_H_
