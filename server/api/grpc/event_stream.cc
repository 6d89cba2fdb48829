#include "server/api/grpc/event_stream.h"

#include <grpcpp/server_context.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/api/grpc/status_mapping.h"
#include "server/common/status.h"

namespace switchyard::api {
namespace {

// The engine's side of one stream: queues messages and starts one write at a
// time; finishes the call once the queue is written. A client that leaves
// more than `max_unread_bytes` unread (it stopped reading, while its
// connection lives on) has its call cancelled, so that its events go to
// other streams instead of piling up here. Thread-safe.
class Outbox final : public delivery::StreamSink {
 public:
  Outbox(EventStreamReactor* reactor, grpc::CallbackServerContext* context,
         int64_t max_unread_bytes)
      : reactor_(reactor), context_(context), max_unread_bytes_(max_unread_bytes) {}

  void Send(v1::StreamEventsResponse response) override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      const int64_t size = static_cast<int64_t>(response.ByteSizeLong());
      if (writing_ && queued_bytes_ + size > max_unread_bytes_) {
        // The write in flight fails with the cancellation, and WriteDone
        // finishes the call.
        finishing_ = true;
        final_ = ToGrpcStatus(
            Error(absl::StatusCode::kResourceExhausted, "STREAM_NOT_READ",
                  absl::StrCat("the client left more than ", max_unread_bytes_,
                               " bytes of its stream unread; its events go to other streams")));
        queue_.clear();
        queued_bytes_ = 0;
        // Before the cancellation: the reactor then tells the engine that
        // the events were not seen, so they use no attempt.
        cut_.store(true, std::memory_order_release);
        context_->TryCancel();
        return;
      }
      queue_.push_back(std::move(response));
      queued_bytes_ += size;
      if (writing_) return;
      writing_ = true;
      TakeNext();
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
      if (!ok) {
        queue_.clear();
        queued_bytes_ = 0;
      }
      if (!queue_.empty()) {
        TakeNext();
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

  // Whether Send cancelled the call because its client left too much unread.
  bool cut() const { return cut_.load(std::memory_order_acquire); }

 private:
  // Moves the next queued message to the write in flight.
  void TakeNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= static_cast<int64_t>(current_.ByteSizeLong());
  }

  // Valid until Finish is called, which happens once, after the last write.
  EventStreamReactor* const reactor_;
  grpc::CallbackServerContext* const context_;  // like reactor_
  const int64_t max_unread_bytes_;
  absl::Mutex mu_;
  std::deque<v1::StreamEventsResponse> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of queue_'s messages
  v1::StreamEventsResponse current_;  // the write in flight; touched by one writer at a time
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cut_{false};
};

class EventStream final : public EventStreamReactor {
 public:
  EventStream(grpc::CallbackServerContext* context, delivery::DeliveryEngine& engine,
              delivery::DeliveryEngine::Authorizer authorize)
      : context_(context), engine_(engine) {
    outbox_ = std::make_shared<Outbox>(this, context, engine.max_unread_bytes());
    id_ = engine_.Open(outbox_, std::move(authorize));
    if (id_ != 0) StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close, or a broken or cancelled call
      // A call cut for its unread events is not the consumer failing on
      // them: they come back without using an attempt.
      engine_.Close(id_, context_->IsCancelled() && !outbox_->cut());
      return;
    }
    engine_.Handle(id_, std::move(request_));
    request_.Clear();
    StartRead(&request_);
  }
  void OnWriteDone(bool ok) override { outbox_->WriteDone(ok); }
  void OnCancel() override {
    if (id_ != 0) engine_.Close(id_, /*cancelled=*/!outbox_->cut());
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
