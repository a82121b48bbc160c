// mxlens: a test mail receiver that records and grades what a receiving MTA sees.
// main only dispatches to the subcommands; the wiring lives in serve.cpp.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "app/cli.hpp"
#include "app/commands.hpp"

namespace {

constexpr const char* usage_text =
    "Usage: mxlens COMMAND [OPTIONS]\n"
    "\n"
    "A test mail receiver: mail a test address from the system you want to check, and mxlens\n"
    "records what a receiving MTA sees (STARTTLS, TLS version and cipher, the client's offer,\n"
    "EHLO, the SMTP dialogue, the message) and who sent it (reverse DNS, SPF, DKIM, DMARC).\n"
    "\n"
    "Commands:\n"
    "  serve                 run the SMTP receiver and the web pages and API\n"
    "  tests new             create a test address and print it\n"
    "  tests show ID         print a test and its deliveries as JSON\n"
    "  tests raw ID N        print delivery N of a test as received\n"
    "  sessions              print recent SMTP sessions as JSON (failed handshakes too)\n"
    "  analyze FILE.eml      run the analyzers (rDNS, SPF, DKIM, DMARC) on a saved message\n"
    "\n"
    "Pipeline client (talks to a running server's HTTP API, --server URL):\n"
    "  new                   create a test address and print it\n"
    "  wait ID               wait for a delivery and print its report\n"
    "  check ID --require EXPR ...   exit 0 when every requirement holds, 1 when one fails\n"
    "\n"
    "Run 'mxlens COMMAND --help' for the options of a command.\n"
    "Every option can also be set as MXLENS_<OPTION> in the environment, e.g.\n"
    "MXLENS_SMTP_LISTEN=0.0.0.0:25; the command line wins.\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(usage_text, stderr);
    return mxlens::app::exit_usage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(usage_text, stdout);
    return 0;
  }
  if (command == "--version") {
    std::puts("mxlens " MXLENS_VERSION);
    return 0;
  }
  if (command == "serve") return mxlens::app::serve_command(args);
  if (command == "tests") return mxlens::app::tests_command(args);
  if (command == "sessions") return mxlens::app::sessions_command(args);
  if (command == "analyze") return mxlens::app::analyze_command(args);
  if (command == "new") return mxlens::app::new_command(args);
  if (command == "wait") return mxlens::app::wait_command(args);
  if (command == "check") return mxlens::app::check_command(args);
  if (command == "__worker") return mxlens::app::worker_command(args);
  std::fprintf(stderr, "mxlens: unknown command '%s' (see 'mxlens --help')\n", command.c_str());
  return mxlens::app::exit_usage;
}
