#include "agent/ingress/proxy_h2c.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <utility>
#include <vector>

namespace skiff::ingress::proxy {
namespace {

using State = H2cFirstRequest::State;

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const uint32_t n = payload.size();
  f += char(n >> 16);
  f += char(n >> 8);
  f += char(n);
  f += char(type);
  f += char(flags);
  f += char(stream >> 24);
  f += char(stream >> 16);
  f += char(stream >> 8);
  f += char(stream);
  return f + payload;
}

std::string Hpack(const std::vector<std::pair<std::string, std::string>>& headers) {
  nghttp2_hd_deflater* def = nullptr;
  EXPECT_EQ(nghttp2_hd_deflate_new(&def, 4096), 0);
  std::vector<nghttp2_nv> nva;
  for (const auto& [k, v] : headers) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  std::string out(nghttp2_hd_deflate_bound(def, nva.data(), nva.size()), '\0');
  ssize_t n = nghttp2_hd_deflate_hd(def, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                    nva.data(), nva.size());
  nghttp2_hd_deflate_del(def);
  EXPECT_GT(n, 0);
  out.resize(n);
  return out;
}

const std::vector<std::pair<std::string, std::string>> kRequest = {
    {":method", "POST"},
    {":scheme", "http"},
    {":path", "/helloworld.Greeter/SayHello"},
    {":authority", "grpc-svc.skiff.local:8080"},
    {"content-type", "application/grpc"},
    {"x-skiff-instance", "grpc-svc-ab12c"}};

TEST(ProxyH2cTest, FindsAuthorityAndPinAcrossPaddingPriorityAndContinuation) {
  const std::string block = Hpack(kRequest);
  const size_t half = block.size() / 2;
  // HEADERS with PADDED (3 bytes of padding) and PRIORITY, then a CONTINUATION ending it.
  std::string headers_payload = std::string(1, '\x03') + std::string("\x00\x00\x00\x00\x10", 5) +
                                block.substr(0, half) + std::string(3, '\0');
  std::string bytes = std::string(kH2PrefaceTail) + Frame(0x4, 0, 0, "") +    // SETTINGS
                      Frame(0x8, 0, 0, std::string("\x00\x01\x00\x00", 4)) +  // WINDOW_UPDATE
                      Frame(0x1, 0x8 | 0x20, 1, headers_payload) +
                      Frame(0x9, 0x4, 1, block.substr(half));
  // Every strict prefix needs more; the whole finds the request.
  for (size_t i = 0; i < bytes.size(); ++i) {
    H2cFirstRequest r =
        PeekH2cFirstRequest(std::string_view(bytes).substr(0, i), "X-Skiff-Instance");
    ASSERT_EQ(r.state, State::kNeedMore) << "at " << i << ": " << r.error;
  }
  H2cFirstRequest r = PeekH2cFirstRequest(bytes, "X-Skiff-Instance");
  ASSERT_EQ(r.state, State::kFound) << r.error;
  EXPECT_EQ(r.authority, "grpc-svc.skiff.local:8080");
  EXPECT_EQ(r.pin, "grpc-svc-ab12c");
}

TEST(ProxyH2cTest, RejectsBadInput) {
  const std::string block = Hpack({{":method", "GET"}, {":path", "/"}});
  H2cFirstRequest r = PeekH2cFirstRequest(std::string(kH2PrefaceTail) + Frame(0x1, 0x4, 1, block),
                                          "X-Skiff-Instance");
  EXPECT_EQ(r.state, State::kError);
  EXPECT_THAT(r.error, ::testing::HasSubstr(":authority"));

  EXPECT_EQ(PeekH2cFirstRequest("XX\r\n\r\n", "p").state, State::kError);
  std::string huge =
      std::string(kH2PrefaceTail) + std::string("\x01\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  EXPECT_EQ(PeekH2cFirstRequest(huge, "p").state, State::kError);  // 64 KiB frame
  std::string garbage_hpack =
      std::string(kH2PrefaceTail) + Frame(0x1, 0x4, 1, std::string("\xff\xff\xff\xff\xff", 5));
  EXPECT_EQ(PeekH2cFirstRequest(garbage_hpack, "p").state, State::kError);
  std::string interrupted =
      std::string(kH2PrefaceTail) + Frame(0x1, 0, 1, block) + Frame(0x4, 0, 0, "");
  EXPECT_EQ(PeekH2cFirstRequest(interrupted, "p").state, State::kError);
}

}  // namespace
}  // namespace skiff::ingress::proxy
