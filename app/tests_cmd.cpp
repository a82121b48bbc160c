// `mxlens tests …` and `mxlens sessions`: the store read and written from the command line,
// for use before the HTTP API exists and for scripts on the receiving host.
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>

#include "app/cli.hpp"
#include "app/commands.hpp"
#include "app/report.hpp"
#include "core/json.hpp"
#include "core/prefix.hpp"
#include "core/test_id.hpp"
#include "core/text.hpp"
#include "storage/sqlite_store.hpp"

namespace mxlens::app {

namespace po = boost::program_options;
namespace json = boost::json;

namespace {

constexpr const char* tests_usage =
    "Usage: mxlens tests new  [--data-dir DIR] [--domain DOMAIN] [--label TEXT] [--json]\n"
    "       mxlens tests show ID [--data-dir DIR]\n"
    "       mxlens tests raw ID N [--data-dir DIR]\n";

std::filesystem::path database(const po::variables_map& vm) {
  std::filesystem::path dir = vm["data-dir"].as<std::string>();
  auto db = dir / database_file;
  if (!std::filesystem::exists(db))
    throw usage_error("no mxlens database in " + dir.string() + " (run 'mxlens serve --data-dir " +
                      dir.string() + "' once, or pass --data-dir)");
  return db;
}

po::options_description common(const char* title) {
  po::options_description o(title);
  o.add_options()("help,h", "show this help")(
      "data-dir", po::value<std::string>()->default_value(default_data_dir),
      "the data directory of 'mxlens serve'");
  return o;
}

int tests_new(const std::vector<std::string>& args) {
  auto o = common("mxlens tests new options");
  o.add_options()("domain", po::value<std::string>(),
                  "domain of the address (default: the one 'mxlens serve' last ran with)")(
      "label", po::value<std::string>()->default_value(""), "a note kept with the test")(
      "bulk", po::bool_switch(), "judge its deliveries as a bulk sender's (unsubscribe required)")(
      "expect-from", po::value<std::vector<std::string>>()->composing(),
      "a sending address or prefix (at most an IPv4 /24 or IPv6 /56), repeatable: its "
      "sessions, failed TLS handshakes included, are shown to the test")(
      "json", po::bool_switch(), "print the test as JSON instead of its address");
  auto vm = parse(args, o);
  if (vm.count("help")) {
    std::cout << "Usage: mxlens tests new [OPTIONS]\n\nCreates a test address and prints it.\n\n"
              << o;
    return 0;
  }
  std::filesystem::path dir = vm["data-dir"].as<std::string>();
  std::filesystem::create_directories(dir);
  storage::sqlite_store store(dir / database_file);
  std::string domain;
  if (vm.count("domain")) {
    domain = core::lowercase(vm["domain"].as<std::string>());
  } else if (auto d = store.meta("domain")) {
    domain = *d;
  } else {
    domain = core::lowercase(system_hostname());
  }
  int days = default_retention_days;
  if (auto r = store.meta("retention_days")) days = std::max(1, std::atoi(r->c_str()));
  core::test_info t;
  t.id = core::new_test_id();
  t.address = t.id + "@" + domain;
  t.created_at = core::now_ms();
  t.expires_at = t.created_at + static_cast<std::int64_t>(days) * 86'400'000;
  t.label = vm["label"].as<std::string>();
  t.bulk = vm["bulk"].as<bool>();
  if (vm.count("expect-from")) {
    const auto& claims = vm["expect-from"].as<std::vector<std::string>>();
    if (claims.size() > core::most_claims)
      throw usage_error("--expect-from: at most " + std::to_string(core::most_claims) +
                        " addresses or prefixes");
    for (const auto& c : claims) {
      std::string problem;
      auto p = core::parse_prefix(c, problem);
      if (!p) throw usage_error("--expect-from: " + problem);
      t.expect_from.push_back(p->text());
    }
  }
  if (!store.create_test(t)) throw std::runtime_error("test id collision, try again");
  if (vm["json"].as<bool>()) {
    std::cout << core::printable_json(core::to_json(t)) << "\n";
  } else {
    std::cout << t.address << "\n";
  }
  return 0;
}

int tests_show(const std::vector<std::string>& args) {
  auto o = common("mxlens tests show options");
  o.add_options()("id", po::value<std::string>()->required(), "test id");
  auto vm = parse(args, o, {"id"});
  storage::sqlite_store store(database(vm));
  auto id = core::lowercase(vm["id"].as<std::string>());
  auto test = store.find_test(id);
  if (!test) {
    std::cerr << "mxlens tests show: no test '" << id << "'\n";
    return 1;
  }
  json::object out = core::to_json(*test).as_object();
  json::array deliveries;
  // Their facts and reports, without their raw bytes, a page at a time.
  constexpr std::size_t page_size = 1000;
  for (std::int64_t after = 0;;) {
    auto page = store.delivery_records(id, after, page_size);
    for (const auto& r : page) deliveries.push_back(delivery_report(r.facts_json, r.analysis_json));
    if (page.size() < page_size) break;
    after = page.back().number;
  }
  out["deliveries"] = std::move(deliveries);
  std::cout << core::printable_json(out) << "\n";
  return 0;
}

int tests_raw(const std::vector<std::string>& args) {
  auto o = common("mxlens tests raw options");
  o.add_options()("id", po::value<std::string>()->required(), "test id")(
      "n", po::value<std::int64_t>()->required(), "delivery number");
  auto vm = parse(args, o, {"id", "n"});
  storage::sqlite_store store(database(vm));
  auto id = core::lowercase(vm["id"].as<std::string>());
  const auto n = vm["n"].as<std::int64_t>();
  auto size = store.raw_size(id, n);
  if (!size) {
    std::cerr << "mxlens tests raw: no delivery " << n << " in test '" << id << "'\n";
    return 1;
  }
  // A part at a time, as the server's download does: a message can be 256 MiB.
  constexpr std::size_t part_size = std::size_t{1} << 20;
  for (std::uint64_t at = 0; at < *size;) {
    auto part = store.raw_part(id, n, at, part_size);
    if (!part || part->empty()) {
      std::cerr << "mxlens tests raw: delivery " << n << " of test '" << id
                << "' went while it was read\n";
      return 1;
    }
    std::cout.write(part->data(), static_cast<std::streamsize>(part->size()));
    at += part->size();
  }
  return std::cout.flush() ? 0 : 1;
}

}  // namespace

int tests_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << tests_usage;
    return args.empty() ? exit_usage : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (args[0] == "new") return tests_new(rest);
    if (args[0] == "show") return tests_show(rest);
    if (args[0] == "raw") return tests_raw(rest);
    std::cerr << "mxlens tests: unknown subcommand '" << args[0] << "'\n" << tests_usage;
    return exit_usage;
  } catch (const usage_error& e) {
    std::cerr << "mxlens tests " << args[0] << ": " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "mxlens tests " << args[0] << ": " << e.what() << "\n";
    return 1;
  }
}

int sessions_command(const std::vector<std::string>& args) {
  auto o = common("mxlens sessions options");
  o.add_options()("client-ip", po::value<std::string>(), "only sessions from this client IP")(
      "limit", po::value<std::size_t>()->default_value(100), "newest sessions to print");
  try {
    auto vm = parse(args, o);
    if (vm.count("help")) {
      std::cout << "Usage: mxlens sessions [OPTIONS]\n\nPrints recent SMTP sessions, newest "
                   "first, as a JSON array (failed TLS handshakes included).\n\n"
                << o;
      return 0;
    }
    storage::sqlite_store store(database(vm));
    std::optional<std::string> ip;
    if (vm.count("client-ip")) ip = vm["client-ip"].as<std::string>();
    json::array out;
    for (const auto& s : store.sessions(vm["limit"].as<std::size_t>(), ip))
      out.push_back(core::parse_stored(s));
    std::cout << core::printable_json(out) << "\n";
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "mxlens sessions: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "mxlens sessions: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mxlens::app
