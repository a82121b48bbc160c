#include "analyzers/providers/providers.hpp"

#include <boost/json.hpp>
#include <cctype>
#include <stdexcept>

#include "core/json.hpp"
#include "core/tokens.hpp"

namespace mxlens::analyzers::providers {

namespace json = boost::json;

namespace {

bool unauthenticated(const facts& f) { return !f.spf_pass && !f.dkim_pass; }
bool no_fcrdns(const facts& f) { return !f.fcrdns; }
bool ipv6_guidelines(const facts& f) { return f.ipv6 && (!f.fcrdns || unauthenticated(f)); }
bool no_from(const facts& f) {
  return f.from_fields == 0 || (f.from_fields == 1 && f.from_addresses == 0);
}
bool several_from_fields(const facts& f) { return f.from_fields > 1; }
bool several_from_addresses(const facts& f) { return f.from_fields == 1 && f.from_addresses > 1; }
bool duplicate_headers(const facts& f) { return !f.duplicate_header.empty(); }
bool bad_message_id(const facts& f) { return !f.message_id_valid; }
bool gmail_spoof(const facts& f) { return f.gmail_spoof; }
bool dmarc_reject(const facts& f) {
  return f.dmarc_result == core::auth_result::fail && f.dmarc_policy == "reject";
}
bool no_tls(const facts& f) { return !f.tls; }
bool no_spf(const facts& f) { return !f.spf_pass; }
bool no_dkim(const facts& f) { return !f.dkim_pass; }
bool no_dmarc_record(const facts& f) { return !f.dmarc_record; }
bool not_aligned(const facts& f) {
  return f.dmarc_record && f.dmarc_result == core::auth_result::fail;
}
bool rfc5322(const facts& f) {
  return no_from(f) || several_from_fields(f) || several_from_addresses(f);
}
bool not_spf_and_dkim(const facts& f) { return !(f.spf_pass && f.dkim_pass); }
bool no_dmarc_pass(const facts& f) {
  return !f.dmarc_record || f.dmarc_result != core::auth_result::pass;
}
bool outlook_high_volume(const facts& f) {
  return !(f.spf_pass && f.dkim_pass && f.dmarc_record &&
           f.dmarc_result == core::auth_result::pass);
}

constexpr std::string_view gmail_rfc5322_url =
    "https://support.google.com/mail/?p=RfcMessageNonCompliant";
constexpr std::string_view gmail_auth_url =
    "https://support.google.com/mail/answer/81126#authentication";

std::string fill(std::string_view text, const facts& f) {
  std::string out(text);
  auto upper = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  auto pass = [](bool b) { return std::string(b ? "Pass" : "Fail"); };
  const std::string results = "Spf= " + pass(f.spf_pass) + " , Dkim= " + pass(f.dkim_pass) +
                              " , DMARC= " + pass(f.dmarc_result == core::auth_result::pass);
  const std::pair<std::string_view, std::string> vars[] = {{"{ip}", f.client_ip},
                                                           {"{domain}", f.spf_domain},
                                                           {"{from}", f.from_domain},
                                                           {"{FROM}", upper(f.from_domain)},
                                                           {"{header}", f.duplicate_header},
                                                           {"{results}", results}};
  for (const auto& [name, value] : vars) {
    std::size_t pos = 0;
    while ((pos = out.find(name, pos)) != std::string::npos) {
      out.replace(pos, name.size(), value);
      pos += value.size();
    }
  }
  return out;
}

verdict verdict_of_code(int code) {
  return code >= 500 ? verdict::reject : code >= 400 ? verdict::defer : verdict::accept;
}

std::string accept_reply(std::string_view provider, const std::string& session_id,
                         std::int64_t received) {
  if (provider == "gmail")
    return "250 2.0.0 OK  " + std::to_string(received) + " " + session_id + " - gsmtp";
  if (provider == "yahoo") return "250 ok dirdel";
  return "250 2.6.0 <" + session_id + "@outlook.com> [InternalId=" + std::to_string(received) +
         "] Queued mail for delivery";
}

}  // namespace

const std::vector<rule>& rules() {
  using enum scope;
  // A table: one rule per entry, the reply lines as the provider sends them.
  // Reply texts are long literals split over lines on purpose, which the missing-comma check
  // cannot tell from a forgotten comma.
  // clang-format off
  // NOLINTBEGIN(bugprone-suspicious-missing-comma)
  static const std::vector<rule> table{
      // Gmail: the sender guidelines for all senders, then those for bulk senders.
      {"gmail", "ipv6", all_senders, ipv6_guidelines, 550, "5.7.1",
       {"This message does not meet IPv6 sending guidelines regarding PTR records and authentication.",
        "For more information, go to", "https://support.google.com/mail/?p=IPv6AuthError"}},
      {"gmail", "ptr", all_senders, no_fcrdns, 550, "5.7.25",
       {"[{ip}] The IP address sending this message does not have a PTR record setup, or the "
        "corresponding forward DNS entry does not point to the sending IP. As a policy, Gmail does "
        "not accept messages from IPs with missing PTR records. For more information, go to",
        "https://support.google.com/mail/answer/81126#ip-practices"}},
      {"gmail", "from_missing", all_senders, no_from, 550, "5.7.1",
       {"Messages missing a valid address in the From: header, or having no From: header, are not "
        "accepted. For more information, go to",
        gmail_rfc5322_url}},
      {"gmail", "from_fields", all_senders, several_from_fields, 550, "5.7.1",
       {"This message is not RFC 5322 compliant because it has multiple From: headers. To reduce the "
        "amount of spam sent to Gmail, this message has been blocked. For more information, go to",
        gmail_rfc5322_url}},
      {"gmail", "from_addresses", all_senders, several_from_addresses, 550, "5.7.1",
       {"Messages with multiple addresses in the From: header are not accepted. For more information, "
        "go to",
        gmail_rfc5322_url}},
      {"gmail", "duplicate_headers", all_senders, duplicate_headers, 550, "5.7.1",
       {"This message is not RFC 5322 compliant. There are multiple {header} headers. To reduce the "
        "amount of spam sent to Gmail, this message has been blocked. For more information, go to",
        gmail_rfc5322_url}},
      {"gmail", "message_id", all_senders, bad_message_id, 550, "5.7.1",
       {"Messages missing a valid Message-ID: header are not accepted. For more information, go to",
        gmail_rfc5322_url}},
      {"gmail", "unauthenticated", all_senders, unauthenticated, 550, "5.7.26",
       {"This email has been blocked because the sender is unauthenticated. Gmail requires all "
        "senders to authenticate with either SPF or DKIM.",
        "", " Authentication results:", " DKIM = did not pass",
        " SPF [{domain}] with ip: [{ip}] = did not pass", "",
        " For instructions on setting up authentication, go to", gmail_auth_url}},
      {"gmail", "gmail_from", all_senders, gmail_spoof, 550, "5.7.26",
       {"Unauthenticated email from {from} is not accepted due to domain's DMARC policy. Please "
        "contact the administrator of {from} domain if this was a legitimate mail. To learn about "
        "the DMARC initiative, go to",
        "https://support.google.com/mail/?p=DmarcRejection"}},
      {"gmail", "dmarc_policy", all_senders, dmarc_reject, 550, "5.7.26",
       {"Unauthenticated email from {from} is not accepted due to domain's DMARC policy. Please "
        "contact the administrator of {from} domain if this was a legitimate mail. To learn about "
        "the DMARC initiative, go to",
        "https://support.google.com/mail/?p=DmarcRejection"}},
      {"gmail", "tls", bulk_only, no_tls, 421, "4.7.29",
       {"Your email has been rate limited because this message wasn't sent over a TLS connection. "
        "Gmail requires all bulk email senders to use TLS/SSL for SMTP connections. To set up TLS "
        "for email, visit",
        "https://support.google.com/a?p=tls-ssl",
        "To learn more about Gmail requirements for bulk senders, visit",
        "https://support.google.com/a?p=sender-guidelines."}},
      {"gmail", "spf", bulk_only, no_spf, 421, "4.7.27",
       {"Your email has been rate limited because SPF authentication didn't pass for this message. "
        "Gmail requires all bulk email senders to authenticate their email with SPF.",
        "", " Authentication results:", " SPF {domain} with IP address: {ip} = Did not pass", "",
        " For instructions on setting up authentication, go to", gmail_auth_url}},
      {"gmail", "dkim", bulk_only, no_dkim, 421, "4.7.30",
       {"Your email has been rate limited because DKIM authentication didn't pass for this message. "
        "Gmail requires all email bulk senders to authenticate their email with DKIM.",
        "", " Authentication results:", " DKIM = Did not pass", "",
        " For instructions on setting up authentication, go to", gmail_auth_url}},
      {"gmail", "dmarc_record", bulk_only, no_dmarc_record, 421, "4.7.40",
       {"Your email has been rate limited because the sending domain doesn't have a DMARC record, or "
        "the DMARC record doesn't specify a DMARC policy. Gmail requires all bulk email senders to "
        "add a DMARC record to their sending domain. For more information, go to",
        "https://support.google.com/mail/answer/81126#authentication"}},
      {"gmail", "alignment", bulk_only, not_aligned, 421, "4.7.32",
       {"Your email has been rate limited because the From: header (RFC5322) in this message isn't "
        "aligned with either the authenticated SPF or DKIM organizational domain. For more "
        "information, go to",
        "https://support.google.com/mail/answer/81126#authentication"}},

      // Yahoo: authentication for all, RFC 5322, then SPF+DKIM and DMARC for bulk senders.
      {"yahoo", "unauthenticated", all_senders, unauthenticated, 550, "5.7.9",
       {"This mail has been blocked because the sender is unauthenticated. Yahoo requires all "
        "senders to authenticate with either SPF or DKIM."}},
      {"yahoo", "dmarc_policy", all_senders, dmarc_reject, 554, "5.7.9",
       {"Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes"}},
      {"yahoo", "rfc5322", all_senders, rfc5322, 554, "",
       {"Message not allowed - [PH01] Email not accepted for policy reasons. Please visit "
        "https://postmaster.yahooinc.com/error-codes"}},
      {"yahoo", "spf_and_dkim", bulk_only, not_spf_and_dkim, 554, "5.7.9",
       {"Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes"}},
      {"yahoo", "dmarc", bulk_only, no_dmarc_pass, 554, "5.7.9",
       {"Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes"}},

      // Outlook.com: DMARC reject for all, the high-volume sender rule for bulk senders.
      {"outlook", "dmarc_policy", all_senders, dmarc_reject, 550, "5.7.509",
       {"Access denied, sending domain {FROM} does not pass DMARC verification and has a DMARC "
        "policy of reject."}},
      {"outlook", "authentication_level", bulk_only, outlook_high_volume, 550, "5.7.515",
       {"Access denied, sending domain {FROM} doesn't meet the required authentication level. The "
        "sender's domain in the 5322.From address doesn't meet the authentication requirements "
        "defined for the sender. To learn how to fix this see: "
        "https://go.microsoft.com/fwlink/p/?linkid=2319303 {results}"}},
  };
  // NOLINTEND(bugprone-suspicious-missing-comma)
  // clang-format on
  return table;
}

std::string gmail_wire(int code, std::string_view enhanced,
                       const std::vector<std::string>& paragraphs, const std::string& session_id) {
  constexpr std::size_t width = 80;
  const std::string line_prefix = std::to_string(code) + "-" + std::string(enhanced) + " ";
  std::vector<std::string> lines;
  for (const auto& p : paragraphs) {
    if (p.rfind("http", 0) == 0) {
      lines.push_back(" " + p);  // a URL on its own line, after two spaces
      continue;
    }
    if (p.empty() || p.front() == ' ') {
      lines.push_back(p);  // kept as written (the results block)
      continue;
    }
    std::string line;
    std::size_t pos = 0;
    while (pos < p.size()) {
      auto end = p.find(' ', pos);
      if (end == std::string::npos) end = p.size();
      std::string word = p.substr(pos, end - pos);
      if (!line.empty() && line_prefix.size() + line.size() + 1 + word.size() > width) {
        lines.push_back(line);
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
      pos = end + 1;
    }
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool last = i + 1 == lines.size();
    out += std::to_string(code) + (last ? " " : "-") + std::string(enhanced);
    if (!lines[i].empty()) out += " " + lines[i];
    if (last) out += " " + session_id + " - gsmtp";
    else out += "\r\n";
  }
  return out;
}

verdicts judge(std::string_view provider, const facts& f, const std::string& session_id,
               std::int64_t received) {
  verdicts v;
  v.ordinary = v.bulk = {verdict::accept, accept_reply(provider, session_id, received), ""};
  bool ordinary_set = false, bulk_set = false;
  for (const auto& r : rules()) {
    if (r.provider != provider || !r.broken(f)) continue;
    std::vector<std::string> paragraphs;
    for (auto p : r.text) paragraphs.push_back(fill(p, f));
    std::string reply;
    if (provider == "gmail") {
      reply = gmail_wire(r.code, r.enhanced, paragraphs, session_id);
    } else {
      reply = std::to_string(r.code) + (r.enhanced.empty() ? "" : " " + std::string(r.enhanced));
      for (const auto& p : paragraphs) reply += " " + p;
    }
    answer a{verdict_of_code(r.code), reply, std::string(r.id)};
    if (r.applies == scope::all_senders && !ordinary_set) {
      v.ordinary = a;
      ordinary_set = true;
    }
    if (!bulk_set) {
      v.bulk = a;
      bulk_set = true;
    }
    if (ordinary_set && bulk_set) break;
  }
  return v;
}

judgement judge_all(const facts& f, const std::string& session_id, std::int64_t received) {
  return {judge("gmail", f, session_id, received), judge("yahoo", f, session_id, received),
          judge("outlook", f, session_id, received)};
}

namespace {
constexpr core::token_table<verdict, 3> verdict_tokens{
    {{{verdict::accept, "accept"}, {verdict::defer, "defer"}, {verdict::reject, "reject"}}},
    "a provider verdict"};
}  // namespace

std::string_view to_string(verdict v) { return verdict_tokens.token(v); }
verdict verdict_of(std::string_view token) { return verdict_tokens.value(token); }

void tag_invoke(json::value_from_tag, json::value& v, const verdicts& x) {
  v = json::object{{"verdict", to_string(x.ordinary.verdict)},
                   {"reply", x.ordinary.reply},
                   {"rule", x.ordinary.rule},
                   {"bulk_verdict", to_string(x.bulk.verdict)},
                   {"bulk_reply", x.bulk.reply},
                   {"bulk_rule", x.bulk.rule}};
}

verdicts tag_invoke(json::value_to_tag<verdicts>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  return {{verdict_of(text(o, "verdict")), text(o, "reply"), text(o, "rule")},
          {verdict_of(text(o, "bulk_verdict")), text(o, "bulk_reply"), text(o, "bulk_rule")}};
}

void tag_invoke(json::value_from_tag, json::value& v, const judgement& j) {
  v = json::object{{"gmail", json::value_from(j.gmail)},
                   {"yahoo", json::value_from(j.yahoo)},
                   {"outlook", json::value_from(j.outlook)}};
}

judgement tag_invoke(json::value_to_tag<judgement>, const json::value& v) {
  using namespace core::read;
  const auto& o = object_of(v);
  return {field<verdicts>(o, "gmail"), field<verdicts>(o, "yahoo"), field<verdicts>(o, "outlook")};
}

}  // namespace mxlens::analyzers::providers
