// What Gmail, Yahoo and Outlook.com would answer at the end of DATA: for an ordinary sender and
// for a bulk sender, the verdict and the exact reply for the first of their rules the delivery
// breaks, in each provider's order, in its wire form (Gmail's multi-line layout included).
// The rules are data (`rules()`), so that a reply policy can answer with them later.
// Texts: docs/provider-replies.md.
#pragma once

#include <boost/json/conversion.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

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
  core::auth_result dmarc_result = core::auth_result::none;
  std::string dmarc_policy;  // the applied p= or sp=
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

// What a provider does with the message, spelled as in the report.
enum class verdict { accept, defer, reject };
std::string_view to_string(verdict v);
verdict verdict_of(std::string_view token);  // throws std::invalid_argument

struct answer {
  providers::verdict verdict = verdict::accept;
  std::string reply;  // wire form, CRLF between lines, no final CRLF
  std::string rule;   // the rule's id; "" for accept

  bool operator==(const answer&) const = default;
};

struct verdicts {
  answer ordinary;
  answer bulk;

  bool operator==(const verdicts&) const = default;
};

// The three providers' verdicts: the report's `providers` object.
struct judgement {
  verdicts gmail;
  verdicts yahoo;
  verdicts outlook;

  bool operator==(const judgement&) const = default;
};

// `session_id` ends Gmail's lines ("<id> - gsmtp"); `received` is the arrival in Unix seconds.
verdicts judge(std::string_view provider, const facts& f, const std::string& session_id,
               std::int64_t received);

judgement judge_all(const facts& f, const std::string& session_id, std::int64_t received);

// One provider's object of the report ({verdict, reply, rule, bulk_verdict, bulk_reply,
// bulk_rule}) and the whole {"gmail", "yahoo", "outlook"} object, with their inverses.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const verdicts& x);
verdicts tag_invoke(boost::json::value_to_tag<verdicts>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const judgement& j);
judgement tag_invoke(boost::json::value_to_tag<judgement>, const boost::json::value& v);

// Gmail's multi-line layout: "NNN-X.Y.Z " on every line but the last, about 80 columns, URLs on
// their own line after two spaces, the last line ending in "<id> - gsmtp".
std::string gmail_wire(int code, std::string_view enhanced,
                       const std::vector<std::string>& paragraphs, const std::string& session_id);

}  // namespace mxlens::analyzers::providers
