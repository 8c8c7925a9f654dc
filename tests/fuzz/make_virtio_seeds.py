#!/usr/bin/env python3
"""Writes the crafted seeds of tests/fuzz/corpus/virtio_queue/ (input layout: the comment at
the top of virtio_queue_fuzz.cc). Run from anywhere; rewrites the files deterministically.
The corpus's found-* files are inputs scripts/fuzz.sh's libFuzzer runs found new coverage
with, kept so that the g++ replay test starts from them too."""
import os
import struct

BASE = 0x10000
NEXT, WRITE, INDIRECT = 1, 2, 4
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtio_queue")


class Guest:
    def __init__(self):
        self.mem = bytearray(0x7000)

    def put(self, off, data):
        self.mem[off:off + len(data)] = data

    def desc(self, table, i, addr_off, length, flags, nxt):
        self.put(table + 16 * i, struct.pack("<QIHH", BASE + addr_off, length, flags, nxt))

    def avail(self, avail, heads):
        self.put(avail, struct.pack("<HH", 0, len(heads)) +
                 b"".join(struct.pack("<H", h) for h in heads))


def seed(name, device, flags, qsizes, offsets, guest, actions):
    header = bytes([device, flags, qsizes[0], qsizes[1]])
    header += b"".join(struct.pack("<H", o) for o in offsets)
    header += struct.pack("<H", len(guest.mem)) + bytes(6)
    body = b"".join(bytes(a) for a in actions)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(header + bytes(guest.mem) + body)


NOTIFY = lambda q: (0, q, 0, 0)
REINIT = (2, 0, 0, 0)
CONFIG = (3, 0, 7, 0)
ACK = (4, 0, 0, 0)
LOOP = (6, 0, 0, 0)
SEND = lambda n: (7, 0x41, 0, n - 1)
DRAIN = (8, 0, 0, 0)
Q0 = [0x0000, 0x1000, 0x2000]
Q1 = [0x3000, 0x3800, 0x3c00]

# virtio-blk: read sector 1 (header, 512-byte buffer, status).
g = Guest()
g.desc(0, 0, 0x4000, 16, NEXT, 1)
g.desc(0, 1, 0x5000, 512, WRITE | NEXT, 2)
g.desc(0, 2, 0x4100, 1, WRITE, 0)
g.put(0x4000, struct.pack("<IIQ", 0, 0, 1))
g.avail(0x1000, [0])
seed("blk_read", 0, 1, [4, 4], Q0 + Q1, g, [NOTIFY(0), CONFIG, ACK])

# virtio-blk: write sector 2 through an indirect table, then flush and get-id.
g = Guest()
g.desc(0, 0, 0x6000, 48, INDIRECT, 0)
g.desc(0x6000, 0, 0x4000, 16, NEXT, 1)
g.desc(0x6000, 1, 0x5000, 512, NEXT, 2)
g.desc(0x6000, 2, 0x4100, 1, WRITE, 0)
g.desc(0, 1, 0x4200, 16, NEXT, 2)
g.desc(0, 2, 0x4300, 1, WRITE, 0)
g.desc(0, 3, 0x4400, 16, NEXT, 4)
g.desc(0, 4, 0x4500, 21, WRITE, 0)
g.put(0x4000, struct.pack("<IIQ", 1, 0, 2))
g.put(0x4200, struct.pack("<IIQ", 4, 0, 0))
g.put(0x4400, struct.pack("<IIQ", 8, 0, 0))
g.avail(0x1000, [0, 1, 3])
seed("blk_write_indirect", 0, 1, [4, 4], Q0 + Q1, g, [NOTIFY(0), ACK, (1, 0x02, 0x10, 5), NOTIFY(0)])

# virtio-blk: a descriptor loop (breaks the device), then a reset and a fresh start.
g = Guest()
g.desc(0, 0, 0x4000, 16, NEXT, 1)
g.desc(0, 1, 0x4000, 16, NEXT, 0)
g.avail(0x1000, [0])
seed("blk_loop_then_reset", 0, 0, [4, 4], Q0 + Q1, g,
     [NOTIFY(0), ACK, (1, 0x02, 0x10, 0), REINIT, NOTIFY(0)])

# virtio-net: one transmit frame, receive buffers, a frame from the host.
g = Guest()
g.desc(0, 0, 0x5000, 2048, WRITE, 0)
g.desc(0, 1, 0x5800, 2048, WRITE, 0)
g.avail(0x1000, [0, 1])
g.desc(0x3000, 0, 0x4000, 12, NEXT, 1)
g.desc(0x3000, 1, 0x4100, 60, 0, 0)
g.put(0x4100, b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02\x88\xb5" + b"p" * 46)
g.avail(0x3800, [0])
seed("net_both_ways", 1, 1, [4, 4], Q0 + Q1, g,
     [NOTIFY(1), DRAIN, SEND(60), LOOP, NOTIFY(0), LOOP, ACK])

# virtio-console: "hello" out, bytes in, the host drains.
g = Guest()
g.desc(0, 0, 0x5000, 64, WRITE, 0)
g.avail(0x1000, [0])
g.desc(0x3000, 0, 0x4000, 5, 0, 0)
g.put(0x4000, b"hello")
g.avail(0x3800, [0])
seed("console_both_ways", 2, 1, [4, 4], Q0 + Q1, g,
     [NOTIFY(1), DRAIN, SEND(10), LOOP, NOTIFY(0), LOOP, ACK])
