#!/usr/bin/env python3
"""Checks every relative link in the repository's markdown files.

Usage: check_links.py [ROOT]   (default: the repository root, this file's parent's parent)

For each *.md file git knows or would add (tracked, or untracked and not ignored; or, outside a git checkout, found under ROOT, skipping build
trees, node_modules and .tools), every inline link or image `[text](target)` outside code spans and
fenced code blocks is checked:
  - a target with a scheme (http:, https:, mailto:, ...) is skipped;
  - a relative path must name an existing file or directory (relative to the linking file;
    a leading '/' means the repository root);
  - an anchor (`#part`, alone or after a path to a .md file) must match a heading of that file,
    slugged as GitHub does (lower case, punctuation but '-' and '_' removed, spaces to '-',
    '-1', '-2', ... for repeats).
Prints one line per broken link and exits 1 if there is any; standard library only.
"""
import os
import re
import subprocess
import sys

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SKIP_DIRS = {".git", "node_modules", ".tools", "__pycache__"}


def markdown_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", "*.md"],
                             capture_output=True, check=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
        if files:
            return sorted(files)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if d not in SKIP_DIRS and not d.startswith("build")]
        for name in filenames:
            if name.endswith(".md"):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


def prose_lines(text):
    """Yields (line number, line) outside fenced code blocks, inline code spans blanked."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, re.sub(r"(`+)(?:(?!\1).)+?\1", lambda c: " " * len(c.group(0)), line)


def slug(heading):
    text = re.sub(r"`|\*\*|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen = {}
        result = set()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        fence = None
        for line in text.splitlines():
            fm = FENCE.match(line)
            if fm:
                fence = fm.group(1) if fence is None else (None if fm.group(1) == fence else fence)
                continue
            if fence is not None:
                continue
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.add(base if n == 0 else f"{base}-{n}")
        cache[path] = result
    return cache[path]


def check(root):
    broken = []
    files = markdown_files(root)
    for rel in files:
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for number, line in prose_lines(text):
            for m in LINK.finditer(line):
                target = m.group(1)
                if SCHEME.match(target):
                    continue
                where, _, anchor = target.partition("#")
                if where:
                    base = root if where.startswith("/") else os.path.dirname(path)
                    dest = os.path.normpath(os.path.join(base, where.lstrip("/")))
                    if not os.path.exists(dest):
                        broken.append(f"{rel}:{number}: {target}: no such file")
                        continue
                else:
                    dest = path
                if anchor and dest.endswith(".md") and os.path.isfile(dest):
                    if anchor.lower() not in anchors(dest):
                        broken.append(f"{rel}:{number}: {target}: no heading "
                                      f"'#{anchor}' in {os.path.relpath(dest, root)}")
    return files, broken


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                           else os.path.join(os.path.dirname(__file__), ".."))
    files, broken = check(root)
    for line in broken:
        print(line)
    print(f"check_links: {len(files)} markdown files, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
