// The JSON form of the core types. Field names are those of schema/report.schema.json
// (connection, tls, envelope, transcript); what the schema does not name yet (data facts, session
// records) follows the same style.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <optional>
#include <string>
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

boost::json::value to_json(const connection_facts& c);
boost::json::value to_json(const tls_facts& t);
boost::json::value to_json(const client_hello& h);
boost::json::value to_json(const failed_handshake& f);
boost::json::value to_json(const envelope& e, std::uint64_t size);
boost::json::value to_json(const data_facts& d);
boost::json::value to_json(const std::vector<transcript_line>& lines);
boost::json::value to_json(const session_record& s);
boost::json::value to_json(const test_info& t);
boost::json::value to_json(const delivery_summary& d);

// The facts of a delivery, without its raw bytes: what storage keeps beside the message.
boost::json::value delivery_facts_json(const delivery& d);

std::string_view to_string(body_type b);
std::string_view to_string(direction d);

}  // namespace mxlens::core
