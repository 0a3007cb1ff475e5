#!/usr/bin/env python3
"""Splits a SIMH magtape image (.tap) into its tape files, written as
OUTDIR/0, OUTDIR/1, ... Written for the archaeology drill from the SIMH
format alone (specs/simh-tap.txt): each record is a 4-byte little-endian
length, the data padded to an even length, and the length again; a zero
length is a filemark; the image ends at its end or at 0xFFFFFFFF.

Prints the number of tape files. A file not ended by a filemark (an
interrupted write) is written too.
"""
import os
import struct
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: simh_split.py IMAGE.tap OUTDIR")
    image, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    data = open(image, "rb").read()
    files, current, pos = [], bytearray(), 0
    pending = False  # bytes or records since the last filemark
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if length == 0xFFFFFFFF:
            break
        if length == 0:
            files.append(bytes(current))
            current, pending, pos = bytearray(), False, pos + 4
            continue
        if length & 0xFF000000:
            sys.exit("unexpected record marker %#x at byte %d" % (length, pos))
        end = pos + 4 + length + (length & 1)
        if end + 4 > len(data) or struct.unpack_from("<I", data, end)[0] != length:
            break  # a record cut short at the end of the image: ignored, as SIMH does
        current += data[pos + 4 : pos + 4 + length]
        pending, pos = True, end + 4
    if pending:
        files.append(bytes(current))
    for number, content in enumerate(files):
        with open(os.path.join(outdir, str(number)), "wb") as out:
            out.write(content)
    print(len(files))


if __name__ == "__main__":
    main()
