#include "storage/commit_queue.hpp"

#include <cstdio>

namespace mxlens::storage {

commit_queue::commit_queue(std::unique_ptr<store> s)
    : store_(std::move(s)), thread_([this] { loop(); }) {}

void commit_queue::drain() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] {
    return !busy_ && deliveries_.empty() && sessions_.empty() && tasks_.empty();
  });
}

commit_queue::~commit_queue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void commit_queue::submit(message_delivery message, completion done) {
  pending_delivery p{{}, std::move(done), {}, {}};
  p.messages.push_back(std::move(message));
  {
    std::lock_guard lock(mutex_);
    deliveries_.push_back(std::move(p));
  }
  wake_.notify_one();
}

void commit_queue::submit(std::vector<core::delivery> deliveries, completion done) {
  {
    std::lock_guard lock(mutex_);
    deliveries_.push_back({std::move(deliveries), std::move(done), {}, {}});
  }
  wake_.notify_one();
}

void commit_queue::submit(std::vector<analysis_update> analyses, completion done) {
  {
    std::lock_guard lock(mutex_);
    deliveries_.push_back({{}, std::move(done), std::move(analyses), {}});
  }
  wake_.notify_one();
}

void commit_queue::submit(core::session_record session) {
  {
    std::lock_guard lock(mutex_);
    sessions_.push_back(std::move(session));
  }
  wake_.notify_one();
}

void commit_queue::run(task t) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(t));
  }
  wake_.notify_one();
}

std::uint64_t commit_queue::commits() const {
  std::lock_guard lock(mutex_);
  return commits_;
}

commit_timing commit_queue::timing() const {
  std::lock_guard lock(mutex_);
  return timing_;
}

void commit_queue::loop() {
  for (;;) {
    std::vector<pending_delivery> work;
    std::vector<core::session_record> sessions;
    std::vector<task> tasks;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] {
        return stopping_ || !deliveries_.empty() || !sessions_.empty() || !tasks_.empty();
      });
      if (deliveries_.empty() && sessions_.empty() && tasks_.empty()) return;  // stopping
      // Group commit: a commit (its fsync and the pages it writes) costs about the same for one
      // delivery as for fifty. When little is waiting, other sessions are likely a moment from
      // submitting theirs, so the commit waits up to commit_gather for them to join it.
      if (!stopping_ && deliveries_.size() < commit_gather_count) {
        wake_.wait_for(lock, commit_gather,
                       [this] { return stopping_ || deliveries_.size() >= commit_gather_count; });
      }
      // Take whole submissions up to the per-commit bound; at least one always.
      std::size_t taken = 0, count = 0;
      while (taken < deliveries_.size() &&
             (taken == 0 || count + deliveries_[taken].rows() <= max_deliveries_per_commit)) {
        count += deliveries_[taken].rows();
        ++taken;
      }
      work.assign(std::make_move_iterator(deliveries_.begin()),
                  std::make_move_iterator(deliveries_.begin() + static_cast<long>(taken)));
      deliveries_.erase(deliveries_.begin(), deliveries_.begin() + static_cast<long>(taken));
      sessions.swap(sessions_);
      tasks.swap(tasks_);
      busy_ = true;
    }
    struct finished {
      commit_queue& q;
      ~finished() {
        {
          std::lock_guard lock(q.mutex_);
          q.busy_ = false;
        }
        q.idle_.notify_all();
      }
    } when_done{*this};

    for (auto& t : tasks) {
      try {
        t(*store_);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "storage: task failed: %s\n", e.what());
      }
    }
    if (work.empty() && sessions.empty()) continue;

    batch b;
    b.sessions = std::move(sessions);
    // Where each submission's deliveries and message stand in the batch.
    std::vector<std::size_t> counts, message_at;
    for (auto& p : work) {
      counts.push_back(p.deliveries.size());
      message_at.push_back(b.messages.size());
      for (auto& d : p.deliveries) b.deliveries.push_back(std::move(d));
      for (auto& a : p.analyses) b.analyses.push_back(std::move(a));
      for (auto& m : p.messages) b.messages.push_back(std::move(m));
    }
    std::string error;
    const auto started = std::chrono::steady_clock::now();
    try {
      store_->commit(b);
    } catch (const std::exception& e) {
      error = e.what();
      std::fprintf(stderr,
                   "storage: commit of %zu messages, %zu deliveries and %zu analyses failed: %s\n",
                   b.messages.size(), b.deliveries.size(), b.analyses.size(), e.what());
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    {
      std::lock_guard lock(mutex_);
      ++commits_;
      ++timing_.commits;
      timing_.seconds += took.count();
      for (std::size_t k = 0; k < commit_timing::bounds.size(); ++k)
        if (took.count() <= commit_timing::bounds[k]) ++timing_.at_most[k];
    }
    std::size_t i = 0;
    for (std::size_t w = 0; w < work.size(); ++w) {
      auto& p = work[w];
      outcome o;
      o.error = error;
      for (std::size_t k = 0; k < counts[w]; ++k, ++i)
        if (error.empty()) o.numbers.push_back(b.deliveries[i].number);
      if (error.empty() && !p.messages.empty()) o.numbers = b.messages[message_at[w]].numbers;
      p.done(std::move(o));
    }
  }
}

}  // namespace mxlens::storage
