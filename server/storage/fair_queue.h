#ifndef SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_
#define SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_

// Waiting writes grouped by fairness key: items of one key leave in the order
// they came, and keys take turns, one item each per round, so that one busy
// key cannot hold back the others. Consumers that run items concurrently use
// PopHolding and Resume so that one key has at most one item running. Not
// thread-safe: the owner guards it.

#include <cstddef>
#include <deque>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace switchyard::storage {

template <typename T>
class FairQueue {
 public:
  void Push(absl::string_view key, T item) {
    auto [it, added] = waiting_.try_emplace(key);
    if (it->second.empty() && !held_.contains(key)) turns_.emplace_back(key);
    it->second.push_back(std::move(item));
    ++size_;
  }

  bool empty() const { return size_ == 0; }
  // Whether Pop or PopHolding may be called: an item waits whose key is not
  // held.
  bool ready() const { return !turns_.empty(); }
  size_t size() const { return size_; }

  // Removes and returns the next item in turn order. Requires ready().
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

  // Like Pop, and the item's key gets no further turn until Resume(key).
  // Requires ready(). Returns the key and the item.
  std::pair<std::string, T> PopHolding() {
    std::string key = std::move(turns_.front());
    turns_.pop_front();
    auto it = waiting_.find(key);
    T item = std::move(it->second.front());
    it->second.pop_front();
    --size_;
    if (it->second.empty()) waiting_.erase(it);
    held_.insert(key);
    return {std::move(key), std::move(item)};
  }

  // Ends the hold PopHolding put on `key`: its next item, if any, waits for
  // its turn again.
  void Resume(const std::string& key) {
    held_.erase(key);
    auto it = waiting_.find(key);
    if (it != waiting_.end() && !it->second.empty()) turns_.push_back(key);
  }

 private:
  absl::flat_hash_map<std::string, std::deque<T>> waiting_;
  std::deque<std::string> turns_;  // keys with waiting items, in turn order
  absl::flat_hash_set<std::string> held_;
  size_t size_ = 0;
};

}  // namespace switchyard::storage

#endif  // SWITCHYARD_SERVER_STORAGE_FAIR_QUEUE_H_
