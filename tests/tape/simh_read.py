#!/usr/bin/env python3
"""An independent SIMH magtape (.tap) reader, written from the spec
("SIMH Magtape Representation and Handling", standard format), not from
mixtape's code. The tape tests run it on images mixtape wrote.

Prints one line per object, in tape order:
    record <length> <blake2b-256 hex of the data>
    bad <length>          (class 8: bad data record)
    mark                  (tape mark)
then "end". Exits non-zero on a malformed image.
"""
import hashlib
import struct
import sys

TAPE_MARK = 0x00000000
END_OF_MEDIUM = 0xFFFFFFFF
ERASE_GAP = 0xFFFFFFFE
FORWARD_HALF_GAP = 0xFFFEFFFF


def read_tape(data):
    pos = 0
    while pos + 4 <= len(data):
        (word,) = struct.unpack_from("<I", data, pos)
        if word == END_OF_MEDIUM:
            break
        if word == TAPE_MARK:
            yield "mark"
            pos += 4
            continue
        if word == ERASE_GAP:
            pos += 4
            continue
        if word == FORWARD_HALF_GAP:
            pos += 2
            continue
        cls, length = word >> 28, word & 0x0FFFFFFF
        if cls in (0x7, 0xF):  # private or reserved marker
            pos += 4
            continue
        if cls == 0x8 and length == 0:
            yield "bad 0"
            pos += 4
            continue
        end = pos + 4 + length + (length & 1) + 4
        if end > len(data):
            raise SystemExit("record at offset %d runs past the end of the image" % pos)
        (trailer,) = struct.unpack_from("<I", data, end - 4)
        if trailer != word:
            raise SystemExit("record at offset %d: trailing length differs" % pos)
        if length > 0xFFFFFF:
            raise SystemExit("record at offset %d is longer than 24 bits" % pos)
        body = data[pos + 4 : pos + 4 + length]
        if cls == 0x0:
            yield "record %d %s" % (length, hashlib.blake2b(body, digest_size=32).hexdigest())
        elif cls == 0x8:
            yield "bad %d" % length
        pos = end  # classes 1-6 and 9-E are skipped by a standard reader
    yield "end"


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: simh_read.py IMAGE.tap")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    for line in read_tape(data):
        print(line)


if __name__ == "__main__":
    main()
