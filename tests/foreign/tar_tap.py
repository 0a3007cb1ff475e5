#!/usr/bin/env python3
"""Writes a SIMH magtape image (.tap) of tape files, as `tar -cf /dev/nst0`
and `mt` would leave them on a tape (engine/tape/simh.h, specs/simh-tap.txt):

    tar_tap.py OUT.tap SIZE:FILE [SIZE:FILE ...]

Each FILE becomes one tape file cut into records of SIZE bytes (the last
one shorter when FILE is not a multiple), ended by a filemark. SIZE may be
a list "a,b,c" of sizes used in turn (records that vary). FILE "-" is an
empty tape file (two filemarks in a row).
"""
import struct
import sys


def record(out, data):
    n = len(data)
    out.write(struct.pack("<I", n))
    out.write(data)
    if n & 1:
        out.write(b"\0")
    out.write(struct.pack("<I", n))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: tar_tap.py OUT.tap SIZE:FILE [SIZE:FILE ...]")
    with open(sys.argv[1], "wb") as out:
        for spec in sys.argv[2:]:
            if spec == "-":
                out.write(struct.pack("<I", 0))
                continue
            sizes, path = spec.split(":", 1)
            sizes = [int(s) for s in sizes.split(",")]
            data = b"" if path == "-" else open(path, "rb").read()
            pos, turn = 0, 0
            while pos < len(data):
                size = sizes[turn % len(sizes)]
                record(out, data[pos : pos + size])
                pos, turn = pos + size, turn + 1
            out.write(struct.pack("<I", 0))


if __name__ == "__main__":
    main()
