// The JSON form of the core types: one serializer per type (Boost.JSON's tag_invoke for
// value_from) and its inverse (tag_invoke for value_to), so that what is written can be read
// back as the same value (tests/core/json_test.cpp round-trips every type). Field names are those
// of schema/report.schema.json (connection, tls, envelope, transcript); what the schema does not
// name yet (data facts, session records) follows the same style.
//
// The inverses are strict: a missing field, a field of the wrong type or a malformed time throws
// std::system_error or std::invalid_argument, which a reader at an edge turns into its own error.
// Fields derived from others (a connection's "family" and "duration_ms", an envelope's "size")
// are written for readers and ignored when read back.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/conversion.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace mxlens::core {

// null for an empty optional, the value otherwise.
template <class T>
boost::json::value optional_json(const std::optional<T>& v) {
  if (!v) return nullptr;
  return boost::json::value_from(*v);
}

boost::json::array string_array(const std::vector<std::string>& v);

// The inverse of format_time: exactly "YYYY-MM-DDTHH:MM:SS.mmmZ" (RFC 3339 in UTC, as written);
// anything else throws std::invalid_argument.
unix_ms parse_time(std::string_view text);

std::string_view to_string(body_type b);
std::string_view to_string(direction d);
std::string_view to_string(auth_result r);
std::string_view to_string(failure_class c);
// The inverses; an unknown token throws std::invalid_argument.
body_type body_type_of(std::string_view token);
direction direction_of(std::string_view token);
auth_result auth_result_of(std::string_view token);
failure_class failure_class_of(std::string_view token);

// What every inverse reads one field of an object with: a missing field, or one of another type,
// throws (std::system_error from Boost.JSON, std::invalid_argument for a bad token or time).
namespace read {
const boost::json::object& object_of(const boost::json::value& v);
// The member, or std::invalid_argument naming it.
const boost::json::value& member(const boost::json::object& o, std::string_view key);
// Runs a conversion of o[key]; a failure becomes std::invalid_argument naming the key, and for a
// nested object the path ("connection: early_talker: missing").
template <class F>
auto named(std::string_view key, F convert) -> decltype(convert()) {
  try {
    return convert();
  } catch (const boost::system::system_error& e) {
    throw std::invalid_argument(std::string(key) + ": " + e.code().message());
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string(key) + ": " + e.what());
  }
}
std::string text(const boost::json::object& o, std::string_view key);
unix_ms time_field(const boost::json::object& o, std::string_view key);
template <class T>
T field(const boost::json::object& o, std::string_view key) {
  const auto& v = member(o, key);
  return named(key, [&] { return boost::json::value_to<T>(v); });
}
// null reads as nullopt.
template <class T>
std::optional<T> optional_field(const boost::json::object& o, std::string_view key) {
  const auto& v = member(o, key);
  if (v.is_null()) return std::nullopt;
  return named(key, [&] { return boost::json::value_to<T>(v); });
}
}  // namespace read

// Each type's serializer and its inverse.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const client_certificate& x);
client_certificate tag_invoke(boost::json::value_to_tag<client_certificate>,
                              const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const client_hello& x);
client_hello tag_invoke(boost::json::value_to_tag<client_hello>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const failed_handshake& x);
failed_handshake tag_invoke(boost::json::value_to_tag<failed_handshake>,
                            const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const tls_facts& x);
tls_facts tag_invoke(boost::json::value_to_tag<tls_facts>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const connection_facts& x);
connection_facts tag_invoke(boost::json::value_to_tag<connection_facts>,
                            const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const transcript_line& x);
transcript_line tag_invoke(boost::json::value_to_tag<transcript_line>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const data_facts& x);
data_facts tag_invoke(boost::json::value_to_tag<data_facts>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const envelope& x);
envelope tag_invoke(boost::json::value_to_tag<envelope>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const session_record& x);
session_record tag_invoke(boost::json::value_to_tag<session_record>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const test_info& x);
test_info tag_invoke(boost::json::value_to_tag<test_info>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const delivery_summary& x);
delivery_summary tag_invoke(boost::json::value_to_tag<delivery_summary>,
                            const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const score& x);
score tag_invoke(boost::json::value_to_tag<score>, const boost::json::value& v);
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const disposition& x);
disposition tag_invoke(boost::json::value_to_tag<disposition>, const boost::json::value& v);
// {"score", "auth": {"spf": {"result"}, "dkim": [{"result"}...], "dmarc": {"result"}},
//  "analysis": {"errors"}}: the shape of the same members of the whole analysis.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const analysis_summary& x);
analysis_summary tag_invoke(boost::json::value_to_tag<analysis_summary>,
                            const boost::json::value& v);
// A delivery's facts, without its raw bytes: what storage keeps beside the message, and what the
// analysis reads. Read back, `raw` is empty.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const delivery& x);
delivery tag_invoke(boost::json::value_to_tag<delivery>, const boost::json::value& v);

// The JSON form of any of the types above.
template <class T>
boost::json::value to_json(const T& x) {
  return boost::json::value_from(x);
}

// A value of one of the types above, from its JSON form (see the inverses' contract above).
template <class T>
T from_json(const boost::json::value& v) {
  return boost::json::value_to<T>(v);
}

// Why a JSON text was not a value of the type asked for, when the text itself was JSON (a text
// that is not JSON fails with Boost.JSON's own parse errors).
enum class read_error {
  not_the_form = 1,  // a field missing, of another type, or holding an unknown token
};
const boost::system::error_category& read_category() noexcept;
inline boost::system::error_code make_error_code(read_error e) noexcept {
  return {static_cast<int>(e), read_category()};
}

}  // namespace mxlens::core

template <>
struct boost::system::is_error_code_enum<mxlens::core::read_error> : std::true_type {};

namespace mxlens::core {

// The value of type T a JSON text holds, or why not: how the seams read what another process or
// an earlier version wrote (the worker's frames, stored facts and sessions), where a malformed
// text is expected and answered on the spot rather than thrown.
template <class T>
boost::system::result<T> read_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::parse_options options;
  options.allow_invalid_utf8 = true;  // strings hold the wire's bytes (core/text.hpp)
  auto v = boost::json::parse(text, ec, {}, options);
  if (ec) return ec;
  try {
    return from_json<T>(v);
  } catch (const boost::system::system_error& e) {
    return e.code();
  } catch (const std::exception&) {
    return make_error_code(read_error::not_the_form);
  }
}

}  // namespace mxlens::core
