#include "tests/support/event_consumer.h"

namespace switchyard::testing {

void Consumer::Run() {
  v1::StreamEventsResponse response;
  while (stream_->Next(&response)) {
    std::vector<std::string> acks;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& r : response.received_events()) {
        const std::string& name = r.event().name();  // tenants/t/connections/c/events/n
        deliveries_.push_back({name.substr(0, name.rfind("/events/")), r.event().sequence(),
                               r.event().event_id(), r.delivery_attempt()});
        acks.push_back(r.ack_id());
      }
    }
    stream_->Ack(acks);
  }
  status_ = stream_->Finish();
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

}  // namespace switchyard::testing
