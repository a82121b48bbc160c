// Bridges from coroutines on I/O threads to blocking work (the store, C libraries) and back.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <type_traits>

namespace mxlens::storage {

// Runs fn() on the pool and resumes the caller on its own executor with the result (or the
// exception fn threw). The resumption is posted, never run inline on the pool thread.
//
// g++ 12 frees a capturing lambda twice when it is a temporary in the same full-expression as a
// co_await (see docs/libraries.md): callers pass a named lambda, and this function keeps
// its own initiation in a named local too.
template <class F>
auto run_blocking(boost::asio::thread_pool& pool, F fn)
    -> boost::asio::awaitable<std::invoke_result_t<F>> {
  using result = std::invoke_result_t<F>;
  namespace asio = boost::asio;
  auto initiation = [&pool](auto handler, F work) {
    asio::post(pool, [work = std::move(work), handler = std::move(handler)]() mutable {
      std::exception_ptr error;
      result value{};
      try {
        value = work();
      } catch (...) {
        error = std::current_exception();
      }
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), error, value = std::move(value)]() mutable {
        std::move(handler)(error, std::move(value));
      });
    });
  };
  auto value = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                             void(std::exception_ptr, result)>(
      initiation, asio::use_awaitable, std::move(fn));
  co_return value;
}

}  // namespace mxlens::storage
