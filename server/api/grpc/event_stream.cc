#include "server/api/grpc/event_stream.h"

#include <grpcpp/server_context.h>

#include <deque>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/api/grpc/status_mapping.h"

namespace switchyard::api {
namespace {

// The engine's side of one stream: queues messages and starts one write at a
// time; finishes the call once the queue is written. Thread-safe.
class Outbox final : public delivery::StreamSink {
 public:
  explicit Outbox(EventStreamReactor* reactor) : reactor_(reactor) {}

  void Send(v1::StreamEventsResponse response) override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      queue_.push_back(std::move(response));
      if (writing_) return;
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
    }
    reactor_->StartWrite(&current_);
  }

  void End(absl::Status status) override ABSL_LOCKS_EXCLUDED(mu_) {
    grpc::Status final_status = ToGrpcStatus(status);
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      final_ = final_status;
      if (writing_) return;  // WriteDone finishes
    }
    reactor_->Finish(final_status);
  }

  // The write in flight completed; `ok` false: the client is gone.
  void WriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_) {
    bool write = false;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) queue_.clear();
      if (!queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        write = true;
      } else {
        writing_ = false;
        if (finishing_) finish = final_;
      }
    }
    if (write) {
      reactor_->StartWrite(&current_);
    } else if (finish.has_value()) {
      reactor_->Finish(*finish);
    }
  }

 private:
  // Valid until Finish is called, which happens once, after the last write.
  EventStreamReactor* const reactor_;
  absl::Mutex mu_;
  std::deque<v1::StreamEventsResponse> queue_ ABSL_GUARDED_BY(mu_);
  v1::StreamEventsResponse current_;  // the write in flight; touched by one writer at a time
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
};

class EventStream final : public EventStreamReactor {
 public:
  EventStream(grpc::CallbackServerContext* context, delivery::DeliveryEngine& engine,
              delivery::DeliveryEngine::Authorizer authorize)
      : context_(context), engine_(engine) {
    outbox_ = std::make_shared<Outbox>(this);
    id_ = engine_.Open(outbox_, std::move(authorize));
    if (id_ != 0) StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close, or a broken or cancelled call
      engine_.Close(id_, context_->IsCancelled());
      return;
    }
    engine_.Handle(id_, std::move(request_));
    request_.Clear();
    StartRead(&request_);
  }
  void OnWriteDone(bool ok) override { outbox_->WriteDone(ok); }
  void OnCancel() override {
    if (id_ != 0) engine_.Close(id_, /*cancelled=*/true);
  }
  void OnDone() override { delete this; }

 private:
  grpc::CallbackServerContext* const context_;  // owned by gRPC; outlives the reactor
  delivery::DeliveryEngine& engine_;
  std::shared_ptr<Outbox> outbox_;
  delivery::DeliveryEngine::StreamId id_ = 0;
  v1::StreamEventsRequest request_;
};

}  // namespace

EventStreamReactor* NewEventStream(grpc::CallbackServerContext* context,
                                   delivery::DeliveryEngine& engine,
                                   delivery::DeliveryEngine::Authorizer authorize) {
  return new EventStream(context, engine, std::move(authorize));
}

}  // namespace switchyard::api
