// `mxlens analyze --format text`: the report for a person at a terminal.
#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/json/value_to.hpp>
#include <cstdio>
#include <exception>
#include <map>
#include <sstream>

#include "analyzers/message/received.hpp"
#include "app/report.hpp"
#include "core/text.hpp"

namespace mxlens::app {

namespace json = boost::json;

namespace {

// Sender-chosen text as a terminal may show it: an escape sequence in a Subject must not drive
// the terminal.
std::string text(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? core::terminal_safe(v->as_string()) : std::string();
}

// A domain in both forms, "пример.рф (xn--e1afmkfd.xn--p1ai)", when the report gives a U-label
// form that differs (RFC 8616).
std::string domain(const json::object& o, const char* key, const char* unicode_key) {
  const auto ascii = text(o, key), unicode = text(o, unicode_key);
  return unicode.empty() || unicode == ascii ? ascii : unicode + " (" + ascii + ")";
}

int rank(const std::string& status) {
  static const std::map<std::string, int> order{{"fail", 0}, {"error", 1}, {"warn", 2},
                                                {"pass", 3}, {"info", 4},  {"skip", 5}};
  auto it = order.find(status);
  return it == order.end() ? 6 : it->second;
}

const char* colour_of(const std::string& status) {
  if (status == "fail") return "\033[31m";
  if (status == "error") return "\033[35m";
  if (status == "warn") return "\033[33m";
  if (status == "pass") return "\033[32m";
  return "\033[2m";
}

// The DMARCbis tree walk (draft-ietf-dmarc-dmarcbis §4.10), when it finds another
// organizational domain, record or policy than RFC 7489, whose verdict stands.
void dmarcbis_line(std::ostringstream& out, const json::object& dmarc, const char* bold,
                   const char* reset) {
  auto* bis = dmarc.if_contains("dmarcbis");
  if (!bis || !bis->is_object()) return;
  const auto& b = bis->as_object();
  auto* differs = b.if_contains("differs");
  if (!differs || !differs->is_array() || differs->as_array().empty()) return;
  out << "\n"
      << bold << "DMARCbis" << reset << " (draft, for information; RFC 7489 decides): "
      << "organizational domain " << domain(b, "org_domain", "org_domain_unicode") << " (RFC 7489 "
      << domain(dmarc, "org_domain", "org_domain_unicode") << "), record at "
      << (text(b, "record_domain").empty() ? "none" : text(b, "record_domain")) << ", policy "
      << (text(b, "applied_policy").empty() ? "none" : text(b, "applied_policy"));
  if (const auto src = text(b, "policy_source"); !src.empty()) out << " (" << src << "=)";
  out << " (RFC 7489 "
      << (text(dmarc, "applied_policy").empty() ? "none" : text(dmarc, "applied_policy")) << ")\n";
}

// The SPF record term by term: what each cost and did, and the term that decided.
void spf_terms(std::ostringstream& out, const json::object& spf, const char* bold,
               const char* reset) {
  auto* terms = spf.if_contains("terms");
  if (!terms || !terms->is_array() || terms->as_array().empty()) return;
  out << "\n"
      << bold << "SPF record of " << domain(spf, "domain", "domain_unicode") << reset << ": "
      << text(spf, "result");
  if (const auto by = text(spf, "decided_by"); !by.empty()) out << ", decided by " << by;
  if (const auto other = text(spf, "libspf2"); !other.empty())
    out << " (libspf2 computes " << other << ")";
  out << "\n";
  for (const auto& t : terms->as_array()) {
    if (!t.is_object()) continue;
    const auto& o = t.as_object();
    out << "  " << text(o, "term");
    const auto count = [&o](const char* key) {
      auto* v = o.if_contains(key);
      return v && v->is_int64() ? v->get_int64() : 0;
    };
    if (const auto n = count("lookups"); n > 0)
      out << "  " << n << (n == 1 ? " lookup" : " lookups");
    if (const auto n = count("void_lookups"); n > 0) out << ", " << n << " void";
    if (auto* m = o.if_contains("matched"); m && m->is_bool() && m->get_bool()) out << "  matched";
    if (const auto e = text(o, "error"); !e.empty()) out << "  error: " << e;
    out << "\n";
  }
}

// The Received chain, oldest hop first: who handed the message to whom, and the TLS each hop
// reports ("clear text" where its `with` says it went without, as hdr.received names it).
void received_chain(std::ostringstream& out, const json::value* chain, const char* bold,
                    const char* reset) {
  if (!chain || !chain->is_array() || chain->as_array().empty()) return;
  out << "\n" << bold << "Received chain" << reset << " (oldest hop first)\n";
  int n = 0;
  for (const auto& v : chain->as_array()) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    const auto field = [&o](const char* key) {
      const auto t = text(o, key);
      return t.empty() ? std::string("?") : t;
    };
    out << "  " << ++n << ". from " << field("from") << "\n     by " << field("by");
    if (const auto with = text(o, "with"); !with.empty()) out << " with " << with;
    out << "\n     ";
    const auto tls = text(o, "tls");
    bool clear = false;
    try {
      clear = analyzers::message::in_clear_text(json::value_to<analyzers::message::hop>(v));
    } catch (const std::exception&) {
      // A hop of another shape is shown without a judgement.
    }
    out << (!tls.empty() ? "TLS: " + tls : clear ? "clear text" : "TLS: not said");
    if (const auto at = text(o, "at"); !at.empty()) out << "  at " << at;
    out << "\n";
  }
}

// The ARC sets, oldest first (RFC 8617): who sealed each, what it saw (its AAR), and whether its
// two signatures hold; then the chain's verdict and, for a broken chain, where and why.
void arc_chain(std::ostringstream& out, const json::value* arc, const char* bold,
               const char* reset) {
  if (!arc || !arc->is_object()) return;
  const auto& a = arc->as_object();
  const auto* chain = a.if_contains("chain");
  if (!chain || !chain->is_array() || chain->as_array().empty()) return;
  out << "\n" << bold << "ARC chain" << reset << " (oldest set first): cv=" << text(a, "cv");
  if (auto* i = a.if_contains("failed_instance"); i && i->is_int64())
    out << " at i=" << i->get_int64();
  if (const auto reason = text(a, "reason"); !reason.empty()) out << ": " << reason;
  out << "\n";
  for (const auto& v : chain->as_array()) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    const auto* n = o.if_contains("instance");
    out << "  i=" << (n && n->is_int64() ? n->get_int64() : 0) << " sealed by "
        << text(o, "seal_domain") << " (s=" << text(o, "seal_selector") << ") cv=" << text(o, "cv")
        << "  AMS " << text(o, "ams") << ", seal " << text(o, "seal") << "\n";
    out << "     saw: " << text(o, "authserv_id") << "; " << text(o, "results") << "\n";
    if (const auto problem = text(o, "problem"); !problem.empty())
      out << "     " << problem << "\n";
  }
}

}  // namespace

std::string report_text(const json::object& report, bool colour) {
  std::ostringstream out;
  const char* reset = colour ? "\033[0m" : "";
  const char* bold = colour ? "\033[1m" : "";
  const auto* score = report.if_contains("score");
  if (score && score->is_object()) {
    const auto& s = score->as_object();
    const auto* errors = s.if_contains("errors");
    const std::string counts = "(" + json::serialize(s.at("passed")) + " of " +
                               json::serialize(s.at("total")) + " checks passed" +
                               (errors && errors->is_int64() && errors->get_int64() > 0
                                    ? ", " + json::serialize(*errors) + " could not be evaluated"
                                    : "") +
                               ")";
    if (s.at("value").is_number()) {
      char value[16];
      std::snprintf(value, sizeof value, "%.1f", s.at("value").to_number<double>());
      out << bold << "Score " << value << "/10" << reset << "  " << counts << "\n";
    } else {
      out << bold << "Not analysed: unscored" << reset << " (" << text(s, "unscored") << ")  "
          << counts << "\n";
    }
  }
  // Categories in catalog order, each with its checks failures first.
  std::vector<std::string> categories;
  std::map<std::string, std::vector<const json::object*>> by_category;
  if (auto* checks = report.if_contains("checks"); checks && checks->is_array()) {
    for (const auto& c : checks->as_array()) {
      const auto& o = c.as_object();
      const auto cat = text(o, "category");
      if (!by_category.count(cat)) categories.push_back(cat);
      by_category[cat].push_back(&o);
    }
  }
  for (const auto& cat : categories) {
    auto& list = by_category[cat];
    std::stable_sort(list.begin(), list.end(), [](auto* a, auto* b) {
      return rank(text(*a, "status")) < rank(text(*b, "status"));
    });
    out << "\n" << bold << cat << reset << "\n";
    for (const auto* c : list) {
      const auto status = text(*c, "status");
      std::string tag = status;
      tag.resize(5, ' ');
      out << "  " << (colour ? colour_of(status) : "") << tag << reset << " " << text(*c, "id")
          << "  " << text(*c, "summary") << "\n";
      const auto fix = text(*c, "fix");
      if (!fix.empty() && (status == "fail" || status == "warn"))
        out << "        fix: " << fix << "\n";
    }
  }
  received_chain(out, report.if_contains("received_chain"), bold, reset);
  if (auto* auth = report.if_contains("auth"); auth && auth->is_object()) {
    if (auto* spf = auth->as_object().if_contains("spf"); spf && spf->is_object())
      spf_terms(out, spf->as_object(), bold, reset);
    if (auto* dmarc = auth->as_object().if_contains("dmarc"); dmarc && dmarc->is_object())
      dmarcbis_line(out, dmarc->as_object(), bold, reset);
    arc_chain(out, auth->as_object().if_contains("arc"), bold, reset);
    // The header as it would be added: its folded lines (RFC 5322 §2.2.3) one under another.
    std::string ar;
    if (auto* v = auth->as_object().if_contains("authentication_results"); v && v->is_string()) {
      const std::string_view whole = v->as_string();
      for (std::size_t at = 0; at <= whole.size();) {
        auto end = whole.find("\r\n", at);
        if (end == std::string_view::npos) end = whole.size();
        if (at > 0) ar += "\n";
        ar += core::terminal_safe(whole.substr(at, end - at));
        at = end + 2;
      }
    }
    if (!ar.empty()) out << "\n" << bold << "Authentication-Results" << reset << ": " << ar << "\n";
  }
  if (auto* a = report.if_contains("analysis"); a && a->is_object()) {
    if (auto* errors = a->as_object().if_contains("errors"); errors && errors->is_array())
      for (const auto& e : errors->as_array())
        out << (colour ? "\033[35m" : "") << "analysis error: " << reset
            << (e.is_string() ? core::terminal_safe(e.get_string()) : "") << "\n";
  }
  return out.str();
}

}  // namespace mxlens::app
