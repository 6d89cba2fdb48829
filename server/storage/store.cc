#include "server/storage/store.h"

#include <utility>

namespace switchyard::storage {
namespace {

class FanOutListener final : public ChangeListener {
 public:
  explicit FanOutListener(std::vector<ChangeListener*> listeners)
      : listeners_(std::move(listeners)) {}
  void ChangesAnnounced(const std::vector<ChangeNotice>& changes) override {
    for (ChangeListener* l : listeners_) l->ChangesAnnounced(changes);
  }

 private:
  const std::vector<ChangeListener*> listeners_;
};

}  // namespace

std::unique_ptr<ChangeListener> FanOut(std::vector<ChangeListener*> listeners) {
  return std::make_unique<FanOutListener>(std::move(listeners));
}

}  // namespace switchyard::storage
