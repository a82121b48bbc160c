// The one bridge between coroutines on I/O threads and work done on other threads (the blocking
// pool, the store's writer thread), and the three ways the tree uses it: run_blocking (a pool),
// on_writer (the writer thread, between commits) and committed (a commit of the writer's).
#pragma once

#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cassert>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

#include "storage/commit_queue.hpp"

namespace mxlens::storage {

// Hands work to another thread and resumes the caller on its own executor with what that thread
// gives back: `start(done)` passes the work on, and the other thread calls `done(value)` once.
// The resumption is posted, never run inline on the other thread, to an executor that counts
// as outstanding work: the caller's io_context does not run out of work while an answer is on
// its way.
//
// g++ 12 frees a capturing lambda twice when it is a temporary in the same full-expression as a
// co_await (see docs/libraries.md §5): callers pass a named lambda, and the bridge keeps its own
// initiation in a named local too.
template <class T, class Start>
boost::asio::awaitable<T> resumed_with(Start start) {
  namespace asio = boost::asio;
  auto initiation = [](auto handler, Start s) {
    // The handler and its called-once flag in one allocation: `done` is copyable, because
    // commit_queue keeps its callbacks in std::function, and is called once only.
    using handler_type = decltype(handler);
    struct state {
      explicit state(handler_type h) : resume(std::move(h)) {}
      handler_type resume;
      std::atomic<bool> called{false};
    };
    auto shared = std::make_shared<state>(std::move(handler));
    auto ex = asio::prefer(asio::get_associated_executor(shared->resume),
                           asio::execution::outstanding_work.tracked);
    auto done = [shared, ex](T value) {
      [[maybe_unused]] const bool again = shared->called.exchange(true);
      assert(!again && "a bridge's completion was called twice");
      asio::post(ex, [shared, value = std::move(value)]() mutable {
        std::move(shared->resume)(std::move(value));
      });
    };
    s(std::move(done));
  };
  T value = co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      initiation, asio::use_awaitable, std::move(start));
  co_return value;
}

// What a function on another thread returned, or the exception it threw, carried back.
template <class R>
struct attempt {
  std::exception_ptr error;
  R value{};
  R get() && {
    if (error) std::rethrow_exception(error);
    return std::move(value);
  }
};

template <class F, class... Args>
auto attempt_of(F& fn, Args&... args) {
  attempt<std::invoke_result_t<F&, Args&...>> a;
  try {
    a.value = fn(args...);
  } catch (...) {
    a.error = std::current_exception();
  }
  return a;
}

// Runs fn() on the pool; the caller gets its result, or the exception it threw.
template <class F>
auto run_blocking(boost::asio::thread_pool& pool, F fn)
    -> boost::asio::awaitable<std::invoke_result_t<F&>> {
  using result = attempt<std::invoke_result_t<F&>>;
  auto start = [&pool, fn = std::move(fn)](auto done) mutable {
    boost::asio::post(
        pool, [fn = std::move(fn), done = std::move(done)]() mutable { done(attempt_of(fn)); });
  };
  auto outcome = co_await resumed_with<result>(std::move(start));
  co_return std::move(outcome).get();
}

// Runs fn(store) on the store's writer thread, between commits.
template <class F>
auto on_writer(commit_queue& queue, F fn)
    -> boost::asio::awaitable<std::invoke_result_t<F&, store&>> {
  static_assert(std::is_copy_constructible_v<F>,
                "commit_queue keeps its tasks in std::function: the work must be copyable");
  using result = attempt<std::invoke_result_t<F&, store&>>;
  auto start = [&queue, fn = std::move(fn)](auto done) mutable {
    queue.run([fn = std::move(fn), done = std::move(done)](store& s) mutable {
      done(attempt_of(fn, s));
    });
  };
  auto outcome = co_await resumed_with<result>(std::move(start));
  co_return std::move(outcome).get();
}

// Submits work (deliveries, or analyses of stored ones) and resumes once it is committed.
template <class Work>
boost::asio::awaitable<commit_queue::outcome> committed(commit_queue& queue, Work work) {
  auto start = [&queue, work = std::move(work)](auto done) mutable {
    queue.submit(std::move(work), std::move(done));
  };
  auto outcome = co_await resumed_with<commit_queue::outcome>(std::move(start));
  co_return outcome;
}

}  // namespace mxlens::storage
