#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/net_frame/ (run from the repo root).

Each seed is the fuzzer's input (fuzz/net_frame_fuzzer.cc): 8 parameter bytes (flags, TX
descriptors, u16 MTU selector, u16 RX buffer size selector, RX buffer count, reserved)
followed by the TX chain: a virtio_net_hdr (12 bytes, 10 with the legacy flag) and a frame.
"""
import os
import struct

NEEDS_CSUM = 1
MTU_1500 = 1500 - 68
MTU_65520 = 65520 - 68


def params(flags=0, descs=1, mtu=MTU_1500, rx_buf=2048, rx_bufs=8):
    return struct.pack('<BBHHBB', flags, descs - 1, mtu, rx_buf - 1, rx_bufs, 0)


def net_hdr(flags=0, gso=0, csum_start=0, csum_offset=0, legacy=False):
    h = struct.pack('<BBHHHH', flags, gso, 0, 0, csum_start, csum_offset)
    return h if legacy else h + struct.pack('<H', 0)


def csum(data, s=0):
    if len(data) % 2:
        data += b'\0'
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def udp_frame(payload, partial):
    src, dst = bytes([192, 168, 65, 2]), bytes([192, 168, 65, 1])
    udp_len = 8 + len(payload)
    ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, src, dst))
    ip[10:12] = struct.pack('!H', ~csum(bytes(ip)) & 0xffff)
    pseudo = csum(src + dst + struct.pack('!HH', 17, udp_len))
    udp = bytearray(struct.pack('!HHHH', 40000, 53, udp_len, 0) + payload)
    if partial:
        udp[6:8] = struct.pack('!H', pseudo)
    else:
        udp[6:8] = struct.pack('!H', (~csum(bytes(udp), pseudo) & 0xffff) or 0xffff)
    eth = bytes([0x52, 0x55, 192, 168, 65, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 8, 0])
    return eth + bytes(ip) + bytes(udp)


SEEDS = {
    'plain_udp': params() + net_hdr() + udp_frame(b'hello', False),
    'partial_csum_udp': params(descs=3) + net_hdr(NEEDS_CSUM, 0, 34, 6) + udp_frame(b'x' * 301, True),
    'legacy_header': params(flags=1) + net_hdr(legacy=True) + udp_frame(b'legacy', False),
    'no_mergeable_small_buffer': params(flags=2, rx_buf=64) + net_hdr() + udp_frame(b'y' * 200, False),
    'csum_start_past_end': params() + net_hdr(NEEDS_CSUM, 0, 2000, 6) + udp_frame(b'z', True),
    'csum_offset_past_end': params() + net_hdr(NEEDS_CSUM, 0, 34, 0xfff0) + udp_frame(b'z', True),
    'csum_in_ethernet_header': params() + net_hdr(NEEDS_CSUM, 0, 2, 0) + udp_frame(b'z', True),
    'gso_requested': params() + net_hdr(0, 1) + udp_frame(b'gso', False),
    'short_chain': params() + b'\0' * 5,
    'header_only': params() + net_hdr(),
    'runt_frame': params() + net_hdr() + b'\xff' * 8,
    'oversize_for_mtu': params(mtu=0) + net_hdr() + udp_frame(b'o' * 200, False),
    'big_frame_small_buffers': params(flags=4, descs=8, mtu=MTU_65520, rx_buf=1024, rx_bufs=23) +
    net_hdr(NEEDS_CSUM, 0, 34, 6) + udp_frame(bytes(range(256)) * 64, True),
    'no_rx_buffers': params(rx_bufs=0) + net_hdr() + udp_frame(b'queued', False),
    'tiny_rx_buffers': params(rx_buf=4, rx_bufs=20) + net_hdr() + udp_frame(b'tiny', False),
}

if __name__ == '__main__':
    out = os.path.join('fuzz', 'corpus', 'net_frame')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed_' + name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds in {out}')
