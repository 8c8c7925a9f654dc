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

namespace {

void AppendFields(const http::fields& fields, std::string* out) {
  for (const auto& field : fields) {
    out->append(field.name_string().data(), field.name_string().size());
    out->append(": ");
    out->append(field.value().data(), field.value().size());
    out->append("\r\n");
  }
  out->append("\r\n");
}

}  // namespace

void FormatRequestHead(const http::request_header<>& req, std::string* out) {
  out->clear();
  out->append(req.method_string().data(), req.method_string().size());
  out->push_back(' ');
  out->append(req.target().data(), req.target().size());
  out->append(" HTTP/1.1\r\n");
  AppendFields(req, out);
}

void FormatResponseHead(const http::response_header<>& res, std::string* out) {
  out->clear();
  out->append(res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  const unsigned code = res.result_int();
  out->push_back(static_cast<char>('0' + code / 100 % 10));
  out->push_back(static_cast<char>('0' + code / 10 % 10));
  out->push_back(static_cast<char>('0' + code % 10));
  out->push_back(' ');
  beast::string_view reason = res.reason();
  if (reason.empty()) reason = http::obsolete_reason(res.result());
  out->append(reason.data(), reason.size());
  out->append("\r\n");
  AppendFields(res, out);
}

}  // namespace skiff::ingress::proxy
