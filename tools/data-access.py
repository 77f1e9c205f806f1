#!/usr/bin/env python3
"""Which source file touches which store table (issue 14: data access per table).

    tools/data-access.py [--root DIR] [--map] [--allow FILE]

Tables are those a CREATE TABLE in src/ declares.  A file touches a table
when one of its C string literals (adjacent literals joined, as the
compiler joins them) names the table after FROM, INTO, UPDATE, JOIN,
DELETE FROM, TABLE or ON (an index).  --map prints table -> files.
Without it, the check: every table is touched by exactly one file, its
module, except the (table, file) pairs the allow-list names with a
reason (tools/data-access.allow, lines "table file reason...").  Exits 1
naming each table touched by a second file, and each allow-list line
that no longer matches anything (so the list shrinks as tables move).
"""
import argparse
import os
import re
import sys

LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
# Between two literals the compiler joins: whitespace, comments, or a
# macro name pasted in (IN_REMEDIATION).
JOINER = re.compile(r'^(?:\s|/\*.*?\*/|//[^\n]*\n|[A-Z_][A-Z0-9_]*)*$', re.S)
KEYWORD = re.compile(
    r'\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?:\s+IF\s+NOT\s+EXISTS)?|ON)\s+([a-z_][a-z0-9_]*)\b')
CREATE = re.compile(r'CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)\s*\(')


def strip_comments(text):
    """Comments out, string literals and character constants kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(' ' * (j - i) if '\n' not in text[i:j] else
                       re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def sql_strings(text):
    """The file's string literals, adjacent ones joined."""
    text = strip_comments(text)
    strings, cur, end = [], None, -1
    for m in LITERAL.finditer(text):
        if cur is not None and JOINER.match(text[end:m.start()]):
            cur += m.group(1)
        else:
            if cur is not None:
                strings.append(cur)
            cur = m.group(1)
        end = m.end()
    if cur is not None:
        strings.append(cur)
    return strings


def scan(root):
    files = []
    for d, _, names in os.walk(os.path.join(root, 'src')):
        files += [os.path.join(d, f) for f in names if f.endswith(('.c', '.h'))]
    strings = {}
    for path in sorted(files):
        with open(path, encoding='utf-8', errors='replace') as f:
            strings[os.path.relpath(path, root)] = sql_strings(f.read())
    tables = set()
    for ss in strings.values():
        for s in ss:
            tables.update(CREATE.findall(s))
    touch = {t: set() for t in tables}
    for path, ss in strings.items():
        for s in ss:
            for t in KEYWORD.findall(s):
                if t in touch:
                    touch[t].add(path)
    return touch


def load_allow(path):
    allow = {}
    with open(path, encoding='utf-8') as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3:
                sys.exit(f'{path}:{no}: want "table file reason", got {line!r}')
            allow[(parts[0], parts[1])] = (no, parts[2])
    return allow


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default=os.path.join(os.path.dirname(__file__), '..'))
    ap.add_argument('--map', action='store_true')
    ap.add_argument('--allow')
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    touch = scan(root)
    if a.map:
        for t in sorted(touch):
            print(f'{t}: {" ".join(sorted(touch[t])) or "(no statement)"}')
        return 0
    allow = load_allow(a.allow or os.path.join(root, 'tools', 'data-access.allow'))
    bad, used = [], set()
    for t in sorted(touch):
        files = sorted(touch[t])
        listed = [f for f in files if (t, f) in allow]
        used.update((t, f) for f in listed)
        rest = [f for f in files if (t, f) not in allow]
        if len(rest) > 1:
            bad.append(f'table {t} is touched by {len(rest)} files: {", ".join(rest)}; move the'
                       f' statements into the table\'s module (the first file, or the one its'
                       f' CREATE TABLE is in) and call its functions, or allow-list the pair'
                       f' with a reason in tools/data-access.allow')
    for (t, f), (no, _) in sorted(allow.items(), key=lambda kv: kv[1][0]):
        if (t, f) not in used:
            bad.append(f'tools/data-access.allow:{no}: {f} no longer touches {t}: remove the line')
    for b in bad:
        print(f'data-access: {b}', file=sys.stderr)
    n_files = len({f for fs in touch.values() for f in fs})
    n_single = sum(1 for t in touch if len(touch[t]) <= 1)
    print(f'data-access: {len(touch)} tables in {n_files} files; {n_single} touched by one file,'
          f' {len(allow)} allow-listed pairs, {len(bad)} problem(s)')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
