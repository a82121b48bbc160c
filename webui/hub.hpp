// Wakes whoever waits for a test's next report (long polls, event streams). A waiter reads the
// test's generation, registers its timer, checks the store, and sleeps only if the generation did
// not move meanwhile; notify() moves it and cancels every registered timer on its own executor.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mxlens::webui {

class hub {
 public:
  std::uint64_t generation(const std::string& test_id);
  void subscribe(const std::string& test_id, const std::shared_ptr<boost::asio::steady_timer>& t);
  void unsubscribe(const std::string& test_id, const std::shared_ptr<boost::asio::steady_timer>& t);
  void notify(const std::string& test_id);
  // Wakes everyone (shutdown).
  void notify_all();

 private:
  struct entry {
    std::uint64_t generation = 0;
    std::vector<std::weak_ptr<boost::asio::steady_timer>> waiters;
  };
  static void wake(std::vector<std::weak_ptr<boost::asio::steady_timer>>& waiters);
  std::mutex mutex_;
  std::map<std::string, entry> tests_;
};

}  // namespace mxlens::webui
