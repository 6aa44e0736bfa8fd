#!/usr/bin/env python3
"""appstream-ref.py SRC DST [EDITS] - the reference repo of bench/appstream.sh.

Copies the rpm-md repo SRC to DST and alters a handful of packages in DST's
primary.xml, so that an annotate view of SRC with DST as compat.reference
finds real divergences. Of the packages with versioned soname provides
(libfoo.so.1(FOO_1.0)(64bit)), evenly spread EDITS (32) get one of four
edits in turn:

  0  its last versioned soname provide is dropped  (SRC adds it: abi-extended)
  1  its last versioned soname provide is renamed  (SRC lacks one: abi-changed)
  2  its release gets a suffix                      (EVR differs: version-differs)
  3  it is removed                                  (not-in-reference)

The altered primary.xml replaces the old one with modifyrepo_c (--remove
primary, then --mdtype=primary), so DST's repomd.xml stays what createrepo_c
tools write. The counts go to stdout as JSON.
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

SONAME = re.compile(r'<rpm:entry name="[^"]*\.so[.0-9]*\([^)"]+\)[^"]*"[^>]*/>\n')


def primary_href(repodata):
    with open(os.path.join(repodata, "repomd.xml")) as f:
        md = f.read()
    m = re.search(r'<data type="primary">.*?<location href="([^"]+)"', md, re.S)
    if not m:
        sys.exit("appstream-ref: no primary record in " + repodata)
    return m.group(1)


def candidates(blocks):
    n = 0
    for b in blocks:
        prov, end = b.find("<rpm:provides>"), b.find("</rpm:provides>")
        if prov >= 0 and SONAME.search(b, prov, end):
            n += 1
    return n


def alter(xml, edits):
    counts = {"dropped_provide": 0, "renamed_provide": 0, "release_changed": 0, "removed": 0}
    out, n = [], 0
    head, sep, rest = xml.partition("<package ")
    out.append(head)
    blocks = (sep + rest).split("</package>\n")
    tail = blocks.pop()  # after the last package: "</metadata>"
    every = max(1, candidates(blocks) // edits)
    kept = 0
    for b in blocks:
        b += "</package>\n"
        prov = b.find("<rpm:provides>")
        end = b.find("</rpm:provides>")
        sonames = list(SONAME.finditer(b, prov, end)) if prov >= 0 else []
        if sonames:
            n += 1
            if n % every == 0:
                edit = (n // every) % 4
                last = sonames[-1]
                if edit == 0:
                    b = b[: last.start()] + b[last.end():]
                    counts["dropped_provide"] += 1
                elif edit == 1:
                    e = last.group(0)
                    b = b[: last.start()] + e.replace(")", "_REF)", 1) + b[last.end():]
                    counts["renamed_provide"] += 1
                elif edit == 2:
                    b = re.sub(r'(<version epoch="[^"]*" ver="[^"]*" rel=")([^"]*)"', r'\1\2.1"', b, count=1)
                    counts["release_changed"] += 1
                else:
                    counts["removed"] += 1
                    continue
        kept += 1
        out.append(b)
    out.append(tail)
    text = "".join(out)
    text = re.sub(r'(<metadata [^>]*packages=")\d+"', r'\g<1>%d"' % kept, text, count=1)
    counts["packages"] = kept
    return text, counts


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    edits = int(sys.argv[3]) if len(sys.argv) == 4 else 32
    if edits < 1:
        sys.exit("appstream-ref: EDITS must be at least 1")
    shutil.copytree(src, dst)
    repodata = os.path.join(dst, "repodata")
    href = primary_href(repodata)
    with gzip.open(os.path.join(dst, href), "rt", encoding="utf-8") as f:
        xml = f.read()
    text, counts = alter(xml, edits)
    tmp = os.path.join(dst, "primary.xml")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    del xml, text
    run = lambda *a: subprocess.run(["modifyrepo_c", *a], check=True)
    run("--remove", "primary", repodata)
    run("--mdtype=primary", "--compress-type=gz", tmp, repodata)
    os.remove(tmp)
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
