#!/usr/bin/env python3
"""Writes the seed corpora for fuzz/vhost_message_fuzzer.cc and fuzz/virtqueue_fuzzer.cc.

Usage: src/vhost/fuzz_seeds.py [FUZZ_DIR]   (default: the repository's fuzz/)
Seeds are small valid inputs; the fuzzers mutate them into hostile ones.
"""
import os
import struct
import sys

VERSION, NEED_REPLY = 0x1, 0x8


def msg(request, payload=b"", flags=VERSION, fds=0):
    return bytes([fds]) + struct.pack("<III", request, flags, len(payload)) + payload


def message_seeds():
    region = struct.pack("<QQQQ", 0, 256 << 20, 0x7F0000000000, 0)
    return {
        "get_features": msg(1),
        "set_features": msg(2, struct.pack("<Q", (1 << 32) | (1 << 30) | (1 << 29))),
        "set_protocol_features": msg(16, struct.pack("<Q", 0x20B)),
        "set_mem_table_1": msg(5, struct.pack("<II", 1, 0) + region, VERSION | NEED_REPLY, fds=1),
        "set_mem_table_2": msg(5, struct.pack("<II", 2, 0) + region
                               + struct.pack("<QQQQ", 1 << 32, 1 << 20, 0x7F1000000000, 0), fds=2),
        "set_vring_num": msg(8, struct.pack("<II", 0, 256)),
        "set_vring_addr": msg(9, struct.pack("<IIQQQQ", 1, 0, 0x7F0000001000, 0x7F0000003000,
                                             0x7F0000002000, 0)),
        "set_vring_base": msg(10, struct.pack("<II", 0, 0)),
        "get_vring_base": msg(11, struct.pack("<II", 2, 0)),
        "set_vring_kick": msg(12, struct.pack("<Q", 1), fds=1),
        "set_vring_call_nofd": msg(13, struct.pack("<Q", 0x101)),
        "set_vring_enable": msg(18, struct.pack("<II", 0, 1)),
        "get_config": msg(24, struct.pack("<III", 0, 8, 0) + bytes(8)),
        "set_config": msg(25, struct.pack("<III", 4, 4, 0) + b"\x01\x02\x03\x04"),
        "set_log_base": msg(6, struct.pack("<QQ", 4096, 0), fds=1),
        "get_inflight_fd": msg(31, struct.pack("<QQHHI", 0, 0, 2, 256, 0)),
        "add_mem_reg": msg(37, struct.pack("<Q", 0) + region, fds=1),
        "reply_u64": msg(1, struct.pack("<Q", 1 << 30), VERSION | 0x4),
    }


# virtqueue_fuzzer layout: 16 bytes of parameters, then region 0's image (GPA 0x10000).
GPA0 = 0x10000
DESC, AVAIL, USED, DATA = 0x000, 0x100, 0x200, 0x300
NEXT, WRITE, INDIRECT = 1, 2, 4


class Image:
    def __init__(self):
        self.mem = bytearray(0x400)

    def put(self, off, data):
        end = off + len(data)
        if end > len(self.mem):
            self.mem.extend(bytes(end - len(self.mem)))
        self.mem[off:end] = data

    def desc(self, table_off, i, addr, length, flags, nxt=0):
        self.put(table_off + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, heads, idx=None):
        self.put(AVAIL, struct.pack("<HH", 0, len(heads) if idx is None else idx))
        for slot, h in enumerate(heads):
            self.put(AVAIL + 4 + 2 * slot, struct.pack("<H", h))


def params(size_log2=3, event_idx=False, base=0):
    return struct.pack("<BBHHHH6x", size_log2, 1 if event_idx else 0, base, DESC, AVAIL, USED)


def virtqueue_seeds():
    seeds = {}
    # A request/response chain (readable 16 bytes, writable 32 bytes).
    img = Image()
    img.put(DATA, b"request-bytes-16")
    img.desc(DESC, 0, GPA0 + DATA, 16, NEXT, 1)
    img.desc(DESC, 1, GPA0 + DATA + 0x40, 32, WRITE)
    img.avail([0])
    seeds["direct"] = params() + bytes(img.mem)
    # Two chains, EVENT_IDX.
    img.desc(DESC, 2, GPA0 + DATA + 0x80, 8, 0)
    img.avail([0, 2])
    seeds["two_chains_event_idx"] = params(event_idx=True) + bytes(img.mem)
    # Indirect table with three entries, reached after one direct descriptor.
    img = Image()
    table = 0x380
    img.put(DATA, b"hdr!payload")
    img.desc(table, 0, GPA0 + DATA + 4, 7, NEXT, 1)
    img.desc(table, 1, GPA0 + DATA + 0x20, 16, WRITE | NEXT, 2)
    img.desc(table, 2, GPA0 + DATA + 0x40, 4, WRITE)
    img.desc(DESC, 0, GPA0 + DATA, 4, NEXT, 1)
    img.desc(DESC, 1, GPA0 + table, 48, INDIRECT)
    img.avail([0])
    seeds["mixed_indirect"] = params() + bytes(img.mem)
    # Wrapping indices: base 65535, avail idx 1 (two entries).
    img = Image()
    img.desc(DESC, 0, GPA0 + DATA, 8, 0)
    img.desc(DESC, 1, GPA0 + DATA + 8, 8, WRITE)
    img.put(AVAIL, struct.pack("<HH", 0, 1))
    img.put(AVAIL + 4 + 2 * 7, struct.pack("<H", 0))
    img.put(AVAIL + 4 + 2 * 0, struct.pack("<H", 1))
    seeds["wrap"] = params(base=65535) + bytes(img.mem)
    # A descriptor loop (must mark the queue broken).
    img = Image()
    img.desc(DESC, 0, GPA0 + DATA, 8, NEXT, 1)
    img.desc(DESC, 1, GPA0 + DATA, 8, NEXT, 0)
    img.avail([0])
    seeds["loop"] = params() + bytes(img.mem)
    return seeds


def main():
    fuzz_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz")
    for corpus, seeds in (("vhost_message", message_seeds()), ("virtqueue", virtqueue_seeds())):
        out = os.path.join(fuzz_dir, "corpus", corpus)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, "seed_" + name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
