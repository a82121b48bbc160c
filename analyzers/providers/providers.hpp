// What Gmail, Yahoo and Outlook.com would answer at the end of DATA: for an ordinary sender and
// for a bulk sender, the verdict and the exact reply for the first of their rules the delivery
// breaks, in each provider's order, in its wire form (Gmail's multi-line layout included).
// The rules are data (`rules()`), so that a reply policy can answer with them later.
// Texts: docs/provider-replies.md.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mxlens::analyzers::providers {

// The facts the rules read, taken from the report.
struct facts {
  std::string client_ip;
  bool ipv6 = false;
  bool tls = false;
  bool fcrdns = false;
  bool spf_pass = false;
  std::string spf_domain;  // the MAIL FROM (or HELO) domain
  bool dkim_pass = false;
  bool dmarc_record = false;  // a usable record applies
  std::string dmarc_result;   // pass fail none temperror permerror
  std::string dmarc_policy;   // the applied p= or sp=
  std::string from_domain;
  int from_fields = 0;
  int from_addresses = 0;
  std::string duplicate_header;  // first singleton header seen twice, "" if none
  bool message_id_valid = false;
  bool gmail_spoof = false;
};

enum class scope { all_senders, bulk_only };

struct rule {
  std::string_view provider;  // gmail yahoo outlook
  std::string_view id;        // what it is about, e.g. "ptr"
  scope applies;
  bool (*broken)(const facts&);
  int code;
  std::string_view enhanced;
  // Paragraphs; "{ip}", "{domain}", "{from}", "{FROM}" (upper case), "{header}", "{results}"
  // are filled in. A paragraph starting with "http" is a URL on a line of its own (Gmail).
  std::vector<std::string_view> text;
};

// Every rule, each provider's in its order.
const std::vector<rule>& rules();

struct answer {
  std::string verdict;  // accept defer reject
  std::string reply;    // wire form, CRLF between lines, no final CRLF
  std::string rule;     // the rule's id; "" for accept
};

struct verdicts {
  answer ordinary;
  answer bulk;
};

// `session_id` ends Gmail's lines ("<id> - gsmtp"); `received` is the arrival in Unix seconds.
verdicts judge(std::string_view provider, const facts& f, const std::string& session_id,
               std::int64_t received);

// {"gmail": {...}, "yahoo": {...}, "outlook": {...}} as report.schema.json has it.
boost::json::object to_json(const facts& f, const std::string& session_id, std::int64_t received);

// Gmail's multi-line layout: "NNN-X.Y.Z " on every line but the last, about 80 columns, URLs on
// their own line after two spaces, the last line ending in "<id> - gsmtp".
std::string gmail_wire(int code, std::string_view enhanced,
                       const std::vector<std::string>& paragraphs, const std::string& session_id);

}  // namespace mxlens::analyzers::providers
