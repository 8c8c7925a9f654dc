// The control protocol's codec and rules: every message round-trips, a stream split at
// any byte decodes the same, and malformed or rule-breaking frames are rejected with a
// reason naming the field.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <string>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/codec.h"
#include "sandbox/gen2/guest/control/host_channel.h"
#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/control/validate.h"

namespace skiff::gen2::control {
namespace {

using ::testing::HasSubstr;

InstanceSpec ValidSpec() {
  InstanceSpec s;
  s.argv = {"/bin/hello", "--port", "8080"};
  s.env = {"PATH=/usr/bin:/bin", "PORT=8080", "EMPTY="};
  s.working_dir = "/srv";
  s.uid = 1000;
  s.gid = 1001;
  s.hostname = "i-42";
  s.port = 8080;
  s.network.enabled = true;
  s.network.address = {10, 88, 0, 2};
  s.network.prefix_length = 30;
  s.network.gateway = {10, 88, 0, 1};
  s.network.mac = {0x02, 0x53, 0x4b, 0x00, 0x00, 0x02};
  s.tmpfs_bytes = 256ull << 20;
  s.root_device = "/dev/vda";
  s.root_fstype = "erofs";
  s.files = {{"/etc/hosts", "127.0.0.1 localhost\n10.88.0.2 i-42\n"}, {"/etc/hostname", "i-42\n"}};
  return s;
}

std::vector<Message> AllKinds() {
  return {ValidSpec(),
          SignalRequest{SIGTERM},
          SignalRequest{SIGKILL},
          Hello{kProtocolVersion},
          Started{2},
          LogChunk{LogStream::kStdout, "hello\n"},
          LogChunk{LogStream::kStderr, std::string("\0\xff binary", 9)},
          Exited{false, 0},
          Exited{false, 255},
          Exited{true, SIGKILL},
          Error{InitStep::kMountRoot, ENOENT, "mount(/dev/vda, /skiff/lower, erofs, ro)"}};
}

Message DecodeOne(const std::string& frame) {
  Message out;
  size_t consumed = 0;
  std::string error;
  EXPECT_EQ(DecodeFrame(frame, &out, &consumed, &error), DecodeStatus::kMessage) << error;
  EXPECT_EQ(consumed, frame.size());
  return out;
}

// The error for `frame`, which must fail to decode.
std::string DecodeError(const std::string& frame) {
  Message out;
  size_t consumed = 0;
  std::string error;
  EXPECT_EQ(DecodeFrame(frame, &out, &consumed, &error), DecodeStatus::kError);
  return error;
}

std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A frame with the given type byte and raw payload.
std::string RawFrame(uint8_t type, const std::string& payload) {
  return Le32(static_cast<uint32_t>(payload.size() + 1)) + static_cast<char>(type) + payload;
}

TEST(ControlCodecTest, EveryMessageKindRoundTrips) {
  for (const Message& m : AllKinds()) {
    ASSERT_EQ(ValidateMessage(m), "") << DescribeMessage(m);
    std::string frame = EncodeFrame(m);
    EXPECT_EQ(static_cast<uint8_t>(frame[4]), static_cast<uint8_t>(TypeOf(m)));
    EXPECT_EQ(DecodeOne(frame), m) << DescribeMessage(m);
  }
}

TEST(ControlCodecTest, WireFormatIsLengthTypePayloadLittleEndian) {
  std::string frame = EncodeFrame(Started{0x01020304});
  EXPECT_EQ(frame, std::string("\x05\x00\x00\x00\x11\x04\x03\x02\x01", 9));
  frame = EncodeFrame(LogChunk{LogStream::kStderr, "ab"});
  EXPECT_EQ(frame, std::string("\x08\x00\x00\x00\x12\x02\x02\x00\x00\x00"
                               "ab",
                               12));
}

TEST(ControlCodecTest, StreamSplitAtEveryByteDecodesTheSame) {
  std::string stream;
  std::vector<Message> sent = AllKinds();
  for (const Message& m : sent) stream += EncodeFrame(m);
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}, stream.size()}) {
    FrameReader reader;
    std::vector<Message> got;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      reader.Append(stream.data() + pos, std::min(chunk, stream.size() - pos));
      Message m;
      std::string error;
      DecodeStatus s;
      while ((s = reader.Next(&m, &error)) == DecodeStatus::kMessage) got.push_back(m);
      ASSERT_EQ(s, DecodeStatus::kNeedMore) << error;
    }
    EXPECT_EQ(got, sent) << "chunk " << chunk;
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(ControlCodecTest, EveryTruncationNeedsMoreNeverDecodes) {
  std::string frame = EncodeFrame(ValidSpec());
  for (size_t n = 0; n < frame.size(); ++n) {
    Message out;
    size_t consumed = 0;
    std::string error;
    EXPECT_EQ(DecodeFrame(frame.substr(0, n), &out, &consumed, &error), DecodeStatus::kNeedMore)
        << n;
  }
}

TEST(ControlCodecTest, RejectsBadLengths) {
  EXPECT_THAT(DecodeError(Le32(0)), HasSubstr("frame length 0"));
  EXPECT_THAT(DecodeError(Le32(kMaxFrameLength + 1)), HasSubstr("frame length 1048577"));
  EXPECT_THAT(DecodeError(Le32(0xffffffff)), HasSubstr("not in 1..1048576"));
}

TEST(ControlCodecTest, RejectsUnknownTypes) {
  for (uint8_t type : {0, 3, 15, 21, 255}) {
    EXPECT_THAT(DecodeError(RawFrame(type, "")), HasSubstr("unknown")) << int{type};
  }
}

TEST(ControlCodecTest, RejectsTruncatedPayloadAndLeftovers) {
  // A Started payload is 4 bytes.
  EXPECT_THAT(DecodeError(RawFrame(17, "\x01\x00\x00")), HasSubstr("truncated"));
  EXPECT_THAT(DecodeError(RawFrame(17, std::string("\x01\x00\x00\x00\x00", 5))),
              HasSubstr("left over"));
  // A string whose count runs past the frame.
  EXPECT_THAT(DecodeError(RawFrame(18, std::string("\x01\xff\xff\x00\x00", 5) + "abc")),
              HasSubstr("longer than the rest"));
  // A list count that cannot fit.
  std::string spec = EncodeFrame(ValidSpec());
  std::string huge_argc = spec.substr(0, 5) + Le32(0x40000000) + spec.substr(9);
  EXPECT_THAT(DecodeError(huge_argc), HasSubstr("count larger"));
  // A bool that is 2.
  EXPECT_THAT(DecodeError(RawFrame(19, std::string("\x02\x00\x00\x00\x00", 5))), HasSubstr("bool"));
}

TEST(ControlCodecTest, ValidationNamesTheField) {
  auto rejected = [](InstanceSpec s) { return DecodeError(EncodeFrame(s)); };
  InstanceSpec s = ValidSpec();
  s.argv.clear();
  EXPECT_THAT(rejected(s), HasSubstr("spec.argv: empty"));
  s = ValidSpec();
  s.argv[1] = std::string("a\0b", 3);
  EXPECT_THAT(rejected(s), HasSubstr("spec.argv[1]: contains NUL"));
  s = ValidSpec();
  s.env.push_back("NOEQUALS");
  EXPECT_THAT(rejected(s), HasSubstr("spec.env[3]: no '='"));
  s = ValidSpec();
  s.env.push_back("=x");
  EXPECT_THAT(rejected(s), HasSubstr("empty name"));
  s = ValidSpec();
  s.working_dir = "relative";
  EXPECT_THAT(rejected(s), HasSubstr("spec.working_dir: not an absolute path"));
  s = ValidSpec();
  s.hostname = "bad host";
  EXPECT_THAT(rejected(s), HasSubstr("spec.hostname"));
  s = ValidSpec();
  s.hostname = std::string(65, 'a');
  EXPECT_THAT(rejected(s), HasSubstr("not in 1..64"));
  s = ValidSpec();
  s.port = 0;
  EXPECT_THAT(rejected(s), HasSubstr("spec.port"));
  s = ValidSpec();
  s.uid = UINT32_MAX;
  EXPECT_THAT(rejected(s), HasSubstr("spec.uid"));
  s = ValidSpec();
  s.network.prefix_length = 33;
  EXPECT_THAT(rejected(s), HasSubstr("spec.network.prefix_length"));
  s = ValidSpec();
  s.network.gateway = {192, 168, 0, 1};
  EXPECT_THAT(rejected(s), HasSubstr("outside the address's subnet"));
  s = ValidSpec();
  s.network.mac[0] = 0x01;
  EXPECT_THAT(rejected(s), HasSubstr("multicast"));
  s = ValidSpec();
  s.network.enabled = false;
  EXPECT_THAT(rejected(s), HasSubstr("disabled but has"));
  s = ValidSpec();
  s.tmpfs_bytes = 4096;
  EXPECT_THAT(rejected(s), HasSubstr("spec.tmpfs_bytes"));
  s = ValidSpec();
  s.root_device = "/dev/../etc/passwd";
  EXPECT_THAT(rejected(s), HasSubstr("spec.root_device: bad character"));
  s = ValidSpec();
  s.root_device = "vda";
  EXPECT_THAT(rejected(s), HasSubstr("spec.root_device: not /dev/"));
  s = ValidSpec();
  s.root_fstype = "xfs";
  EXPECT_THAT(rejected(s), HasSubstr("spec.root_fstype"));
  s = ValidSpec();
  s.files[0].path = "/etc/../root/.ssh/authorized_keys";
  EXPECT_THAT(rejected(s), HasSubstr("spec.files[0].path: '.' or '..'"));
  s = ValidSpec();
  s.files[1].content = std::string(kMaxFileBytes + 1, 'x');
  EXPECT_THAT(rejected(s), HasSubstr("spec.files[1].content"));
  s = ValidSpec();
  s.files.resize(kMaxFiles + 1, {"/etc/x", ""});
  EXPECT_THAT(rejected(s), HasSubstr("spec.files: more than 16"));
}

TEST(ControlCodecTest, ValidationOfGuestMessages) {
  EXPECT_THAT(DecodeError(EncodeFrame(SignalRequest{SIGSTOP})), HasSubstr("signal.signo"));
  EXPECT_THAT(DecodeError(EncodeFrame(SignalRequest{0})), HasSubstr("signal.signo"));
  EXPECT_THAT(DecodeError(EncodeFrame(Started{0})), HasSubstr("started.pid"));
  EXPECT_THAT(DecodeError(EncodeFrame(LogChunk{LogStream::kStdout, ""})), HasSubstr("log.data"));
  EXPECT_THAT(
      DecodeError(EncodeFrame(LogChunk{LogStream::kStdout, std::string(kMaxLogChunk + 1, 'x')})),
      HasSubstr("log.data"));
  EXPECT_THAT(DecodeError(EncodeFrame(LogChunk{static_cast<LogStream>(3), "x"})),
              HasSubstr("log.stream"));
  EXPECT_THAT(DecodeError(EncodeFrame(Exited{false, 256})), HasSubstr("exit code 256"));
  EXPECT_THAT(DecodeError(EncodeFrame(Exited{true, 0})), HasSubstr("signal 0"));
  EXPECT_THAT(DecodeError(EncodeFrame(Error{static_cast<InitStep>(99), 1, ""})),
              HasSubstr("error.step"));
  EXPECT_THAT(DecodeError(EncodeFrame(Error{InitStep::kNetwork, 5000, ""})),
              HasSubstr("error.err"));
  EXPECT_THAT(DecodeError(EncodeFrame(Error{InitStep::kNetwork, 1, "a\nb"})),
              HasSubstr("printable"));
}

TEST(ControlCodecTest, ReaderStaysFailedAfterABadFrame) {
  FrameReader reader;
  std::string bad = RawFrame(99, "");
  std::string good = EncodeFrame(Started{7});
  reader.Append(bad.data(), bad.size());
  reader.Append(good.data(), good.size());
  Message m;
  std::string error;
  EXPECT_EQ(reader.Next(&m, &error), DecodeStatus::kError);
  EXPECT_TRUE(reader.failed());
  error.clear();
  EXPECT_EQ(reader.Next(&m, &error), DecodeStatus::kError);
  EXPECT_THAT(error, HasSubstr("unknown"));
}

TEST(ControlHostChannelTest, EncodeForGuestRefusesInvalidMessages) {
  InstanceSpec s = ValidSpec();
  s.root_fstype = "btrfs";
  absl::StatusOr<std::string> frame = EncodeForGuest(s);
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(frame.status().message(), HasSubstr("spec.root_fstype"));
}

TEST(ControlHostChannelTest, WriteAndReadOverASocketPair) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  for (const Message& m : AllKinds()) ASSERT_TRUE(WriteMessage(a.get(), m).ok());
  FrameReader reader;
  for (const Message& m : AllKinds()) {
    absl::StatusOr<std::optional<Message>> got = ReadMessage(b.get(), reader, absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ(**got, m);
  }
  // Nothing more: a deadline, then a clean EOF.
  absl::StatusOr<std::optional<Message>> none =
      ReadMessage(b.get(), reader, absl::Milliseconds(20));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDeadlineExceeded);
  a.Reset();
  absl::StatusOr<std::optional<Message>> eof = ReadMessage(b.get(), reader, absl::Seconds(5));
  ASSERT_TRUE(eof.ok()) << eof.status();
  EXPECT_FALSE(eof->has_value());
}

TEST(ControlHostChannelTest, ClosedMidFrameIsDataLoss) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  std::string frame = EncodeFrame(Started{3});
  ASSERT_EQ(write(a.get(), frame.data(), 6), 6);
  a.Reset();
  FrameReader reader;
  absl::StatusOr<std::optional<Message>> got = ReadMessage(b.get(), reader, absl::Seconds(5));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ControlHostChannelTest, DescribeMessage) {
  EXPECT_EQ(DescribeMessage(Exited{true, 9}), "exited(signal=9)");
  EXPECT_EQ(DescribeMessage(Error{InitStep::kMountRoot, ENOENT, "x"}),
            "error(step=mount_root, errno=ENOENT, x)");
}

}  // namespace
}  // namespace skiff::gen2::control
