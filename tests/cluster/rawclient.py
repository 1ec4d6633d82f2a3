#!/usr/bin/env python3
"""Raw-socket clients for the resource-limit cluster tests (issue 12).

They speak the wire protocol by hand (src/wire/frame.h, the HELLO of
src/transport/handshake.h) so they can misbehave as no moonpool program
would: never read, trickle a frame, hold idle sockets, flood one actor.
Each mode waits for an event (the node closing the connection, a reply
count, stdin's end), never for a guessed time, and prints one result line.

  rawclient.py noread   HOST:PORT NS TYPE MAXFRAMES
  rawclient.py slow     HOST:PORT NS FRAME_PAUSE_MS
  rawclient.py idle     HOST:PORT[,...] COUNT    (holds until stdin ends)
  rawclient.py flood    HOST:PORT NS TARGET COUNT

If the handshake changes (authentication), hello() is the one place to adapt.
"""
import os
import resource
import select
import socket
import struct
import sys
import time

MAGIC = b"MPOL"
VERSION = 3  # wire/frame.h: 3 adds the request id of REQUEST frames
REQUEST, RESPONSE, ONEWAY, SYSTEM = 1, 2, 3, 4
HELLO_VERSION = 2  # transport/handshake.h: nonces, then AUTH (open mode here)
MP_EQUEUEFULL = -10


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


ORIGIN = int.from_bytes(os.urandom(8), "little") | 1  # this client's request-id origin


def frame(kind, corr=0, target=b"", method=b"", payload=b"", ttl_ms=60000, status=0):
    body = MAGIC + struct.pack("<BBHQBBIi", VERSION, kind, 0, corr, 0, 0, ttl_ms, status)
    if kind == REQUEST:  # origin, sequence (the correlation), low mark
        body += struct.pack("<QQQ", ORIGIN, corr, 1) if corr else struct.pack("<QQQ", 0, 0, 0)
    for f in (target, b"", method, b""):  # target, sender, method, idempotency key
        body += struct.pack("<H", len(f)) + f
    body += struct.pack("<H", 0)  # cache updates
    body += struct.pack("<I", len(payload)) + payload
    body += struct.pack("<I", crc32c(body))
    return struct.pack("<I", len(body)) + body


def hello():
    p = struct.pack("<HB", HELLO_VERSION, 0) + os.urandom(32)  # open mode, nonce
    return frame(SYSTEM, method=b"hello", payload=p, ttl_ms=0)


def auth(ns, addr, inc=1):
    p = struct.pack("<H", len(addr)) + addr + struct.pack("<I", inc)
    p += struct.pack("<H", len(ns)) + ns + struct.pack("<B", 0)  # no proof (open mode)
    return frame(SYSTEM, method=b"auth", payload=p, ttl_ms=0)


def connect(hostport):
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Reader:
    """Frames from the node: (kind, status, method, payload)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def feed(self):
        d = self.s.recv(1 << 16)
        if not d:
            raise EOFError
        self.buf += d

    def frames(self):
        out = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack_from("<I", self.buf, 0)
            if len(self.buf) < 4 + n:
                break
            f, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
            kind = f[5]
            (status,) = struct.unpack_from("<i", f, 22)
            pos = 26 + (24 if kind == REQUEST else 0)
            fields = []
            for _ in range(4):
                (ln,) = struct.unpack_from("<H", f, pos)
                fields.append(f[pos + 2:pos + 2 + ln])
                pos += 2 + ln
            (ncu,) = struct.unpack_from("<H", f, pos)
            pos += 2
            for _ in range(ncu):
                (ln,) = struct.unpack_from("<H", f, pos)
                pos += 2 + ln
                (ln,) = struct.unpack_from("<H", f, pos)
                pos += 2 + ln + 4
            (pl,) = struct.unpack_from("<I", f, pos)
            out.append((kind, status, fields[2], f[pos + 4:pos + 4 + pl]))
        return out


def handshake(hostport, ns, claim):
    s = connect(hostport)
    s.sendall(hello())
    r = Reader(s)
    got = []
    sent_auth = False
    while not any(m == b"hello_ok" for _, _, m, _ in got):
        if not sent_auth and any(m == b"hello" for _, _, m, _ in got):
            s.sendall(auth(ns, claim))  # the dialer proves first, after the node's HELLO
            sent_auth = True
        r.feed()
        got += r.frames()
        for _, st, m, p in got:
            if m == b"hello_refused":
                sys.exit("handshake refused: %d %r" % (st, p))
    return s, r


def mode_noread(hostport, ns, typ, maxframes):
    """Send requests to 64 actors, never read a reply, until the node cuts
    the connection (or MAXFRAMES were sent: the limit did not act)."""
    s, _ = handshake(hostport, ns.encode(), b"127.0.0.1:1")
    # 64 frames, reused: the node echoes the correlation id, it does not
    # track it, so the same bytes can be sent again and again.
    batch = b"".join(frame(REQUEST, corr=i + 1, target=b"%s::%s/nr%d" % (ns.encode(), typ.encode(), i),
                           method=b"balance", payload=b"{}") for i in range(64))
    s.settimeout(None)
    sent = 0
    t0 = time.monotonic()
    try:
        while sent < maxframes:
            s.sendall(batch)
            sent += 64
    except (BrokenPipeError, ConnectionResetError) as e:
        print("noread: cut by the node after %d requests sent, %.1f s (%s)" %
              (sent, time.monotonic() - t0, type(e).__name__))
        return 0
    print("noread: never cut: %d requests sent" % sent)
    return 1


def mode_slow(hostport, ns, pause_ms):
    """After the handshake, send one frame a byte at a time, pausing
    PAUSE_MS between bytes, reading what the node sends (keep-alives), until
    the node closes the connection."""
    s, r = handshake(hostport, ns.encode(), b"127.0.0.1:2")
    f = frame(ONEWAY, target=b"%s::BankAccount/slow" % ns.encode(), method=b"balance",
              payload=b"x" * 200)
    t0 = time.monotonic()
    i = 0
    try:
        while i < len(f):
            s.sendall(f[i:i + 1])
            i += 1
            end = time.monotonic() + pause_ms / 1000.0
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                rd, _, _ = select.select([s], [], [], left)
                if rd:
                    r.feed()  # EOFError when the node closes
                    r.frames()
    except (EOFError, BrokenPipeError, ConnectionResetError) as e:
        print("slow: closed by the node after %d of %d bytes, %.2f s after the first byte (%s)" %
              (i, len(f), time.monotonic() - t0, type(e).__name__))
        return 0
    print("slow: the whole frame (%d bytes) went through; never closed" % len(f))
    return 1


def mode_idle(hostports, count):
    """Open COUNT sockets to each node that never send a byte, print a
    line, hold them until stdin ends, then report how many were closed."""
    addrs = [h.rsplit(":", 1) for h in hostports.split(",")]
    need = count * len(addrs) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    socks = []
    for host, port in addrs:
        for _ in range(count):
            s = socket.socket()
            s.settimeout(30)
            s.connect((host, int(port)))
            socks.append(s)
    print("idle: %d sockets open (%d per node)" % (len(socks), count), flush=True)
    sys.stdin.read()
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            while True:  # the node's HELLO may be there first
                if s.recv(1 << 16) == b"":
                    closed += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print("idle: %d of %d closed by the nodes" % (closed, len(socks)), flush=True)
    return 0


def mode_flood(hostport, ns, target, count):
    """COUNT deposits (unique op ids, amount 1) to one actor, sent as fast
    as the socket takes them while the replies are read; prints how many
    ended OK, MP_EQUEUEFULL, or otherwise."""
    s, r = handshake(hostport, ns.encode(), b"127.0.0.1:3")
    s.setblocking(False)
    tgt = b"%s::%s" % (ns.encode(), target.encode())
    out = bytearray()
    nxt = 0
    ok = full = other = 0
    others = {}
    keepalive = frame(SYSTEM, method=b"keepalive", ttl_ms=0)
    last_sent = time.monotonic()
    while ok + full + other < count:
        # Waiting for replies, the client still shows it is alive (as a
        # node does), or the node closes it after peer_timeout.
        if not out and time.monotonic() - last_sent > 0.5:
            out += keepalive
        while nxt < count and len(out) < (1 << 20):
            p = b'{"op":"f%d","amount":1}' % nxt
            nxt += 1
            out += frame(REQUEST, corr=nxt, target=tgt, method=b"deposit", payload=p)
        wl = [s] if out else []
        rd, wr, _ = select.select([s], wl, [], 0.5)
        if wr:
            try:
                n = s.send(out)
                del out[:n]
                last_sent = time.monotonic()
            except BlockingIOError:
                pass
        if rd:
            r.feed()
            for kind, st, _, p in r.frames():
                if kind != RESPONSE:
                    continue
                if st == 0:
                    ok += 1
                elif st == MP_EQUEUEFULL:
                    full += 1
                else:
                    other += 1
                    others[st] = others.get(st, 0) + 1
    print("flood: %d sent: %d ok, %d MP_EQUEUEFULL, %d other %s" % (count, ok, full, other, others))
    return 0


def main(a):
    if len(a) >= 5 and a[0] == "noread":
        return mode_noread(a[1], a[2], a[3], int(a[4]))
    if len(a) >= 4 and a[0] == "slow":
        return mode_slow(a[1], a[2], int(a[3]))
    if len(a) >= 3 and a[0] == "idle":
        return mode_idle(a[1], int(a[2]))
    if len(a) >= 5 and a[0] == "flood":
        return mode_flood(a[1], a[2], a[3], int(a[4]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
