// The pipeline client: `mxlens new`, `wait` and `check` over the HTTP API of a running server.
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "analyzers/checks/checks.hpp"
#include "analyzers/providers/providers.hpp"
#include "app/cli.hpp"
#include "app/commands.hpp"
#include "core/json.hpp"
#include "core/text.hpp"

namespace mxlens::app {

namespace po = boost::program_options;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace {

// Exit status when a requirement does not hold.
constexpr int exit_failed = 1;

struct server_url {
  std::string host;
  std::string port = "80";
  std::string prefix;  // path before /api/v1, without the trailing slash
};

server_url parse_url(const std::string& url) {
  if (url.rfind("http://", 0) != 0)
    throw usage_error("--server must be an http:// URL (got '" + url + "')");
  server_url u;
  auto rest = url.substr(7);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  u.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos)
      throw usage_error("--server: bad IPv6 address in '" + url + "'");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      u.port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw usage_error("--server: no host in '" + url + "'");
  return u;
}

struct reply {
  int status = 0;
  std::string body;
};

reply call(const server_url& u, http::verb method, const std::string& target,
           const std::string& body = {}, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  stream.connect(resolver.resolve(u.host, u.port));
  http::request<http::string_body> req{method, u.prefix + target, 11};
  req.set(http::field::host, u.host);
  req.set(http::field::user_agent, "mxlens-client");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  http::read(stream, buffer, parser);
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return {static_cast<int>(parser.get().result_int()), parser.get().body()};
}

std::string error_text(const reply& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (!ec && v.is_object())
    if (auto* e = v.as_object().if_contains("error"); e && e->is_object())
      if (auto* m = e->as_object().if_contains("message"); m && m->is_string())
        return std::string(m->as_string());
  return "HTTP " + std::to_string(r.status);
}

// One sentence per session from the addresses the test expects (GET .../sessions), newest first:
// what a person reads when no delivery came. Empty when the test names none or the server is
// unreachable.
std::vector<std::string> session_sentences(const server_url& u, const std::string& id) {
  std::vector<std::string> out;
  try {
    auto r = call(u, http::verb::get, "/api/v1/tests/" + id + "/sessions", "");
    if (r.status != 200) return out;
    const auto v = json::parse(r.body);
    for (const auto& s : v.at("sessions").as_array()) {
      const auto& o = s.as_object();
      const std::string ip(o.at("client_ip").as_string());
      const std::string outcome(o.at("outcome").as_string());
      const auto& failed = o.at("failed_handshakes").as_array();
      std::string sentence =
          "a client from " + ip + " at " + std::string(o.at("started_at").as_string()) + ": ";
      if (!failed.empty()) {
        const auto& f = failed.back().as_object();
        const std::string kind(f.at("class").as_string());
        const std::string reason(f.at("reason").as_string());
        sentence += kind != "certificate_rejected"
                        ? "its TLS handshake failed (" + kind + ": " + reason + ")"
                    : reason.find("probably") != std::string::npos
                        ? reason
                        : "it refused this server's certificate (" + reason + ")";
      } else {
        sentence += "connected and ended with '" + outcome + "' without delivering to this test";
      }
      out.push_back(sentence);
    }
  } catch (const std::exception&) {
    out.clear();
  }
  return out;
}

po::options_description server_options(const char* title) {
  po::options_description o(title);
  o.add_options()("help,h", "show this help")(
      "server", po::value<std::string>()->default_value("http://127.0.0.1:8025"),
      "the mxlens server's URL");
  return o;
}

// Waits for the report of the delivery after `after`; prints progress on a terminal.
std::optional<json::object> wait_for_report(const server_url& u, const std::string& id,
                                            std::int64_t after, int timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  for (;;) {
    auto waited =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start)
            .count();
    auto left = timeout_s - waited;
    if (left <= 0) break;
    if (tty)
      std::cerr << "\rwaiting for a delivery to test " << id << " ... " << waited << " s "
                << std::flush;
    auto chunk = std::min<std::int64_t>(left, 5);
    auto r = call(u, http::verb::get,
                  "/api/v1/tests/" + id + "/wait?after=" + std::to_string(after) +
                      "&timeout=" + std::to_string(chunk),
                  {}, std::chrono::seconds(chunk + 30));
    if (r.status == 200) {
      if (tty) std::cerr << "\r\033[K";
      return json::parse(r.body).as_object();
    }
    if (r.status != 204) throw std::runtime_error("the server answered: " + error_text(r));
  }
  if (tty) std::cerr << "\r\033[K";
  return std::nullopt;
}

// --- requirements ---------------------------------------------------------------------------

struct requirement {
  std::string text;
  std::string lhs;
  std::string op;
  std::string rhs;
};

int version_rank(const std::string& v);

// Parsed and checked before anything is waited for, so that a typo is a usage error at once.
requirement parse_requirement(const std::string& text) {
  std::optional<requirement> found;
  for (const char* op : {">=", "<=", "!=", "=", ">", "<"}) {
    auto pos = text.find(op);
    if (pos == std::string::npos || pos == 0) continue;
    found = requirement{text, text.substr(0, pos), op, text.substr(pos + std::strlen(op))};
    break;
  }
  if (!found || found->rhs.empty())
    throw usage_error("--require '" + text +
                      "': expected NAME OP VALUE, e.g. tls.version>=TLSv1.2");
  auto& r = *found;
  const bool ordered = r.op != "=" && r.op != "!=";
  if (r.lhs == "tls.version") {
    if (version_rank(r.rhs) < 0)
      throw usage_error("--require '" + text + "': unknown TLS version '" + r.rhs +
                        "' (SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, none)");
  } else if (r.lhs == "score") {
    char* end = nullptr;
    std::strtod(r.rhs.c_str(), &end);
    if (!end || *end)
      throw usage_error("--require '" + text + "': '" + r.rhs + "' is not a number");
  } else if (ordered) {
    throw usage_error("--require '" + text + "': only = and != compare '" + r.lhs + "'");
  }
  if (r.lhs.rfind("check:", 0) == 0) {
    try {
      analyzers::checks::entry(r.lhs.substr(6));
    } catch (const std::out_of_range&) {
      throw usage_error("--require '" + text + "': no check '" + r.lhs.substr(6) +
                        "' (see CHECKS.md)");
    }
  }
  // A value the field can never hold is a mistake in the command line, not a failed check.
  auto each = [&](auto valid, const std::string& expected) {
    std::size_t start = 0;
    for (;;) {
      const auto bar = r.rhs.find('|', start);
      const auto value = r.rhs.substr(start, bar == std::string::npos ? bar : bar - start);
      if (!valid(value))
        throw usage_error("--require '" + text + "': '" + value + "' is not one of " + expected);
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
  };
  // A token table's reader (core/tokens.hpp) throws std::invalid_argument for an unknown token.
  auto token_of = [](auto read) {
    return [read](const std::string& v) {
      try {
        read(v);
        return true;
      } catch (const std::invalid_argument&) {
        return false;
      }
    };
  };
  if (r.lhs == "spf" || r.lhs == "dkim" || r.lhs == "dmarc") {
    each(token_of(core::auth_result_of),
         "pass, fail, softfail, neutral, none, temperror, permerror, policy");
  } else if (r.lhs == "tls.used") {
    each([](const std::string& v) { return v == "true" || v == "false"; }, "true, false");
  } else if (r.lhs.rfind("check:", 0) == 0) {
    each(token_of(analyzers::checks::status_of), "pass, warn, fail, info, skip, error");
  } else if (r.lhs.rfind("providers.", 0) == 0 && r.lhs.ends_with("verdict")) {
    each(token_of(analyzers::providers::verdict_of), "accept, defer, reject");
  }
  return r;
}

const json::value* path(const json::object& o, const std::string& dotted) {
  const json::value* cur = nullptr;
  const json::object* obj = &o;
  std::size_t pos = 0;
  while (pos <= dotted.size()) {
    auto end = dotted.find('.', pos);
    if (end == std::string::npos) end = dotted.size();
    if (!obj) return nullptr;
    cur = obj->if_contains(dotted.substr(pos, end - pos));
    if (!cur) return nullptr;
    obj = cur->is_object() ? &cur->as_object() : nullptr;
    pos = end + 1;
  }
  return cur;
}

int version_rank(const std::string& v) {
  static const char* order[] = {"none", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
  for (int i = 0; i < 6; ++i)
    if (v == order[i]) return i;
  return -1;
}

struct verdict {
  bool holds = false;
  std::string actual;  // as the report has it, with why it could not be evaluated, if it could not
  std::string fix;
  std::string reply;  // a provider's reply, for a failed providers.* requirement
};

// "providers.gmail.bulk_verdict" -> the reply that verdict comes with.
std::string provider_reply(const json::object& report, const std::string& lhs) {
  const auto dot = lhs.find('.', std::strlen("providers."));
  if (dot == std::string::npos) return {};
  const bool bulk = lhs.find("bulk", dot) != std::string::npos;
  const auto* reply = path(report, lhs.substr(0, dot) + (bulk ? ".bulk_reply" : ".reply"));
  return reply && reply->is_string() ? std::string(reply->as_string()) : std::string();
}

// Whether `value` is one of the requirement's "a|b|c" alternatives.
bool named_in(const requirement& r, const std::string& value) {
  std::size_t pos = 0;
  while (pos <= r.rhs.size()) {
    auto end = r.rhs.find('|', pos);
    if (end == std::string::npos) end = r.rhs.size();
    if (r.rhs.substr(pos, end - pos) == value) return true;
    pos = end + 1;
  }
  return false;
}

verdict evaluate(const requirement& r, const json::object& report) {
  verdict v;
  std::string actual;
  std::string fix_from;  // check id whose fix explains a failure
  // Why the requirement could not be evaluated: the score is unscored, the check an `error`, the
  // authentication result a `temperror`. Not evaluated is not passed: such a requirement holds
  // only when it names that status as one it accepts (check:dns.ptr=pass|error, spf=temperror).
  std::optional<std::string> unevaluated;
  if (r.lhs.rfind("check:", 0) == 0) {
    const auto id = r.lhs.substr(6);
    for (const auto& c : report.at("checks").as_array()) {
      const auto& o = c.as_object();
      if (o.at("id").as_string() == id) {
        actual = std::string(o.at("status").as_string());
        fix_from = id;
        if (actual == "error")
          unevaluated = o.at("summary").is_string() ? std::string(o.at("summary").as_string())
                                                    : "it could not be evaluated";
      }
    }
    if (actual.empty())
      throw usage_error("--require '" + r.text + "': no check '" + id + "' (see CHECKS.md)");
  } else if (r.lhs == "spf" || r.lhs == "dmarc") {
    actual = std::string(report.at("auth").at(r.lhs).at("result").as_string());
    fix_from = r.lhs + ".result";
    if (actual == "temperror") unevaluated = r.lhs + " could not be evaluated";
  } else if (r.lhs == "dkim") {
    actual = "none";
    for (const auto& s : report.at("auth").at("dkim").as_array()) {
      auto res = std::string(s.at("result").as_string());
      if (res == "pass") actual = "pass";
      else if (actual != "pass") actual = res;
    }
    fix_from = "dkim.valid";
    if (actual == "temperror") unevaluated = "a signature could not be verified";
  } else if (r.lhs == "score") {
    const auto& score = report.at("score").as_object();
    if (score.at("value").is_number()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", score.at("value").to_number<double>());
      actual = buf;
    } else {
      actual = "unscored";
      const auto* why = score.if_contains("unscored");
      unevaluated = why && why->is_string() ? std::string(why->as_string()) : "no value";
    }
  } else if (r.lhs == "tls.version") {
    const auto& tls = report.at("tls").as_object();
    actual = tls.at("used").as_bool() && tls.contains("version") && tls.at("version").is_string()
                 ? std::string(tls.at("version").as_string())
                 : "none";
    fix_from = actual == "none" ? "tls.starttls" : "tls.version";
  } else {
    auto* value = path(report, r.lhs);
    if (!value) throw usage_error("--require '" + r.text + "': the report has no '" + r.lhs + "'");
    actual = value->is_string() ? std::string(value->as_string()) : json::serialize(*value);
    if (r.lhs == "tls.used") fix_from = "tls.starttls";
  }
  v.actual = actual;

  auto compare = [&](int c) {
    if (r.op == "=") return c == 0;
    if (r.op == "!=") return c != 0;
    if (r.op == ">=") return c >= 0;
    if (r.op == "<=") return c <= 0;
    if (r.op == ">") return c > 0;
    return c < 0;
  };
  if (r.lhs == "tls.version") {
    v.holds = compare(version_rank(actual) - version_rank(r.rhs));
  } else if (unevaluated) {
    v.holds = r.op == "=" && named_in(r, actual);
    if (!v.holds) v.actual += ": " + *unevaluated;
  } else if (r.lhs == "score") {
    const double want = std::strtod(r.rhs.c_str(), nullptr);
    const double have = std::strtod(actual.c_str(), nullptr);
    v.holds = compare(have < want ? -1 : have > want ? 1 : 0);
  } else {
    const bool any = named_in(r, actual);  // "pass|warn": any of the alternatives
    v.holds = r.op == "=" ? any : !any;
  }
  if (!v.holds && r.lhs.rfind("providers.", 0) == 0) {
    v.reply = provider_reply(report, r.lhs);
    // The reply's lines as the provider sends them end in CRLF: shown, they end in a newline.
    for (auto at = v.reply.find("\r\n"); at != std::string::npos; at = v.reply.find("\r\n", at))
      v.reply.erase(at, 1);
  }
  if (!v.holds && !fix_from.empty()) {
    for (const auto& c : report.at("checks").as_array()) {
      const auto& o = c.as_object();
      if (o.at("id").as_string() == fix_from && o.at("fix").is_string())
        v.fix = std::string(o.at("fix").as_string());
    }
  }
  return v;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : core::printable(s)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
        else out += c;
    }
  }
  return out;
}

}  // namespace

int new_command(const std::vector<std::string>& args) {
  auto o = server_options("mxlens new options");
  o.add_options()("label", po::value<std::string>(), "a note kept with the test")(
      "bulk", po::bool_switch(), "judge its deliveries as a bulk sender's")(
      "expect-from", po::value<std::vector<std::string>>()->composing(),
      "a sending address or prefix (at most an IPv4 /24 or IPv6 /56), repeatable: its "
      "sessions, failed TLS handshakes included, are shown to the test")(
      "json", po::bool_switch(), "print the test as JSON instead of its address");
  try {
    auto vm = parse(args, o);
    if (vm.count("help")) {
      std::cout << "Usage: mxlens new [--server URL] [--label L] [--bulk] [--expect-from IP[/LEN]] "
                   "[--json]\n\n"
                   "Creates a test address on a running mxlens and prints it.\n\n"
                << o;
      return 0;
    }
    auto u = parse_url(vm["server"].as<std::string>());
    json::object body;
    if (vm.count("label")) body["label"] = vm["label"].as<std::string>();
    if (vm["bulk"].as<bool>()) body["bulk"] = true;
    if (vm.count("expect-from")) {
      json::array from;
      for (const auto& p : vm["expect-from"].as<std::vector<std::string>>()) from.emplace_back(p);
      body["expect_from"] = std::move(from);
    }
    auto r = call(u, http::verb::post, "/api/v1/tests", json::serialize(body));
    if (r.status != 201) {
      std::cerr << "mxlens new: " << core::terminal_safe(error_text(r)) << "\n";
      return exit_usage;
    }
    auto test = json::parse(r.body).as_object();
    if (vm["json"].as<bool>()) std::cout << r.body << "\n";
    else std::cout << std::string(test.at("address").as_string()) << "\n";
    return 0;
  } catch (const std::exception& e) {  // usage errors, time-outs and the server's refusals alike
    std::cerr << "mxlens new: " << core::terminal_safe(e.what()) << "\n";
    return exit_usage;
  }
}

int wait_command(const std::vector<std::string>& args) {
  auto o = server_options("mxlens wait options");
  o.add_options()("id", po::value<std::string>()->required(), "test id (or its address)")(
      "after", po::value<std::int64_t>()->default_value(0),
      "wait for a delivery numbered above this")("timeout", po::value<int>()->default_value(300),
                                                 "seconds to wait");
  try {
    auto vm = parse(args, o, {"id"});
    auto u = parse_url(vm["server"].as<std::string>());
    auto id = vm["id"].as<std::string>();
    id = id.substr(0, id.find('@'));
    auto report = wait_for_report(u, id, vm["after"].as<std::int64_t>(), vm["timeout"].as<int>());
    if (!report) {
      std::cerr << "mxlens wait: no delivery to test " << id << " within "
                << vm["timeout"].as<int>() << " s\n";
      return exit_usage;
    }
    std::cout << core::printable_json(*report) << "\n";
    return 0;
  } catch (const std::exception& e) {  // usage errors, time-outs and the server's refusals alike
    std::cerr << "mxlens wait: " << core::terminal_safe(e.what()) << "\n";
    return exit_usage;
  }
}

int check_command(const std::vector<std::string>& args) {
  auto o = server_options("mxlens check options");
  o.add_options()("id", po::value<std::string>()->required(), "test id (or its address)")(
      "require", po::value<std::vector<std::string>>()->composing(),
      "NAME OP VALUE, repeatable: tls.version>=TLSv1.2, tls.used=true, spf=pass, dkim=pass, "
      "dmarc=pass, "
      "check:<id>=pass|warn, score>=8, or any report field by its dotted path; what could not "
      "be evaluated (an unscored report, a check that is `error`, a `temperror`) fails unless "
      "the requirement names it (check:dns.ptr=pass|error)")("min-score", po::value<double>(),
                                                             "the same as --require score>=N")(
      "delivery", po::value<std::int64_t>()->default_value(1), "which delivery to judge")(
      "timeout", po::value<int>()->default_value(300), "seconds to wait for that delivery")(
      "junit", po::value<std::string>(), "also write the results as JUnit XML to this file");
  try {
    auto vm = parse(args, o, {"id"});
    std::vector<requirement> reqs;
    if (vm.count("require"))
      for (const auto& r : vm["require"].as<std::vector<std::string>>())
        reqs.push_back(parse_requirement(r));
    if (vm.count("min-score")) {
      std::ostringstream s;
      s << "score>=" << vm["min-score"].as<double>();
      reqs.push_back(parse_requirement(s.str()));
    }
    if (reqs.empty()) throw usage_error("give at least one --require or --min-score");
    auto u = parse_url(vm["server"].as<std::string>());
    auto id = vm["id"].as<std::string>();
    id = id.substr(0, id.find('@'));
    const auto n = vm["delivery"].as<std::int64_t>();
    if (n < 1) throw usage_error("--delivery must be 1 or more");
    // The JUnit file, whatever happens from here: a pipeline's report shows a time-out or a
    // server error as an <error> case rather than no file at all.
    auto write_junit = [&](int failures, int errors, const std::string& cases) {
      if (!vm.count("junit")) return;
      std::ofstream out(vm["junit"].as<std::string>());
      out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"mxlens "
          << xml_escape(id) << "\" tests=\"" << (errors ? 1 : reqs.size()) << "\" failures=\""
          << failures << "\" errors=\"" << errors << "\">\n"
          << cases << "  </testsuite>\n</testsuites>\n";
      if (!out) throw std::runtime_error("cannot write " + vm["junit"].as<std::string>());
    };
    auto error_case = [&](const std::string& what) {
      write_junit(0, 1,
                  "    <testcase classname=\"mxlens." + xml_escape(id) + "\" name=\"delivery " +
                      std::to_string(n) + "\">\n      <error message=\"" + xml_escape(what) +
                      "\"/>\n    </testcase>\n");
    };
    std::optional<json::object> report;
    try {
      report = wait_for_report(u, id, n - 1, vm["timeout"].as<int>());
    } catch (const std::exception& e) {
      error_case(e.what());
      throw;
    }
    if (!report) {
      std::string what = "no delivery " + std::to_string(n) + " to test " + id + " within " +
                         std::to_string(vm["timeout"].as<int>()) + " s";
      // What the expected senders did instead, when the test names them.
      std::string shown = what;
      for (const auto& line : session_sentences(u, id)) {
        what += "\n" + line;
        shown += "\n" + core::terminal_safe(line);
      }
      std::cerr << "mxlens check: " << shown << "\n";
      error_case(what);
      return exit_usage;
    }
    int failed = 0;
    std::ostringstream junit;
    for (const auto& r : reqs) {
      auto v = evaluate(r, *report);
      if (v.holds) {
        std::cout << "ok      " << r.text << "  (" << core::terminal_safe(v.actual) << ")\n";
        junit << "    <testcase classname=\"mxlens." << xml_escape(id) << "\" name=\""
              << xml_escape(r.text) << "\"/>\n";
      } else {
        ++failed;
        std::cout << "FAILED  " << r.text << "  (is " << core::terminal_safe(v.actual) << ")\n";
        if (!v.reply.empty()) {
          // A multi-line reply (RFC 5321 §4.2.1) keeps its lines, under the first; each line is
          // shown as a terminal may show it.
          std::cout << "        reply: ";
          std::size_t start = 0;
          for (;;) {
            auto nl = v.reply.find('\n', start);
            auto line = v.reply.substr(start, nl == std::string::npos ? nl : nl - start);
            if (line.ends_with('\r')) line.pop_back();
            std::cout << core::terminal_safe(line);
            if (nl == std::string::npos) break;
            std::cout << "\n               ";
            start = nl + 1;
          }
          std::cout << "\n";
        }
        if (!v.fix.empty()) std::cout << "        fix: " << core::terminal_safe(v.fix) << "\n";
        junit << "    <testcase classname=\"mxlens." << xml_escape(id) << "\" name=\""
              << xml_escape(r.text) << "\">\n      <failure message=\""
              << xml_escape(r.text + " is " + v.actual) << "\">"
              << xml_escape(v.reply.empty() ? v.fix : v.reply + (v.fix.empty() ? "" : "\n") + v.fix)
              << "</failure>\n    </testcase>\n";
      }
    }
    write_junit(failed, 0, junit.str());
    return failed == 0 ? 0 : exit_failed;
  } catch (const std::exception& e) {  // usage errors, time-outs and the server's refusals alike
    std::cerr << "mxlens check: " << core::terminal_safe(e.what()) << "\n";
    return exit_usage;
  }
}

}  // namespace mxlens::app
