#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/p9_codec/ (run from the repo root).

The fuzzer prepends Tversion + Tattach(fid 0) before feeding a seed to a Session, so the
multi-message seeds below start from an attached fid 0 (see fuzz/p9_codec_fuzzer.cc)."""
import os
import struct

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack('<H', len(b)) + b


def msg(typ, tag, body):
    return struct.pack('<IBH', 7 + len(body), typ, tag) + body


def tversion(msize=65536, version='9P2000.L'):
    return msg(100, NOTAG, struct.pack('<I', msize) + s(version))


def tattach(tag, fid, uname='root', aname='', n_uname=NOFID):
    return msg(104, tag, struct.pack('<II', fid, NOFID) + s(uname) + s(aname) +
               struct.pack('<I', n_uname))


def twalk(tag, fid, newfid, names):
    return msg(110, tag, struct.pack('<IIH', fid, newfid, len(names)) +
               b''.join(s(n) for n in names))


def tlopen(tag, fid, flags):
    return msg(12, tag, struct.pack('<II', fid, flags))


def tlcreate(tag, fid, name, flags, mode, gid=0):
    return msg(14, tag, struct.pack('<I', fid) + s(name) + struct.pack('<III', flags, mode, gid))


def tread(tag, fid, offset, count):
    return msg(116, tag, struct.pack('<IQI', fid, offset, count))


def twrite(tag, fid, offset, data):
    return msg(118, tag, struct.pack('<IQI', fid, offset, len(data)) + data)


def treaddir(tag, fid, offset, count):
    return msg(40, tag, struct.pack('<IQI', fid, offset, count))


def tclunk(tag, fid):
    return msg(120, tag, struct.pack('<I', fid))


def tremove(tag, fid):
    return msg(122, tag, struct.pack('<I', fid))


def tflush(tag, oldtag):
    return msg(108, tag, struct.pack('<H', oldtag))


def tgetattr(tag, fid, mask=0x3FFF):
    return msg(24, tag, struct.pack('<IQ', fid, mask))


def tsetattr(tag, fid, valid, mode=0, uid=0, gid=0, size=0):
    return msg(26, tag, struct.pack('<IIIIIQQQQQ', fid, valid, mode, uid, gid, size, 0, 0, 0, 0))


def tmkdir(tag, dfid, name, mode=0o40755, gid=0):
    return msg(72, tag, struct.pack('<I', dfid) + s(name) + struct.pack('<II', mode, gid))


def tunlinkat(tag, dfid, name, flags):
    return msg(76, tag, struct.pack('<I', dfid) + s(name) + struct.pack('<I', flags))


def trenameat(tag, olddir, old, newdir, new):
    return msg(74, tag, struct.pack('<I', olddir) + s(old) + struct.pack('<I', newdir) + s(new))


def tstatfs(tag, fid):
    return msg(8, tag, struct.pack('<I', fid))


def txattrwalk(tag, fid, newfid, name):
    return msg(30, tag, struct.pack('<II', fid, newfid) + s(name))


RDONLY, WRONLY, RDWR, TRUNC, DIRECTORY = 0, 1, 2, 0o1000, 0o200000

seeds = {
    # Single frames, as the brief's minimum.
    'version': tversion(),
    'attach': tattach(1, 0),
    'walk': twalk(2, 0, 1, ['dir', 'a']),
    'read': tread(3, 1, 0, 4096),
    'readdir': treaddir(4, 1, 0, 8192),
    # Sequences (after the fuzzer's own version + attach).
    'session_read_file': twalk(2, 0, 1, ['file']) + tlopen(3, 1, RDONLY) +
    tread(4, 1, 0, 4096) + tread(5, 1, 8, 4) + tclunk(6, 1),
    'session_readdir': twalk(2, 0, 1, ['dir']) + tlopen(3, 1, RDONLY | DIRECTORY) +
    treaddir(4, 1, 0, 60) + treaddir(5, 1, 2, 8192) + tclunk(6, 1),
    'session_write': twalk(2, 0, 1, ['file']) + tlopen(3, 1, RDWR | TRUNC) +
    twrite(4, 1, 5, b'hello') + tsetattr(5, 1, 8, size=2) + tgetattr(6, 1) + tclunk(7, 1),
    'session_create_remove': twalk(2, 0, 1, []) + tlcreate(3, 1, 'new', RDWR, 0o100644) +
    twrite(4, 1, 0, b'x') + tremove(5, 1) + tmkdir(6, 0, 'd') +
    trenameat(7, 0, 'd', 0, 'e') + tunlinkat(8, 0, 'e', 0x200),
    'session_live_flush': twalk(2, 0, 1, ['live']) + tlopen(3, 1, RDONLY) +
    tread(4, 1, 0, 4096) + tread(5, 1, 0, 4096) + tflush(6, 5) + tread(7, 1, 0, 4096),
    'session_ctl': twalk(2, 0, 1, ['cb']) + tlopen(3, 1, RDWR) +
    twrite(4, 1, 0, b'tcp:127.0.0.1:80') + tread(5, 1, 0, 100) + twrite(6, 1, 0, b'fail'),
    'session_misc': tstatfs(2, 0) + txattrwalk(3, 0, 1, 'security.selinux') +
    twalk(4, 0, 2, ['..', 'dir', '.', 'sub']) + twalk(5, 0, 0, ['rodir']) +
    tmkdir(6, 0, 'x') + tversion(8192),
    'bad_walk_name': twalk(2, 0, 1, ['a/b']),
    'unknown_type': msg(112, 2, struct.pack('<IB', 0, 0)),
}

out = 'fuzz/corpus/p9_codec'
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, 'seed_' + name), 'wb') as f:
        f.write(data)
print('wrote %d seeds to %s' % (len(seeds), out))
