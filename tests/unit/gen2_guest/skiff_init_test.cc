// The real skiff-init binary in its test mode (--test --control=fd:N), against a fake host
// end written with the host-side codec: hello → spec → started → log frames → exited; the
// host's SIGTERM reaching a trapping shell; a signal death reported as such; exec failures
// and malformed host frames answered with an error frame and an exit.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/guest/control/host_channel.h"
#include "sandbox/gen2/guest/control/messages.h"

namespace skiff::gen2::control {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(10);

InstanceSpec ShellSpec(const std::string& script) {
  InstanceSpec s;
  s.argv = {"/bin/sh", "-c", script};
  s.env = {"FOO=bar", "PORT=1"};
  s.working_dir = "/tmp";
  s.uid = getuid();
  s.gid = getgid();
  s.hostname = "i-test";
  s.port = 9090;
  s.tmpfs_bytes = 64 << 20;
  s.root_device = "/dev/vda";
  s.root_fstype = "erofs";
  return s;
}

// skiff-init as a child process with one end of a socketpair as its control channel.
class FakeHost {
 public:
  FakeHost() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    host_ = UniqueFd(sv[0]);
    UniqueFd guest(sv[1]);
    pid_ = fork();
    if (pid_ == 0) {
      // The guest end, without close-on-exec, as fd 3.
      dup2(guest.get(), 3);
      const char* argv[] = {SKIFF_INIT_PATH, "--test", "--control=fd:3", nullptr};
      execv(argv[0], const_cast<char**>(argv));
      _exit(126);
    }
  }
  ~FakeHost() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  int fd() const { return host_.get(); }
  void Send(const Message& m) { ASSERT_TRUE(WriteMessage(host_.get(), m).ok()); }
  void SendRaw(const std::string& bytes) {
    ASSERT_EQ(write(host_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void CloseHostEnd() { host_.Reset(); }

  // The next message that is not a log chunk (log chunks are collected).
  Message Next() {
    while (true) {
      absl::StatusOr<std::optional<Message>> m = ReadMessage(host_.get(), reader_, kTimeout);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok() || !m->has_value()) return Hello{0};  // never a valid answer here
      if (auto* log = std::get_if<LogChunk>(&**m)) {
        (log->stream == LogStream::kStdout ? stdout_ : stderr_) += log->data;
        continue;
      }
      return **m;
    }
  }
  // Reads log chunks until stdout contains `text`.
  void WaitForStdout(const std::string& text) {
    while (stdout_.find(text) == std::string::npos) {
      absl::StatusOr<std::optional<Message>> m = ReadMessage(host_.get(), reader_, kTimeout);
      ASSERT_TRUE(m.ok()) << m.status();
      ASSERT_TRUE(m->has_value()) << "EOF before " << text;
      auto* log = std::get_if<LogChunk>(&**m);
      ASSERT_NE(log, nullptr) << DescribeMessage(**m);
      (log->stream == LogStream::kStdout ? stdout_ : stderr_) += log->data;
    }
  }
  // Nothing more after the last message: EOF.
  void ExpectEof() {
    absl::StatusOr<std::optional<Message>> m = ReadMessage(host_.get(), reader_, kTimeout);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_FALSE(m->has_value()) << DescribeMessage(**m);
  }
  // skiff-init's exit code (-1 if it did not exit within the timeout).
  int Wait() {
    absl::Time deadline = absl::Now() + kTimeout;
    while (absl::Now() < deadline) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return -1;
  }

  // Hello, then the spec; returns the Started message's pid.
  int32_t Start(const InstanceSpec& spec) {
    Message hello = Next();
    EXPECT_EQ(hello, Message(Hello{kProtocolVersion}));
    Send(spec);
    Message started = Next();
    auto* s = std::get_if<Started>(&started);
    EXPECT_NE(s, nullptr) << DescribeMessage(started);
    return s == nullptr ? -1 : s->pid;
  }

  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

 private:
  UniqueFd host_;
  pid_t pid_ = -1;
  FrameReader reader_;
  std::string stdout_, stderr_;
};

TEST(SkiffInitTest, RunsTheAppForwardsItsOutputAndReportsItsExitCode) {
  FakeHost host;
  int32_t pid = host.Start(ShellSpec(
      "echo out; echo err >&2; echo \"PORT=$PORT FOO=$FOO PATH=$PATH cwd=$(pwd) uid=$(id -u)\";"
      " echo nofile=$(ulimit -n) core=$(ulimit -c); exit 3"));
  EXPECT_GT(pid, 0);
  EXPECT_EQ(host.Next(), Message(Exited{false, 3}));
  EXPECT_THAT(host.out(), HasSubstr("out\n"));
  EXPECT_EQ(host.err(), "err\n");
  // PORT from the spec replaces the env's; a default PATH; the spec's cwd and user.
  EXPECT_THAT(host.out(), HasSubstr("PORT=9090 FOO=bar PATH=/usr/local/sbin:/usr/local/bin:"));
  EXPECT_THAT(host.out(), HasSubstr("cwd=/tmp uid=" + std::to_string(getuid()) + "\n"));
  // gen1's limits: 65536 fds — or the hard limit, if lower and not ours to raise
  // (CAP_SYS_RESOURCE, which the guest's root has) — and no core dumps.
  rlimit nofile;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  const std::string capped = std::to_string(std::min<rlim_t>(65536, nofile.rlim_max));
  EXPECT_THAT(host.out(), ::testing::AnyOf(HasSubstr("nofile=65536 core=0\n"),
                                           HasSubstr("nofile=" + capped + " core=0\n")));
  host.ExpectEof();
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, LargeOutputArrivesWholeInChunks) {
  FakeHost host;
  host.Start(
      ShellSpec("i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxx;"
                " i=$((i+1)); done"));
  EXPECT_EQ(host.Next(), Message(Exited{false, 0}));
  EXPECT_THAT(host.out(), HasSubstr("line-0-x"));
  EXPECT_THAT(host.out(), HasSubstr("line-1999-x"));
  EXPECT_EQ(std::count(host.out().begin(), host.out().end(), '\n'), 2000);
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, HostSigtermReachesTheAppsTrap) {
  FakeHost host;
  host.Start(
      ShellSpec("trap 'echo got-term; exit 7' TERM; echo ready;"
                " while :; do sleep 0.05; done"));
  host.WaitForStdout("ready\n");
  host.Send(SignalRequest{SIGTERM});
  EXPECT_EQ(host.Next(), Message(Exited{false, 7}));
  EXPECT_THAT(host.out(), HasSubstr("got-term\n"));
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, HostSigkillEndsTheAppAndIsReportedAsASignal) {
  FakeHost host;
  host.Start(ShellSpec("trap '' TERM; echo ready; sleep 100"));
  host.WaitForStdout("ready\n");
  host.Send(SignalRequest{SIGTERM});  // ignored by the app
  host.Send(SignalRequest{SIGKILL});
  EXPECT_EQ(host.Next(), Message(Exited{true, SIGKILL}));
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, AppKilledBySignalIsReportedAsSuch) {
  FakeHost host;
  host.Start(ShellSpec("kill -SEGV $$"));
  EXPECT_EQ(host.Next(), Message(Exited{true, SIGSEGV}));
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, AppLeftoversDieWithItAndDoNotHoldTheReport) {
  FakeHost host;
  absl::Time start = absl::Now();
  // The background sleep keeps stdout open; it is killed when the app exits.
  host.Start(ShellSpec("sleep 30 & echo bg; exit 0"));
  EXPECT_EQ(host.Next(), Message(Exited{false, 0}));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, ExecFailureIsAnErrorFrame) {
  FakeHost host;
  InstanceSpec spec = ShellSpec("");
  spec.argv = {"/nonexistent/app"};
  EXPECT_EQ(host.Next(), Message(Hello{kProtocolVersion}));
  host.Send(spec);
  EXPECT_EQ(host.Next(),
            Message(Error{InitStep::kStartApp, ENOENT, "app: execve(/nonexistent/app)"}));
  host.ExpectEof();
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, NameWithoutSlashIsLookedUpInPath) {
  FakeHost host;
  InstanceSpec spec = ShellSpec("");
  spec.argv = {"sh", "-c", "exit 4"};
  host.Start(spec);
  EXPECT_EQ(host.Next(), Message(Exited{false, 4}));
  EXPECT_EQ(host.Wait(), 0);
}

TEST(SkiffInitTest, BadWorkingDirIsAnErrorFrame) {
  FakeHost host;
  InstanceSpec spec = ShellSpec("exit 0");
  spec.working_dir = "/nonexistent-dir";
  EXPECT_EQ(host.Next(), Message(Hello{kProtocolVersion}));
  host.Send(spec);
  EXPECT_EQ(host.Next(),
            Message(Error{InitStep::kStartApp, ENOENT, "app: chdir(/nonexistent-dir)"}));
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, MalformedSpecFrameIsAnErrorFrame) {
  FakeHost host;
  EXPECT_EQ(host.Next(), Message(Hello{kProtocolVersion}));
  host.SendRaw(std::string("\x01\x00\x00\x00\x63", 5));  // type 99
  Message m = host.Next();
  auto* error = std::get_if<Error>(&m);
  ASSERT_NE(error, nullptr) << DescribeMessage(m);
  EXPECT_EQ(error->step, InitStep::kReceiveSpec);
  EXPECT_EQ(error->err, EPROTO);
  EXPECT_THAT(error->detail, HasSubstr("frame type 99: unknown"));
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, SpecBreakingARuleIsAnErrorFrame) {
  FakeHost host;
  EXPECT_EQ(host.Next(), Message(Hello{kProtocolVersion}));
  InstanceSpec spec = ShellSpec("exit 0");
  spec.root_fstype = "xfs";  // EncodeFrame does not validate: the guest must
  host.SendRaw(EncodeFrame(spec));
  Message m = host.Next();
  auto* error = std::get_if<Error>(&m);
  ASSERT_NE(error, nullptr) << DescribeMessage(m);
  EXPECT_EQ(error->step, InitStep::kReceiveSpec);
  EXPECT_THAT(error->detail, HasSubstr("spec.root_fstype"));
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, MalformedFrameWhileRunningKillsTheAppAndReportsAnError) {
  FakeHost host;
  host.Start(ShellSpec("echo ready; sleep 100"));
  host.WaitForStdout("ready\n");
  host.SendRaw(std::string("\xff\xff\xff\xff", 4));  // a length over the cap
  Message m = host.Next();
  auto* error = std::get_if<Error>(&m);
  ASSERT_NE(error, nullptr) << DescribeMessage(m);
  EXPECT_EQ(error->step, InitStep::kControl);
  EXPECT_EQ(error->err, EPROTO);
  EXPECT_THAT(error->detail, HasSubstr("frame length 4294967295"));
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, UnexpectedMessageWhileRunningIsAnError) {
  FakeHost host;
  host.Start(ShellSpec("echo ready; sleep 100"));
  host.WaitForStdout("ready\n");
  host.Send(ShellSpec("exit 0"));  // a second spec
  Message m = host.Next();
  auto* error = std::get_if<Error>(&m);
  ASSERT_NE(error, nullptr) << DescribeMessage(m);
  EXPECT_EQ(error->step, InitStep::kControl);
  EXPECT_THAT(error->detail, HasSubstr("unexpected message type 1"));
  EXPECT_EQ(host.Wait(), 1);
}

TEST(SkiffInitTest, HostHangupKillsTheAppAndEnds) {
  FakeHost host;
  absl::Time start = absl::Now();
  host.Start(ShellSpec("echo ready; sleep 100"));
  host.WaitForStdout("ready\n");
  host.CloseHostEnd();
  EXPECT_EQ(host.Wait(), 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace skiff::gen2::control
