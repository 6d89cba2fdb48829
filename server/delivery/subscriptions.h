#ifndef SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTIONS_H_
#define SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTIONS_H_

// Subscriptions as resources: create, read, list, delete, seek, and their
// dead letters. Delivery itself is the DeliveryEngine's; this module tells it
// when a subscription's stored state changed.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "server/common/clock.h"
#include "server/common/scope.h"
#include "server/storage/store.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::delivery {

// Thread-safe. Borrows `store` and `clock`, which must outlive it.
class SubscriptionManager {
 public:
  // `moved` is called with a subscription's name after a seek or a delete
  // was committed, `replayed` after dead letters were marked for replay;
  // neither may block. `settle` is called before a seek and makes the
  // acknowledgements accepted so far durable (it may block), so that a seek
  // of one connection does not undo the acknowledgements of the others; its
  // error fails the seek.
  SubscriptionManager(storage::Store& store, Clock& clock,
                      std::function<void(const std::string&)> moved,
                      std::function<void(const std::string&)> replayed,
                      std::function<absl::Status()> settle)
      : store_(store),
        clock_(clock),
        moved_(std::move(moved)),
        replayed_(std::move(replayed)),
        settle_(std::move(settle)) {}

  // INVALID_ARGUMENT for bad ids, filters, deadlines or attempts;
  // PERMISSION_DENIED for an operator subscription asked by a tenant key;
  // NOT_FOUND / TENANT_NOT_FOUND; ALREADY_EXISTS / SUBSCRIPTION_EXISTS;
  // ABORTED / REQUEST_ID_REUSED.
  absl::StatusOr<v1::Subscription> Create(const v1::CreateSubscriptionRequest& request,
                                          const Scope& scope);
  // NOT_FOUND / SUBSCRIPTION_NOT_FOUND when missing or outside `scope`.
  absl::StatusOr<v1::Subscription> Get(absl::string_view name, const Scope& scope);
  absl::StatusOr<v1::ListSubscriptionsResponse> List(const v1::ListSubscriptionsRequest& request,
                                                     const Scope& scope);
  absl::Status Delete(absl::string_view name, const Scope& scope);
  // NOT_FOUND for the subscription or the connection; INVALID_ARGUMENT for a
  // missing target or a negative sequence.
  absl::StatusOr<v1::SeekSubscriptionResponse> Seek(const v1::SeekSubscriptionRequest& request,
                                                    const Scope& scope);
  absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
      const v1::ListDeadLettersRequest& request, const Scope& scope);
  // Marks up to 10,000 dead letters for delivery at a time.
  absl::StatusOr<v1::ReplayDeadLettersResponse> ReplayDeadLetters(
      const v1::ReplayDeadLettersRequest& request, const Scope& scope);

 private:
  storage::Store& store_;
  Clock& clock_;
  const std::function<void(const std::string&)> moved_;
  const std::function<void(const std::string&)> replayed_;
  const std::function<absl::Status()> settle_;
};

}  // namespace switchyard::delivery

#endif  // SWITCHYARD_SERVER_DELIVERY_SUBSCRIPTIONS_H_
