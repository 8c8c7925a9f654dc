// Fuzz target for the control protocol's decoder: arbitrary bytes from a hostile peer.
// Properties checked on every input: no crash or sanitizer report; one-shot decoding and
// stream decoding (in chunks of every size the input picks) agree; every decoded message
// passes the rules and re-encodes to a frame that decodes to the same message.
//
// libFuzzer build (clang-14 on this machine):
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address -DSKIFF_LIBFUZZER -I.
//     tests/unit/gen2_guest/control_decode_fuzz.cc
//     sandbox/gen2/guest/control/{codec,messages,validate}.cc -o /tmp/control_decode_fuzz
//   /tmp/control_decode_fuzz -max_total_time=60
// Without SKIFF_LIBFUZZER, the main below replays seed frames, their mutations and random
// inputs (a fixed PRNG seed, so runs are reproducible), or the files named on its command
// line (a libFuzzer crash input). Registered as a unit ctest.

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "sandbox/gen2/guest/control/codec.h"
#include "sandbox/gen2/guest/control/messages.h"
#include "sandbox/gen2/guest/control/validate.h"

namespace {

using namespace skiff::gen2::control;

size_t g_decoded = 0;  // messages decoded over the whole run (the replay main reports it)

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "control_decode_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

void CheckMessage(const Message& m) {
  ++g_decoded;
  Check(ValidateMessage(m).empty(), "a decoded message breaks the rules");
  std::string again = EncodeFrame(m);
  Message round;
  size_t consumed = 0;
  std::string error;
  Check(DecodeFrame(again, &round, &consumed, &error) == DecodeStatus::kMessage,
        "a decoded message does not re-decode");
  Check(consumed == again.size() && round == m, "re-encoding changes the message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // One frame at a time over the whole input.
  std::vector<Message> one_shot;
  std::string_view rest = input;
  bool one_shot_failed = false;
  while (true) {
    Message m;
    size_t consumed = 0;
    std::string error;
    DecodeStatus s = DecodeFrame(rest, &m, &consumed, &error);
    if (s == DecodeStatus::kError) {
      Check(!error.empty(), "an error without a reason");
      one_shot_failed = true;
      break;
    }
    if (s == DecodeStatus::kNeedMore) break;
    Check(consumed >= kFrameHeaderBytes && consumed <= rest.size(), "consumed out of range");
    CheckMessage(m);
    one_shot.push_back(std::move(m));
    rest.remove_prefix(consumed);
  }

  // The same bytes as a stream, in chunks whose size the first byte picks.
  const size_t chunk = size == 0 ? 1 : 1 + data[0] % 61;
  FrameReader reader;
  std::vector<Message> streamed;
  bool stream_failed = false;
  for (size_t pos = 0; pos < size && !stream_failed; pos += chunk) {
    reader.Append(input.data() + pos, std::min(chunk, size - pos));
    while (true) {
      Message m;
      std::string error;
      DecodeStatus s = reader.Next(&m, &error);
      if (s == DecodeStatus::kError) {
        stream_failed = true;
        break;
      }
      if (s == DecodeStatus::kNeedMore) break;
      streamed.push_back(std::move(m));
    }
  }
  Check(stream_failed == one_shot_failed, "stream and one-shot decoding disagree on failure");
  Check(streamed == one_shot, "stream and one-shot decoding disagree on messages");
  return 0;
}

#ifndef SKIFF_LIBFUZZER

namespace {

std::vector<std::string> Seeds() {
  InstanceSpec spec;
  spec.argv = {"/bin/hello", "-v"};
  spec.env = {"PATH=/bin", "PORT=8080"};
  spec.working_dir = "/";
  spec.hostname = "i-1";
  spec.network.enabled = true;
  spec.network.address = {10, 0, 0, 2};
  spec.network.prefix_length = 24;
  spec.network.gateway = {10, 0, 0, 1};
  spec.tmpfs_bytes = 64 << 20;
  spec.root_device = "/dev/vda";
  spec.root_fstype = "erofs";
  spec.files = {{"/etc/hostname", "i-1\n"}};
  std::vector<Message> messages = {spec,
                                   SignalRequest{SIGTERM},
                                   Hello{},
                                   Started{2},
                                   LogChunk{LogStream::kStdout, "out\n"},
                                   Exited{true, 15},
                                   Error{InitStep::kNetwork, 19, "SIOCSIFADDR eth0"}};
  std::vector<std::string> seeds;
  std::string all;
  for (const Message& m : messages) {
    seeds.push_back(EncodeFrame(m));
    all += seeds.back();
  }
  seeds.push_back(all);
  return seeds;
}

int Run(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) {
      std::ifstream in(argv[i], std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "control_decode_fuzz: cannot read %s\n", argv[i]);
        return 2;
      }
      Run(std::string(std::istreambuf_iterator<char>(in), {}));
    }
    std::printf("replayed %d inputs, %zu messages decoded\n", argc - 1, g_decoded);
    return 0;
  }
  std::mt19937_64 rng(20261123);
  const std::vector<std::string> seeds = Seeds();
  size_t inputs = 0;
  for (const std::string& s : seeds) {
    Run(s);
    ++inputs;
  }
  const size_t decoded_from_seeds = g_decoded;
  // Mutations of the seeds: byte flips, truncations, insertions, splices.
  for (int iter = 0; iter < 200000; ++iter) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      switch (rng() % 5) {
        case 0:
          s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8)));
          break;
        case 1:
          s[pos] = static_cast<char>(rng());
          break;
        case 2:
          s.resize(pos);
          break;
        case 3:
          s.insert(pos, 1 + rng() % 8, static_cast<char>(rng()));
          break;
        case 4:
          s += seeds[rng() % seeds.size()].substr(0, rng() % 64);
          break;
      }
    }
    Run(s);
    ++inputs;
  }
  // Pure random inputs, some with a plausible header.
  for (int iter = 0; iter < 50000; ++iter) {
    std::string s(rng() % 256, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    if (s.size() >= 5 && iter % 2 == 0) {
      uint32_t len = static_cast<uint32_t>(s.size() - 4);
      for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(len >> (8 * i));
      s[4] = static_cast<char>(iter % 4 == 0 ? 1 + rng() % 2 : 16 + rng() % 5);
    }
    Run(s);
    ++inputs;
  }
  std::printf("%zu inputs, %zu messages decoded (%zu from the %zu seeds)\n", inputs, g_decoded,
              decoded_from_seeds, seeds.size());
  // The mutations must reach past the header checks, or this run proves little.
  if (g_decoded < decoded_from_seeds + 1000) {
    std::fprintf(stderr, "control_decode_fuzz: too few mutated inputs decoded\n");
    return 1;
  }
  return 0;
}

#endif  // SKIFF_LIBFUZZER
