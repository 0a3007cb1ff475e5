#!/usr/bin/env python3
"""What a hostile party does to a mixtape archive tar, edited in place.

Every edit keeps the archive's length, so once encrypted again with age the
archive takes the same blocks on tape and the indexes and the catalog still
point into it: only what the tar says changes.

usage: hostile_tar.py TAR EDIT...
  rename:PATH:NEW        the member's pax path (and ustar name) becomes NEW
  linkpath:PATH:NEW      a symlink member's target becomes NEW
  hash:PATH:HEX          its BLAKE2b-256 record says HEX (format 2's keyword,
                         or format 1's MIXTAPE.blake2b256)
  ustar-size:PATH:N      its ustar size field says N (octal there)
  pax-size:PATH          its mtime record becomes a size record of 9s
  data:PATH              the first byte of its data changes
  hardlink:PATH:TARGET   an empty file's member becomes a hard link to TARGET
PATH and NEW are member names (no leading '/'); NEW as long as what it
replaces.
"""
import sys

BLOCK = 512


def padded(size):
    return (size + BLOCK - 1) // BLOCK * BLOCK


def number(field):
    text = field.strip(b"\0 ")
    return int(text, 8) if text else 0


def set_checksum(tar, at):
    header = bytearray(tar[at:at + BLOCK])
    header[148:156] = b" " * 8
    tar[at + 148:at + 156] = b"%06o\0 " % sum(header)


def pax_records(tar, start, size):
    """(record start, record end, key, value start, value end) of an x header."""
    records, at, end = [], start, start + size
    while at < end:
        space = tar.index(b" ", at)
        length = int(tar[at:space])
        equals = tar.index(b"=", space)
        records.append((at, at + length, bytes(tar[space + 1:equals]), equals + 1,
                        at + length - 1))
        at += length
    return records


def members(tar):
    """Each member with its pax records, main header and data offsets."""
    at = 0
    while at + BLOCK <= len(tar) and tar[at:at + BLOCK] != bytes(BLOCK):
        size = number(tar[at + 124:at + 136])
        if tar[at + 156:at + 157] != b"x":
            at += BLOCK + padded(size)
            continue
        records = pax_records(tar, at + BLOCK, size)
        main = at + BLOCK + padded(size)
        data_size = number(tar[main + 124:main + 136])
        path = next(bytes(tar[vs:ve]) for _, _, k, vs, ve in records if k == b"path")
        yield {"path": path.decode(), "records": records, "main": main,
               "data": main + BLOCK, "size": data_size}
        at = main + BLOCK + padded(data_size)


def record(member, key):
    for rec in member["records"]:
        if rec[2] == key:
            return rec
    raise SystemExit("no %s record for %s" % (key.decode(), member["path"]))


def replace(tar, start, end, new):
    if len(new) != end - start:
        raise SystemExit("%r is not %d bytes long" % (new, end - start))
    tar[start:end] = new


def edit(tar, spec):
    kind, _, rest = spec.partition(":")
    path, _, value = rest.partition(":")
    member = next((m for m in members(tar) if m["path"] == path), None)
    if member is None:
        raise SystemExit("no member " + path)
    main = member["main"]
    if kind == "rename":
        _, _, _, vs, ve = record(member, b"path")
        replace(tar, vs, ve, value.encode())
        if tar[main + 345] != 0:
            raise SystemExit("the ustar name of %s is split; pick a shorter one" % path)
        replace(tar, main, main + len(value), value.encode())
    elif kind == "linkpath":
        _, _, _, vs, ve = record(member, b"linkpath")
        replace(tar, vs, ve, value.encode())
        replace(tar, main + 157, main + 157 + len(value), value.encode())
    elif kind == "hash":
        keys = [rec[2] for rec in member["records"]]
        key = b"MIXTAPE.blake2b256" if b"MIXTAPE.blake2b256" in keys else \
            b"SCHILY.xattr.user.mixtape.blake2b256"
        _, _, _, vs, ve = record(member, key)
        replace(tar, vs, ve, value.encode())
    elif kind == "ustar-size":
        replace(tar, main + 124, main + 136, b"%011o\0" % int(value))
    elif kind == "pax-size":
        start, end, _, _, _ = record(member, b"mtime")
        prefix = b"%d size=" % (end - start)
        replace(tar, start, end, prefix + b"9" * (end - start - len(prefix) - 1) + b"\n")
    elif kind == "data":
        tar[member["data"]] ^= 0x5A
    elif kind == "hardlink":
        if number(tar[main + 124:main + 136]) != 0 or len(value) > 100:
            raise SystemExit("hardlink: %s must be empty, the target at most 100 bytes" % path)
        tar[main + 156] = ord("1")
        replace(tar, main + 157, main + 257, value.encode().ljust(100, b"\0"))
    else:
        raise SystemExit("unknown edit " + kind)
    set_checksum(tar, main)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], "rb") as f:
        tar = bytearray(f.read())
    length = len(tar)
    for spec in sys.argv[2:]:
        edit(tar, spec)
    assert len(tar) == length
    with open(sys.argv[1], "wb") as f:
        f.write(tar)


if __name__ == "__main__":
    main()
