// The 8250 UART: transmitted bytes reach the output fd (and nowhere in quiet mode), the
// registers Linux's driver probes (scratch, IER, loopback MSR), THRE and RDA interrupts
// and IIR's acknowledgement; and the i8042's reset command.

#include "sandbox/gen2/devices/serial.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "sandbox/common/unique_fd.h"
#include "sandbox/gen2/devices/i8042.h"

namespace skiff::gen2 {
namespace {

class CountingInterrupt : public Interrupt {
 public:
  void Trigger() override { ++count; }
  std::atomic<int> count{0};
};

uint8_t In(Serial& s, uint64_t reg) {
  uint8_t v = 0;
  s.Read(reg, std::span(&v, 1));
  return v;
}
void Out(Serial& s, uint64_t reg, uint8_t v) { s.Write(reg, std::span(&v, 1)); }

std::string Drain(int fd) {
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(SerialTest, TransmitsToTheOutputFd) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd r(p[0]), w(p[1]);
  Serial serial(w.get(), nullptr);
  for (char c : std::string("hi\n")) Out(serial, 0, static_cast<uint8_t>(c));
  EXPECT_EQ(Drain(r.get()), "hi\n");
  EXPECT_EQ(serial.bytes_transmitted(), 3u);
  // LSR: transmitter empty and idle, no data.
  EXPECT_EQ(In(serial, 5), 0x60);
}

TEST(SerialTest, QuietDropsOutput) {
  Serial serial(-1, nullptr);
  Out(serial, 0, 'x');
  EXPECT_EQ(serial.bytes_transmitted(), 1u);
}

TEST(SerialTest, ProbeRegisters) {
  Serial serial(-1, nullptr);
  Out(serial, 7, 0xa5);
  EXPECT_EQ(In(serial, 7), 0xa5);  // scratch
  Out(serial, 1, 0x0f);
  EXPECT_EQ(In(serial, 1), 0x0f);  // IER keeps its 4 bits
  Out(serial, 1, 0xff);
  EXPECT_EQ(In(serial, 1), 0x0f);
  // Loopback: MCR = LOOP | OUT2 | RTS → MSR's top nibble 0x90 (DCD, CTS), what Linux checks.
  Out(serial, 4, 0x1a);
  EXPECT_EQ(In(serial, 6) & 0xf0, 0x90);
  // In loopback, a transmitted byte is received.
  Out(serial, 0, 'L');
  EXPECT_EQ(In(serial, 5) & 1, 1);
  EXPECT_EQ(In(serial, 0), 'L');
  EXPECT_EQ(serial.bytes_transmitted(), 0u);
  // Divisor latch.
  Out(serial, 4, 0x08);
  Out(serial, 3, 0x83);
  Out(serial, 0, 0x01);
  Out(serial, 1, 0x00);
  EXPECT_EQ(In(serial, 0), 0x01);
  Out(serial, 3, 0x03);
  EXPECT_EQ(In(serial, 1), 0x0f);  // IER again, not DLM
}

TEST(SerialTest, ThreInterrupt) {
  CountingInterrupt irq;
  Serial serial(-1, &irq);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x01);  // nothing pending
  Out(serial, 1, 0x02);                   // enable THRE: pending at once
  EXPECT_EQ(irq.count, 1);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x02);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x01);  // reading IIR acknowledged it
  Out(serial, 0, 'a');                    // transmit: empty again
  EXPECT_EQ(irq.count, 2);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x02);
  Out(serial, 1, 0x00);
  Out(serial, 0, 'b');
  EXPECT_EQ(irq.count, 2);  // disabled: no interrupt
}

TEST(SerialTest, ReceiveAndRdaInterrupt) {
  CountingInterrupt irq;
  Serial serial(-1, &irq);
  Out(serial, 1, 0x01);
  const uint8_t in[] = {'o', 'k'};
  serial.QueueInput(in);
  EXPECT_EQ(irq.count, 1);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x04);
  EXPECT_EQ(In(serial, 5) & 1, 1);
  EXPECT_EQ(In(serial, 0), 'o');
  EXPECT_EQ(In(serial, 0), 'k');
  EXPECT_EQ(In(serial, 5) & 1, 0);
  EXPECT_EQ(In(serial, 2) & 0x0f, 0x01);
  // FCR with "clear receive FIFO".
  serial.QueueInput(in);
  Out(serial, 2, 0x03);
  EXPECT_EQ(In(serial, 5) & 1, 0);
  EXPECT_EQ(In(serial, 2) & 0xc0, 0xc0);  // FIFO enabled shows in IIR
}

TEST(I8042Test, ResetCommandEndsTheVmAndNothingElseDoes) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  auto out = [&](uint64_t off, uint8_t v) { kbd.Write(off, std::span(&v, 1)); };
  auto in = [&](uint64_t off) {
    uint8_t v = 0x77;
    kbd.Read(off, std::span(&v, 1));
    return v;
  };
  EXPECT_EQ(in(I8042::kCommandOffset), 0);  // status: buffers empty
  EXPECT_EQ(in(I8042::kDataOffset), 0);
  out(I8042::kCommandOffset, 0xaa);  // self test: ignored
  out(I8042::kDataOffset, 0xfe);     // 0xfe on the data port is not the command
  EXPECT_EQ(resets, 0);
  out(I8042::kCommandOffset, I8042::kResetCommand);
  EXPECT_EQ(resets, 1);
}

}  // namespace
}  // namespace skiff::gen2
