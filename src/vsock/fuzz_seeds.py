#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/vsock_{packet,handshake}/ (run from the repo root)."""
import os
import struct

def hdr(src_cid=3, dst_cid=2, src_port=1024, dst_port=2376, length=0, typ=1, op=1, flags=0,
        buf_alloc=262144, fwd_cnt=0):
    return struct.pack('<QQIIIHHIII', src_cid, dst_cid, src_port, dst_port, length, typ, op,
                       flags, buf_alloc, fwd_cnt)

packets = {
    'request': hdr(op=1),
    'response': hdr(op=2),
    'rst': hdr(op=3),
    'shutdown_both': hdr(op=4, flags=3),
    'rw_hello': hdr(op=5, length=5) + b'hello',
    'credit_update': hdr(op=6, fwd_cnt=4096),
    'credit_request': hdr(op=7),
    'len_past_chain': hdr(op=5, length=1000) + b'x',
    'wrong_src_cid': hdr(src_cid=7, op=5),
    'bad_type': hdr(typ=2),
    'unknown_op': hdr(op=99),
    'short': hdr()[:20],
}
handshakes = {
    'ok': b'00000003.00000948\n',
    'upper': b'00000003.0000ABCD\n',
    'wrong_cid': b'00000004.00000948\n',
    'no_newline': b'00000003.00000948x',
    'short': b'3.948\n',
    'garbage': b'GET / HTTP/1.1\r\n\r\n',
}
for name, corpus in (('vsock_packet', packets), ('vsock_handshake', handshakes)):
    d = os.path.join('fuzz', 'corpus', name)
    os.makedirs(d, exist_ok=True)
    for k, v in corpus.items():
        with open(os.path.join(d, 'seed_' + k), 'wb') as f:
            f.write(v)
