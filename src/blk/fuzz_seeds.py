#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/blk_request/ (run from the repo root).

Each seed is the fuzzer's input (fuzz/blk_request_fuzzer.cc): 8 parameter bytes (flags,
readable descriptors, u16 writable bytes, writable descriptors, 3 reserved) followed by the
device-readable bytes (request header, then write data or discard segments).
"""
import os
import struct

IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES = 0, 1, 4, 8, 11, 13


def hdr(typ, sector=0):
    return struct.pack('<IIQ', typ, 0, sector)


def seg(sector, num, flags=0):
    return struct.pack('<QII', sector, num, flags)


def seed(readable, writable, flags=0, rdesc=1, wdesc=1):
    return struct.pack('<BBHB3x', flags, rdesc - 1, writable, wdesc - 1) + readable


seeds = {
    'read_one_sector': seed(hdr(IN, 8), 513),
    'read_split_pages': seed(hdr(IN, 100), 4096 + 1, rdesc=2, wdesc=8),
    'write_one_sector': seed(hdr(OUT, 16) + bytes(range(256)) * 2, 1),
    'write_indirect': seed(hdr(OUT, 2040) + b'\x5a' * 4096, 1, flags=4, rdesc=5),
    'write_read_only': seed(hdr(OUT, 0) + b'\x00' * 512, 1, flags=1),
    'write_writethrough': seed(hdr(OUT, 1) + b'\x11' * 512, 1, flags=8 | 16),
    'flush': seed(hdr(FLUSH), 1),
    'flush_out_legacy': seed(hdr(5), 1),
    'get_id': seed(hdr(GET_ID), 21),
    'get_id_short': seed(hdr(GET_ID), 5),
    'discard_one': seed(hdr(DISCARD) + seg(0, 128), 1),
    'discard_three': seed(hdr(DISCARD) + seg(0, 8) + seg(64, 8) + seg(2000, 48), 1, rdesc=3),
    'discard_unmap_flag': seed(hdr(DISCARD) + seg(0, 8, 1), 1),
    'discard_ragged': seed(hdr(DISCARD) + seg(0, 8)[:13], 1),
    'discard_too_many': seed(hdr(DISCARD) + seg(0, 1) * 9, 1),
    'discard_not_negotiated': seed(hdr(DISCARD) + seg(0, 8), 1, flags=2),
    'write_zeroes_unmap': seed(hdr(WRITE_ZEROES) + seg(10, 20, 1), 1),
    'write_zeroes_bad_flags': seed(hdr(WRITE_ZEROES) + seg(10, 20, 6), 1),
    'write_zeroes_overflow': seed(hdr(WRITE_ZEROES) + seg(0xfffffffffffffff8, 16), 1),
    'read_past_end': seed(hdr(IN, 2047), 1025),
    'read_sector_overflow': seed(hdr(IN, 0xffffffffffffffff), 513),
    'read_not_multiple': seed(hdr(IN), 100),
    'unknown_type': seed(hdr(0xdeadbeef), 1),
    'short_header': seed(hdr(IN)[:10], 513),
    'no_status_byte': seed(hdr(OUT) + b'\x00' * 512, 0),
    'header_split': seed(hdr(IN, 3), 513, rdesc=4, wdesc=2),
}
d = os.path.join('fuzz', 'corpus', 'blk_request')
os.makedirs(d, exist_ok=True)
for k, v in seeds.items():
    with open(os.path.join(d, 'seed_' + k), 'wb') as f:
        f.write(v)
