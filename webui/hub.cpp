#include "webui/hub.hpp"

#include <boost/asio/post.hpp>

namespace mxlens::webui {

std::uint64_t hub::generation(const std::string& test_id) {
  std::lock_guard lock(mutex_);
  auto it = tests_.find(test_id);
  return it == tests_.end() ? 0 : it->second.generation;
}

void hub::subscribe(const std::string& test_id,
                    const std::shared_ptr<boost::asio::steady_timer>& t) {
  std::lock_guard lock(mutex_);
  tests_[test_id].waiters.push_back(t);
}

void hub::unsubscribe(const std::string& test_id,
                      const std::shared_ptr<boost::asio::steady_timer>& t) {
  std::lock_guard lock(mutex_);
  auto it = tests_.find(test_id);
  if (it == tests_.end()) return;
  auto& w = it->second.waiters;
  std::erase_if(w, [&](const auto& weak) {
    auto p = weak.lock();
    return !p || p == t;
  });
  if (w.empty() && it->second.generation == 0) tests_.erase(it);
}

void hub::wake(std::vector<std::weak_ptr<boost::asio::steady_timer>>& waiters) {
  for (auto& weak : waiters) {
    if (auto t = weak.lock()) boost::asio::post(t->get_executor(), [t] { t->cancel(); });
  }
}

void hub::notify(const std::string& test_id) {
  std::lock_guard lock(mutex_);
  auto& e = tests_[test_id];
  ++e.generation;
  wake(e.waiters);
}

void hub::notify_all() {
  std::lock_guard lock(mutex_);
  for (auto& [id, e] : tests_) {
    ++e.generation;
    wake(e.waiters);
  }
}

}  // namespace mxlens::webui
