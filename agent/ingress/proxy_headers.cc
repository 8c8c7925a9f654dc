#include "agent/ingress/proxy_headers.h"

#include <string>
#include <vector>

namespace skiff::ingress::proxy {
namespace {

constexpr beast::string_view kXForwardedFor = "X-Forwarded-For";
constexpr beast::string_view kHttp2Settings = "HTTP2-Settings";

// Calls fn(value) for every field called `name`, in the order received. (Beast's
// equal_range spans the insertion-ordered list, so it may include other fields.)
template <typename Fn>
void ForEachValue(const http::fields& fields, beast::string_view name, Fn fn) {
  for (const auto& f : fields) {
    if (beast::iequals(f.name_string(), name)) fn(f.value());
  }
}

bool ConnectionNames(const http::fields& fields, beast::string_view token) {
  bool found = false;
  ForEachValue(fields, "Connection", [&](beast::string_view value) {
    for (beast::string_view t : http::token_list{value}) {
      if (beast::iequals(t, token)) found = true;
    }
  });
  return found;
}

}  // namespace

bool WantsUpgrade(const http::fields& fields) {
  return fields.count(http::field::upgrade) > 0 && ConnectionNames(fields, "upgrade");
}

void StripHopByHop(http::fields& fields, bool keep_upgrade) {
  // Fields named by Connection first (copied out: erasing invalidates the values).
  std::vector<std::string> named;
  // An h2c upgrade (RFC 7540 §3.2) needs its HTTP2-Settings, which Connection names.
  const bool keep_h2_settings = keep_upgrade &&
                                beast::iequals(fields[http::field::upgrade], "h2c") &&
                                fields.count(kHttp2Settings) > 0;
  ForEachValue(fields, "Connection", [&](beast::string_view value) {
    for (beast::string_view t : http::token_list{value}) {
      if (keep_upgrade && beast::iequals(t, "upgrade")) continue;
      if (keep_h2_settings && beast::iequals(t, kHttp2Settings)) continue;
      named.emplace_back(t.data(), t.size());
    }
  });
  for (const std::string& name : named) fields.erase(beast::string_view(name));
  static constexpr http::field kHopByHop[] = {
      http::field::connection,
      http::field::keep_alive,
      http::field::te,
      http::field::trailer,
      http::field::transfer_encoding,
      http::field::proxy_connection,
      http::field::proxy_authenticate,
      http::field::proxy_authorization,
  };
  for (http::field f : kHopByHop) fields.erase(f);
  if (keep_upgrade) {
    fields.set(http::field::connection, keep_h2_settings ? "upgrade, HTTP2-Settings" : "upgrade");
  } else {
    fields.erase(http::field::upgrade);
  }
}

void SetForwardedHeaders(http::fields& fields, std::string_view client_ip) {
  std::string xff;
  ForEachValue(fields, kXForwardedFor, [&](beast::string_view value) {
    if (!xff.empty()) xff += ", ";
    xff.append(value.data(), value.size());
  });
  if (!xff.empty()) xff += ", ";
  xff.append(client_ip.data(), client_ip.size());
  fields.set(kXForwardedFor, xff);
  fields.set("X-Forwarded-Proto", "http");
  auto host = fields.find(http::field::host);
  if (host != fields.end()) {
    std::string value(host->value().data(), host->value().size());
    fields.set("X-Forwarded-Host", value);
  }
}

void FormatRequestHead(const http::request_header<>& req, std::string* out) {
  out->clear();
  const auto append = [out](beast::string_view v) { out->append(v.data(), v.size()); };
  append(req.method_string());
  out->push_back(' ');
  append(req.target());
  out->append(" HTTP/1.1\r\n");
  for (const auto& field : req) {
    append(field.name_string());
    out->append(": ");
    append(field.value());
    out->append("\r\n");
  }
  out->append("\r\n");
}

}  // namespace skiff::ingress::proxy
