// Routing, in the shape of Beast's example servers: one function from a request to its response,
// over the api service, with no socket in sight, so that every endpoint and every error is
// unit-tested (tests/webui/route_test.cpp). The connection, its limits, and the writing of an
// event stream are http_server's.
//
// Endpoints (docs/DESIGN.md, "Interfaces"): the pages `/`, `/t/{id}`, `/t/{id}/d/{n}` and their
// files under `/static/`; `/healthz`; `/metrics`; and under `/api/v1/tests` the JSON API. Every
// error is a JSON body {"error": {"code", "message"}} with its status.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/array.hpp>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "storage/store.hpp"
#include "webui/api.hpp"

namespace mxlens::webui {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

// GET /api/v1/tests/{id}/events, accepted: the server streams the test's reports from `after` on.
struct event_stream {
  std::string test_id;
  std::int64_t after = 0;
};

// GET /api/v1/tests/{id}/deliveries/{n}/raw, found: `head` (its Content-Length is `size`) and
// then the message, written as it is read from the store, a part at a time.
struct raw_download {
  response head;
  std::string test_id;
  std::int64_t number = 0;
  std::uint64_t size = 0;
};

using routed = std::variant<response, event_stream, raw_download>;

// The answer to one request. Never throws: a failure of the service is a 500 with a JSON body.
// `req` must outlive the awaitable.
// `client` is the address the request came from, which per-client limits count.
boost::asio::awaitable<routed> route(api& service, const request& req, std::string client = {});

// Whether the request is a long poll (GET /api/v1/tests/{id}/wait), which the connection serves
// while it watches for the client leaving.
bool is_long_poll(const request& req);

// An error response, for what the connection refuses before routing (limits, bad HTTP).
response error_response(unsigned version, bool keep_alive, boost::beast::http::status status,
                        const std::string& code, const std::string& message);

// The headers every response carries: the server's name, nosniff, the pages' strict
// Content-Security-Policy, no referrer, no caching.
void secure_headers(boost::beast::http::response_header<>& res);

// Per-source aggregates of a test's reports: for each sending IP (in the order they first
// delivered), what it sent and how, from the totals the store keeps.
boost::json::array source_aggregates(const std::vector<storage::source_total>& totals);

}  // namespace mxlens::webui
