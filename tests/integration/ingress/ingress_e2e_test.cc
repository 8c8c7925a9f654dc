// The ingress end to end: a real skiffd with its ingress on, real instances of the
// project's test app (tests/payloads/testapp) from a real registry, requests through the
// proxy. Routing, the concurrency gate and its queue, 429/503/504, a streamed 1 GiB body,
// WebSocket, request-based CPU measured from the instance's cgroup, startup boost, cold
// start, scale to zero and back, drain under load, /metrics. Each test checks the host
// afterwards: no instance, cgroup, link or route left behind.
//
// Every test runs twice, as two CTest entries: /Gen1 with gen1 instances, /Gen2 with gen2
// ones. This host's /dev/kvm cannot boot Linux (PVM), so gen2 runs through fake-vmm
// (tests/support/fake_vmm.sh.in): the shim, the erofs root image, the instance's cgroup
// and tap and the control protocol are real, skiff-init runs in test mode in a network namespace
// whose eth0 is bridged to the tap, and the app runs from the build tree (test mode has no root
// switch). The ingress reaches it as it would reach a microVM: over the tap, at the instance's IP,
// with its CPU throttled through the instance's cgroup (which holds the "VMM" and everything under
// it).

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/common/status.h"
#include "tests/support/host_state.h"
#include "tests/support/http_client.h"
#include "tests/support/registry.h"
#include "tests/support/skiffd_process.h"
#include "tests/support/status_matchers.h"

namespace skiff::testing {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr char kDomain[] = "skiff.test";

// Resident memory of a process, bytes.
uint64_t RssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      uint64_t kb = 0;
      std::string rest(absl::StripAsciiWhitespace(line.substr(6)));
      (void)absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &kb);
      return kb * 1024;
    }
  }
  return 0;
}

// A JSON number field of a flat object ("key": 12.5).
double JsonNumber(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return -1;
  at = json.find(':', at);
  double v = -1;
  size_t end = json.find_first_of(",}", at);
  (void)absl::SimpleAtod(absl::StripAsciiWhitespace(json.substr(at + 1, end - at - 1)), &v);
  return v;
}

// The host side of an instance's link (agent/instances/ip_pool.cc): "sk-" and the host
// address (the instance's minus one) in hex — a veth for gen1, a tap for gen2.
std::string HostLink(const std::string& instance_ip) {
  uint32_t ip = 0;
  for (absl::string_view octet : absl::StrSplit(instance_ip, '.')) {
    uint32_t v = 0;
    (void)absl::SimpleAtoi(octet, &v);
    ip = ip << 8 | v;
  }
  return absl::StrFormat("sk-%08x", ip - 1);
}

uint64_t LinkCounter(const std::string& link, const std::string& counter) {
  std::ifstream in(absl::StrCat("/sys/class/net/", link, "/statistics/", counter));
  uint64_t v = 0;
  in >> v;
  return v;
}

class IngressE2ETest : public ::testing::TestWithParam<v1::Generation> {
 protected:
  static void SetUpTestSuite() {
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = reg->release();
    absl::Status s = registry_->PushTestApp();
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  HostStateOptions HostOptions() {
    HostStateOptions o;
    o.cgroup_prefixes = {skiffd_->options().cgroup_parent};
    return o;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    SkiffdOptions opts;
    opts.insecure_registries = {registry_->address()};
    opts.ip_pool = "10.89.4.0/24";
    opts.ingress = true;
    opts.node_domain = kDomain;
    if (GetParam() == v1::GEN2) {
      // Any readable files do for the kernel and initramfs: fake-vmm only checks them.
      opts.extra_flags = {absl::StrCat("--gen2-vmm=", SKIFF_FAKE_VMM),
                          absl::StrCat("--gen2-kernel=", SKIFF_TESTGUEST_KERNEL),
                          absl::StrCat("--gen2-initramfs=", SKIFF_TESTGUEST_KERNEL)};
    }
    SKIFF_ASSERT_OK_AND_ASSIGN(skiffd_, SkiffdProcess::Create(opts));
    SKIFF_ASSERT_OK_AND_ASSIGN(before_, HostState::Capture(HostOptions()));
    SKIFF_ASSERT_OK(skiffd_->Start());
    port_ = skiffd_->ingress_port();
  }

  void TearDown() override {
    if (skiffd_ == nullptr) return;
    if (skiffd_->running()) {
      SKIFF_EXPECT_OK(skiffd_->DeleteAll());
    }
    SKIFF_EXPECT_OK(skiffd_->Stop());
    skiffd_->RemoveCgroupParent();
    auto after = HostState::Capture(HostOptions());
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(DiffHostState(before_, *after), "") << "left behind on the host";
    skiffd_.reset();
  }

  v1::Agent::Stub& stub() { return skiffd_->stub(); }

  v1::InstanceSpec AppSpec(uint32_t concurrency = 80) {
    v1::InstanceSpec spec;
    spec.set_image(registry_->Reference("testapp"));
    spec.set_memory_bytes(64 * kMiB);
    spec.set_vcpus_milli(1000);
    spec.set_concurrency(concurrency);
    spec.mutable_termination_grace()->set_seconds(5);
    if (GetParam() == v1::GEN2) {
      spec.set_generation(v1::GEN2);
      // skiff-init's test mode runs the app from the host's filesystem: the same static
      // binary the image holds, from the build tree.
      const char* build = getenv("SKIFF_BUILD_DIR");
      spec.add_command(absl::StrCat(build ? build : ".", "/tests/payloads/testapp/skiff-testapp"));
    }
    return spec;
  }

  v1::Service MakeService(const std::string& name, v1::InstanceSpec spec, uint32_t min,
                          uint32_t max) {
    v1::Service s;
    s.set_name(name);
    *s.mutable_template_() = std::move(spec);
    s.set_min_instances(min);
    s.set_max_instances(max);
    return s;
  }

  absl::StatusOr<v1::Service> Put(const v1::Service& service) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::PutServiceRequest req;
    *req.mutable_service() = service;
    v1::Service out;
    SKIFF_RETURN_IF_ERROR(FromGrpc(stub().PutService(&ctx, req, &out), "PutService"));
    return out;
  }

  // Live (not EXITED) instances of a service.
  std::vector<v1::Instance> Instances(const std::string& service, bool ready_only = false) {
    grpc::ClientContext ctx;
    v1::ListInstancesRequest req;
    req.set_label_selector(absl::StrCat("skiff.service=", service));
    v1::ListInstancesResponse list;
    std::vector<v1::Instance> out;
    if (!stub().ListInstances(&ctx, req, &list).ok()) return out;
    for (const auto& i : list.instances()) {
      if (i.state() == v1::EXITED) continue;
      if (ready_only && i.state() != v1::READY) continue;
      out.push_back(i);
    }
    return out;
  }

  // Waits until the service has `n` READY instances (and no others live, if exact).
  absl::StatusOr<std::vector<v1::Instance>> WaitReady(const std::string& service, size_t n,
                                                      absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      std::vector<v1::Instance> ready = Instances(service, /*ready_only=*/true);
      if (ready.size() >= n) return ready;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(service, ": ", ready.size(), " of ", n, " instances READY"));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  v1::ServiceStats Stats(const std::string& service) {
    grpc::ClientContext ctx;
    v1::Node node;
    v1::ServiceStats out;
    if (!stub().GetNode(&ctx, v1::GetNodeRequest(), &node).ok()) return out;
    for (const auto& s : node.services()) {
      if (s.name() == service) out = s;
    }
    return out;
  }

  std::string Host(const std::string& service) { return absl::StrCat(service, ".", kDomain); }

  absl::StatusOr<ClientResponse> Get(const std::string& service, const std::string& path,
                                     const std::vector<std::string>& headers = {}) {
    return HttpRequest(port_, "GET", path, Host(service), headers);
  }

  std::string CpuUsagePath(const std::string& id) {
    return absl::StrCat("/sys/fs/cgroup/cpuacct/", skiffd_->options().cgroup_parent, "/", id,
                        "/cpuacct.usage");
  }

  // CPUs used by the instance's cgroup over `window`, with `during` running meanwhile.
  absl::StatusOr<double> CpuOver(const std::string& id, absl::Duration window) {
    SKIFF_ASSIGN_OR_RETURN(uint64_t u0, ReadCgroupCounter(CpuUsagePath(id)));
    const absl::Time t0 = absl::Now();
    absl::SleepFor(window);
    SKIFF_ASSIGN_OR_RETURN(uint64_t u1, ReadCgroupCounter(CpuUsagePath(id)));
    return static_cast<double>(u1 - u0) / 1e9 / absl::ToDoubleSeconds(absl::Now() - t0);
  }

  static LocalRegistry* registry_;
  std::unique_ptr<SkiffdProcess> skiffd_;
  HostState before_;
  uint16_t port_ = 0;
};

LocalRegistry* IngressE2ETest::registry_ = nullptr;

TEST_P(IngressE2ETest, RoutesByHostPinsAndAnswersUnknownWith404) {
  SKIFF_ASSERT_OK(Put(MakeService("echo", AppSpec(), 1, 1)));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto ready, WaitReady("echo", 1));
  const std::string id = ready[0].id();
  EXPECT_TRUE(absl::StartsWith(id, "echo-")) << id;

  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse r, Get("echo", "/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  // The bare service name, with a port, in upper case.
  SKIFF_ASSERT_OK_AND_ASSIGN(r, HttpRequest(port_, "GET", "/", "ECHO:8080"));
  EXPECT_EQ(r.status, 200);
  // Unknown service.
  SKIFF_ASSERT_OK_AND_ASSIGN(r, Get("nope", "/"));
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("nope"));
  // Pinned to the instance, and to one that does not exist.
  SKIFF_ASSERT_OK_AND_ASSIGN(r, Get("echo", "/headers", {"X-Skiff-Instance: " + id}));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("x-forwarded-for: 127.0.0.1"));
  SKIFF_ASSERT_OK_AND_ASSIGN(r, Get("echo", "/", {"X-Skiff-Instance: echo-zzzzz"}));
  EXPECT_EQ(r.status, 404);
  // A POST body comes back byte for byte, on one keep-alive connection, 20 times — over the
  // instance's own link: gen1's veth, gen2's tap (which only the "VMM" holds).
  const std::string link = HostLink(ready[0].ip());
  const bool tap = access(absl::StrCat("/sys/class/net/", link, "/tun_flags").c_str(), F_OK) == 0;
  EXPECT_EQ(tap, GetParam() == v1::GEN2) << link << " should be a tap exactly for gen2";
  const uint64_t sent0 = LinkCounter(link, "tx_bytes");
  std::string body(1 * kMiB, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 131 % 251);
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpConnection conn, HttpConnection::Connect("127.0.0.1", port_));
  for (int i = 0; i < 20; ++i) {
    SKIFF_ASSERT_OK_AND_ASSIGN(r, conn.Request("POST", "/echo", Host("echo"), {}, body));
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body, body) << "request " << i;
  }
  EXPECT_GE(LinkCounter(link, "tx_bytes") - sent0, 20 * kMiB) << "not through " << link;
  // /metrics counts them.
  SKIFF_ASSERT_OK_AND_ASSIGN(r, HttpRequest(skiffd_->admin_port(), "GET", "/metrics", "admin"));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("skiff_ingress_requests_total{service=\"echo\",code=\"200\"}"));
  // Unknown names are not labels (their number is unbounded): they count under "".
  EXPECT_THAT(r.body, HasSubstr("skiff_ingress_requests_total{service=\"\",code=\"404\"}"));
}

TEST_P(IngressE2ETest, ConcurrencyOneSerialisesAndTheQueueOverflows) {
  v1::Service svc = MakeService("one", AppSpec(/*concurrency=*/1), 1, 1);
  svc.set_max_queue(1);
  svc.mutable_queue_timeout()->set_seconds(10);
  SKIFF_ASSERT_OK(Put(svc));
  SKIFF_ASSERT_OK(WaitReady("one", 1).status());

  // Two slow requests at once: the second waits for the first.
  std::vector<absl::Duration> took(2);
  std::vector<int> codes(2);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
      ts.emplace_back([&, i] {
        absl::SleepFor(absl::Milliseconds(100 * i));
        const absl::Time t0 = absl::Now();
        auto r = Get("one", "/sleep?ms=800");
        took[i] = absl::Now() - t0;
        codes[i] = r.ok() ? r->status : -1;
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(codes[0], 200);
  EXPECT_EQ(codes[1], 200);
  EXPECT_GE(took[1], absl::Milliseconds(1400)) << "not serialised";
  std::cout << "concurrency 1: first " << took[0] << ", second " << took[1] << "\n";

  // Three at once with one slot and a queue of one: the third is refused with 429.
  std::vector<ClientResponse> rs(3);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([&, i] {
        absl::SleepFor(absl::Milliseconds(150 * i));
        auto r = Get("one", "/sleep?ms=700");
        if (r.ok()) rs[i] = *r;
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[1].status, 200);
  EXPECT_EQ(rs[2].status, 429);
  EXPECT_TRUE(rs[2].headers.count("retry-after")) << rs[2].body;

  // A queue wait past queue_timeout: 503 with Retry-After.
  svc.mutable_queue_timeout()->set_seconds(0);
  svc.mutable_queue_timeout()->set_nanos(300 * 1000 * 1000);
  SKIFF_ASSERT_OK(Put(svc));
  std::vector<ClientResponse> qs(2);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
      ts.emplace_back([&, i] {
        absl::SleepFor(absl::Milliseconds(150 * i));
        auto r = Get("one", "/sleep?ms=1500");
        if (r.ok()) qs[i] = *r;
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(qs[0].status, 200);
  EXPECT_EQ(qs[1].status, 503);
  EXPECT_TRUE(qs[1].headers.count("retry-after"));
}

TEST_P(IngressE2ETest, RequestTimeoutAnswers504AndFreesTheSlot) {
  v1::InstanceSpec spec = AppSpec(/*concurrency=*/1);
  spec.mutable_request_timeout()->set_seconds(1);
  v1::Service svc = MakeService("slow", spec, 1, 1);
  svc.mutable_queue_timeout()->set_seconds(1);
  SKIFF_ASSERT_OK(Put(svc));
  SKIFF_ASSERT_OK(WaitReady("slow", 1).status());
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse r, Get("slow", "/sleep?ms=5000"));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(r.status, 504);
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(3));
  // The only slot is free again: the next request does not wait for the abandoned one.
  SKIFF_ASSERT_OK_AND_ASSIGN(r, Get("slow", "/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Stats("slow").in_flight(), 0u);
}

TEST_P(IngressE2ETest, StreamsOneGibibyteEachWayWithFlatMemory) {
  SKIFF_ASSERT_OK(Put(MakeService("stream", AppSpec(), 1, 1)));
  SKIFF_ASSERT_OK(WaitReady("stream", 1).status());
  const uint64_t rss0 = RssBytes(skiffd_->pid());
  constexpr uint64_t kGiB = 1024 * kMiB;

  // Download: GET /bytes?n=1GiB.
  std::atomic<uint64_t> peak{rss0};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done.load()) {
      peak = std::max<uint64_t>(peak.load(), RssBytes(skiffd_->pid()));
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpConnection down, HttpConnection::Connect("127.0.0.1", port_));
  uint64_t got = 0;
  bool pattern_ok = true;
  SKIFF_ASSERT_OK_AND_ASSIGN(
      ClientResponse r, down.Request("GET", absl::StrCat("/bytes?n=", kGiB), Host("stream"), {}, "",
                                     [&](const char* p, size_t n) {
                                       for (size_t i = 0; i < n; i += 4096) {
                                         pattern_ok &=
                                             p[i] == static_cast<char>('a' + (got + i) % 26);
                                       }
                                       got += n;
                                     }));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(got, kGiB);
  EXPECT_TRUE(pattern_ok);

  // Upload: POST /echo with 1 GiB, chunked, echoed back while it is sent.
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpConnection up, HttpConnection::Connect("127.0.0.1", port_));
  SKIFF_ASSERT_OK(up.WriteAll(absl::StrCat("POST /echo HTTP/1.1\r\nHost: ", Host("stream"),
                                           "\r\nTransfer-Encoding: chunked\r\n\r\n")));
  std::atomic<uint64_t> echoed{0};
  absl::Status read_status;
  int read_code = 0;
  std::thread reader([&] {
    auto head = up.ReadHead();
    if (!head.ok()) {
      read_status = head.status();
      return;
    }
    read_code = head->status;
    read_status = up.ReadBody(*head, [&](const char*, size_t n) { echoed += n; });
  });
  std::string chunk(1 * kMiB, 'z');
  const std::string chunk_head = absl::StrCat(absl::Hex(chunk.size()), "\r\n");
  absl::Status write_status;
  for (uint64_t sent = 0; sent < kGiB && write_status.ok(); sent += chunk.size()) {
    write_status = up.WriteAll(chunk_head);
    if (write_status.ok()) write_status = up.WriteAll(chunk);
    if (write_status.ok()) write_status = up.WriteAll("\r\n");
  }
  if (write_status.ok()) write_status = up.WriteAll("0\r\n\r\n");
  reader.join();
  done = true;
  sampler.join();
  SKIFF_EXPECT_OK(write_status);
  SKIFF_EXPECT_OK(read_status);
  EXPECT_EQ(read_code, 200);
  EXPECT_EQ(echoed.load(), kGiB);
  const double growth_mib = static_cast<double>(peak.load() - rss0) / kMiB;
  std::cout << "skiffd RSS " << rss0 / kMiB << " MiB before, peak growth " << growth_mib
            << " MiB while streaming 1 GiB down and 1 GiB up\n";
  EXPECT_LT(growth_mib, 64.0);
}

TEST_P(IngressE2ETest, WebSocketEchoesThroughTheIngress) {
  SKIFF_ASSERT_OK(Put(MakeService("ws", AppSpec(), 1, 1)));
  SKIFF_ASSERT_OK(WaitReady("ws", 1).status());
  SKIFF_ASSERT_OK_AND_ASSIGN(HttpConnection c, HttpConnection::Connect("127.0.0.1", port_));
  SKIFF_ASSERT_OK(c.WriteAll(absl::StrCat(
      "GET /ws HTTP/1.1\r\nHost: ", Host("ws"),
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")));
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse head, c.ReadHead());
  ASSERT_EQ(head.status, 101);
  EXPECT_EQ(head.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  for (const std::string msg : {"hello", "through the skiff ingress"}) {
    // A masked text frame (client → server must be masked).
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    std::string frame;
    frame.push_back(static_cast<char>(0x81));
    frame.push_back(static_cast<char>(0x80 | msg.size()));
    frame.append(reinterpret_cast<const char*>(mask), 4);
    for (size_t i = 0; i < msg.size(); ++i)
      frame.push_back(static_cast<char>(msg[i] ^ mask[i % 4]));
    SKIFF_ASSERT_OK(c.WriteAll(frame));
    SKIFF_ASSERT_OK_AND_ASSIGN(std::string hdr, c.ReadExactly(2));
    EXPECT_EQ(static_cast<unsigned char>(hdr[0]), 0x81);
    ASSERT_EQ(static_cast<size_t>(hdr[1] & 0x7f), msg.size());
    SKIFF_ASSERT_OK_AND_ASSIGN(std::string payload, c.ReadExactly(msg.size()));
    EXPECT_EQ(payload, msg);
  }
  // The tunnel holds its instance's slot while open.
  EXPECT_EQ(Stats("ws").in_flight(), 1u);
}

TEST_P(IngressE2ETest, CpuIsThrottledBetweenRequestsAndBackgroundWorkStalls) {
  v1::InstanceSpec spec = AppSpec();
  (*spec.mutable_env())["BUSY_THREAD"] = "1";
  SKIFF_ASSERT_OK(Put(MakeService("busy", spec, 1, 1)));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto ready, WaitReady("busy", 1));
  const std::string id = ready[0].id();
  absl::SleepFor(absl::Milliseconds(300));
  // Idle: the busy thread gets the 1 % floor.
  SKIFF_ASSERT_OK_AND_ASSIGN(double idle, CpuOver(id, absl::Seconds(2)));
  // A request in flight: the full vCPU.
  std::thread req([&] { (void)Get("busy", "/sleep?ms=1600"); });
  absl::SleepFor(absl::Milliseconds(200));
  SKIFF_ASSERT_OK_AND_ASSIGN(double busy, CpuOver(id, absl::Seconds(1)));
  req.join();
  absl::SleepFor(absl::Milliseconds(300));
  SKIFF_ASSERT_OK_AND_ASSIGN(double idle_again, CpuOver(id, absl::Seconds(1)));
  std::cout << "busy thread CPU: idle " << idle << ", request in flight " << busy << ", idle again "
            << idle_again << "\n";
  EXPECT_LE(idle, 0.02);
  EXPECT_GE(busy, 0.8);
  EXPECT_LE(idle_again, 0.02);

  // A fire-and-forget task started by a request stalls once the response is sent; with
  // cpu_allocation INSTANCE it runs to completion. (A quarter vCPU each: the node has 2.)
  v1::InstanceSpec quarter = AppSpec();
  quarter.set_vcpus_milli(250);
  SKIFF_ASSERT_OK(Put(MakeService("task", quarter, 1, 1)));
  v1::InstanceSpec always = quarter;
  always.set_cpu_allocation(v1::INSTANCE);
  SKIFF_ASSERT_OK(Put(MakeService("task-always", always, 1, 1)));
  SKIFF_ASSERT_OK(WaitReady("task", 1).status());
  SKIFF_ASSERT_OK(WaitReady("task-always", 1).status());
  for (const std::string svc : {"task", "task-always"}) {
    SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse r,
                               HttpRequest(port_, "POST", "/task?ms=400", Host(svc)));
    EXPECT_EQ(r.status, 202);
  }
  absl::SleepFor(absl::Milliseconds(2500));  // 400 ms of CPU at 0.25 vCPU takes 1.6 s
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse throttled, Get("task", "/task"));
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse free, Get("task-always", "/task"));
  const double throttled_ms = JsonNumber(throttled.body, "cpu_ms");
  const double free_ms = JsonNumber(free.body, "cpu_ms");
  std::cout << "400 ms task after 2.5 s: request-based CPU " << throttled.body
            << "instance-based CPU " << free.body;
  EXPECT_LT(throttled_ms, 150) << throttled.body;
  EXPECT_THAT(throttled.body, HasSubstr("\"running\": true"));
  EXPECT_GE(free_ms, 380) << free.body;
  EXPECT_THAT(free.body, HasSubstr("\"running\": false"));
}

TEST_P(IngressE2ETest, StartupBoostDoublesCpuUntilTenSecondsAfterReady) {
  v1::InstanceSpec spec = AppSpec();
  spec.set_vcpus_milli(500);
  spec.set_startup_cpu_boost(true);
  (*spec.mutable_env())["BUSY_THREAD"] = "1";
  (*spec.mutable_env())["STARTUP_BURN_MS"] = "1500";
  SKIFF_ASSERT_OK(Put(MakeService("boost", spec, 1, 1)));
  // While it starts up (burning CPU before it listens): 2 × 0.5 vCPU.
  std::string id;
  for (int i = 0; i < 500 && id.empty(); ++i) {
    auto live = Instances("boost");
    if (!live.empty()) id = live[0].id();
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_FALSE(id.empty());
  absl::SleepFor(absl::Milliseconds(200));
  SKIFF_ASSERT_OK_AND_ASSIGN(double starting, CpuOver(id, absl::Milliseconds(800)));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto ready, WaitReady("boost", 1));
  const absl::Time ready_at = absl::FromUnixSeconds(ready[0].ready_at().seconds()) +
                              absl::Nanoseconds(ready[0].ready_at().nanos());
  // Still boosted after Ready, even idle.
  SKIFF_ASSERT_OK_AND_ASSIGN(double boosted_idle, CpuOver(id, absl::Seconds(1)));
  // After Ready + 10 s: the floor while idle, 0.5 with a request in flight.
  absl::SleepFor(ready_at + absl::Milliseconds(10500) - absl::Now());
  SKIFF_ASSERT_OK_AND_ASSIGN(double idle, CpuOver(id, absl::Seconds(1)));
  std::thread req([&] { (void)Get("boost", "/sleep?ms=1500"); });
  absl::SleepFor(absl::Milliseconds(200));
  SKIFF_ASSERT_OK_AND_ASSIGN(double busy, CpuOver(id, absl::Seconds(1)));
  req.join();
  std::cout << "0.5 vCPU with boost: starting " << starting << ", after Ready " << boosted_idle
            << ", after Ready + 10 s idle " << idle << ", with a request " << busy << "\n";
  EXPECT_GE(starting, 0.8);
  EXPECT_GE(boosted_idle, 0.8);
  EXPECT_LE(idle, 0.03);
  EXPECT_NEAR(busy, 0.5, 0.1);
}

TEST_P(IngressE2ETest, ColdStartsOnFirstRequestScalesToZeroAndBack) {
  v1::Service svc = MakeService("cold", AppSpec(/*concurrency=*/4), 0, 3);
  svc.mutable_idle_timeout()->set_seconds(2);
  SKIFF_ASSERT_OK(Put(svc));
  EXPECT_TRUE(Instances("cold").empty());
  const absl::Time t0 = absl::Now();
  SKIFF_ASSERT_OK_AND_ASSIGN(ClientResponse r, Get("cold", "/"));
  const absl::Duration cold = absl::Now() - t0;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Instances("cold").size(), 1u);
  EXPECT_EQ(Stats("cold").cold_starts(), 1u);
  std::cout << "cold start → first 200: " << cold << "\n";

  // Idle past idle_timeout: back to zero.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (!Instances("cold").empty() && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(Instances("cold").empty()) << "not scaled to zero";

  // A burst of 10 slow requests on a cold service with concurrency 4: all succeed, and
  // instances start as concurrency requires (ceil(10 / 4) = 3), not one per request.
  std::vector<int> codes(10, 0);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 10; ++i) {
      ts.emplace_back([&, i] {
        auto rr = Get("cold", "/sleep?ms=500");
        codes[i] = rr.ok() ? rr->status : -1;
      });
    }
    for (auto& t : ts) t.join();
  }
  for (int c : codes) EXPECT_EQ(c, 200);
  const size_t started = Instances("cold").size();
  EXPECT_GE(started, 1u);
  EXPECT_LE(started, 3u);
  EXPECT_GE(Stats("cold").cold_starts(), 2u);
  SKIFF_ASSERT_OK_AND_ASSIGN(r, HttpRequest(skiffd_->admin_port(), "GET", "/metrics", "admin"));
  EXPECT_THAT(r.body, HasSubstr("skiff_ingress_cold_starts_total{service=\"cold\"}"));
}

TEST_P(IngressE2ETest, StoppingAnInstanceUnderLoadDropsNoRequest) {
  SKIFF_ASSERT_OK(Put(MakeService("drain", AppSpec(/*concurrency=*/10), 2, 2)));
  SKIFF_ASSERT_OK_AND_ASSIGN(auto ready, WaitReady("drain", 2));
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  absl::Mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      absl::StatusOr<HttpConnection> conn = HttpConnection::Connect("127.0.0.1", port_);
      while (!stop.load()) {
        if (!conn.ok()) conn = HttpConnection::Connect("127.0.0.1", port_);
        absl::StatusOr<ClientResponse> r = conn.ok()
                                               ? conn->Request("GET", "/sleep?ms=20", Host("drain"))
                                               : absl::StatusOr<ClientResponse>(conn.status());
        if (r.ok() && r->status == 200) {
          ++ok;
          continue;
        }
        ++failed;
        absl::MutexLock lock(&mu);
        failures.push_back(r.ok() ? absl::StrCat(r->status, " ", r->body) : r.status().ToString());
        conn = absl::UnavailableError("reconnect");
      }
    });
  }
  absl::SleepFor(absl::Seconds(1));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::StopInstanceRequest req;
  req.set_instance_id(ready[0].id());
  v1::Instance stopped;
  SKIFF_EXPECT_OK(FromGrpc(stub().StopInstance(&ctx, req, &stopped), "StopInstance"));
  absl::SleepFor(absl::Seconds(1));
  stop = true;
  for (auto& t : clients) t.join();
  std::cout << "requests during the stop: " << ok.load() << " ok, " << failed.load() << " failed\n";
  EXPECT_EQ(stopped.exit().reason(), v1::STOPPED) << stopped.ShortDebugString();
  EXPECT_GT(ok.load(), 100);
  EXPECT_EQ(failed.load(), 0) << (failures.empty() ? "" : failures[0]);
}

INSTANTIATE_TEST_SUITE_P(, IngressE2ETest, ::testing::Values(v1::GEN1, v1::GEN2),
                         [](const ::testing::TestParamInfo<v1::Generation>& info) {
                           return info.param == v1::GEN2 ? "Gen2" : "Gen1";
                         });

}  // namespace
}  // namespace skiff::testing
