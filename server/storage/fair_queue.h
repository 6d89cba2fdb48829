#ifndef SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_
#define SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_

// Waiting writes grouped by fairness key: items of one key leave in the order
// they came, and keys take turns, one item each per round, so that one busy
// key cannot hold back the others. Not thread-safe: the owner guards it.

#include <cstddef>
#include <deque>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace switchyard::storage {

template <typename T>
class FairQueue {
 public:
  void Push(absl::string_view key, T item) {
    auto [it, added] = waiting_.try_emplace(key);
    if (it->second.empty()) turns_.emplace_back(key);
    it->second.push_back(std::move(item));
    ++size_;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  // Removes and returns the next item in turn order. The queue must not be
  // empty.
  T Pop() {
    std::string key = std::move(turns_.front());
    turns_.pop_front();
    auto it = waiting_.find(key);
    T item = std::move(it->second.front());
    it->second.pop_front();
    --size_;
    if (it->second.empty()) {
      waiting_.erase(it);
    } else {
      turns_.push_back(std::move(key));
    }
    return item;
  }

 private:
  absl::flat_hash_map<std::string, std::deque<T>> waiting_;
  std::deque<std::string> turns_;  // keys with waiting items, in turn order
  size_t size_ = 0;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_
