#!/usr/bin/env python3
"""Writes the man pages from the texts they document, so that they cannot
say something else:

  provd(8)         `provd --help` and `provd restore --help`
  provctl(1)       `provctl --help` and every command's `--help`
  provd-device(1)  `provd-device --help`
  provd.yaml(5)    docs/configuration.md

usage: gen_man.py --provd BIN --provctl BIN --provd-device BIN
                  --config-doc FILE --version V --out DIR

The help texts follow one layout (core/main.c, tools/*/main.c): a "usage:"
block, paragraphs, and option lines "  --name ARG   description" whose
description may continue on lines indented further.  Nothing here knows
an option by name; tests/e2e/man_pages.sh checks that every option and
every configuration key reaches its page.
"""
import argparse
import os
import re
import subprocess
import sys

OPTION_LINE = re.compile(r"^ {1,8}(-[^ ].*?)(?: {2,}(\S.*))?$")
MANUAL = "provd manual"


def roff_text(text):
    """Escapes plain text for roff; `code` becomes bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)


def roff_line(text):
    """A text line that may not start with a control character."""
    text = roff_text(text)
    return "\\&" + text if text[:1] in (".", "'") else text


def header(name, section, version, summary):
    return [
        '.TH "%s" "%s" "" "provd %s" "%s"' % (name.upper(), section, version, MANUAL),
        ".SH NAME",
        "%s \\- %s" % (roff_text(name), roff_text(summary)),
    ]


def run_help(binary, *args):
    out = subprocess.run([binary, *args, "--help"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return out.rstrip("\n").split("\n")


def split_usage(lines):
    """(synopsis lines without "usage:", the rest)."""
    if not lines or not lines[0].startswith("usage:"):
        sys.exit("gen_man: help text does not start with 'usage:'")
    # Continuation lines keep their indentation relative to the first.
    syn, i = [lines[0][len("usage: "):]], 1
    while i < len(lines) and lines[i].strip():
        syn.append(lines[i][len("usage: "):] if lines[i].startswith("       ")
                   else lines[i].strip())
        i += 1
    return syn, lines[i:]


def blocks(lines):
    """Paragraphs and option items, in order: ("para", text) or
    ("opt", tag, text)."""
    out, para, item = [], [], None

    def flush():
        nonlocal para, item
        if para:
            out.append(("para", " ".join(para)))
        if item:
            out.append(("opt", item[0], " ".join(item[1])))
        para, item = [], None

    for line in lines:
        m = OPTION_LINE.match(line)
        if not line.strip():
            flush()
        elif m:
            flush()
            item = (m.group(1).strip(), [m.group(2)] if m.group(2) else [])
        elif item and line.startswith("          "):
            item[1].append(line.strip())
        else:
            if item:
                flush()
            para.append(line.strip())
    flush()
    return out


def render_blocks(bs):
    out = []
    for b in bs:
        if b[0] == "para":
            out += [".PP", roff_line(b[1])]
        else:
            out += [".TP", "\\fB%s\\fR" % roff_text(b[1]), roff_line(b[2])]
    return out


def synopsis(lines):
    out = [".nf"]
    out += [roff_line(l) for l in lines]
    return out + [".fi"]


def help_page(usage_lines, body):
    """SYNOPSIS, then DESCRIPTION up to the first option, OPTIONS, and
    NOTES after the last option."""
    bs = blocks(body)
    opts = [i for i, b in enumerate(bs) if b[0] == "opt"]
    first, last = (opts[0], opts[-1]) if opts else (len(bs), len(bs) - 1)
    out = [".SH SYNOPSIS"] + synopsis(usage_lines)
    out += [".SH DESCRIPTION"] + render_blocks(bs[:first])
    if opts:
        out += [".SH OPTIONS"] + render_blocks(bs[first:last + 1])
    if bs[last + 1:]:
        out += [".SH NOTES"] + render_blocks(bs[last + 1:])
    return out


def see_also(*refs):
    return [".SH SEE ALSO", ", ".join("\\fB%s\\fR(%s)" % r for r in refs)]


def page_provd(binary, version):
    usage, body = split_usage(run_help(binary))
    out = header("provd", 8, version, "self-hosted device provisioning service "
                 "compatible with Azure IoT Hub DPS")
    out += help_page(usage, body)
    r_usage, r_body = split_usage(run_help(binary, "restore"))
    out += [".SH RESTORE"] + synopsis(r_usage) + render_blocks(blocks(r_body))
    return out + see_also(("provctl", 1), ("provd-device", 1),
                          ("provd.yaml", 5))


def provctl_commands(general):
    """Command words of every entry in the "Commands:" list."""
    cmds, inside = [], False
    for line in general:
        if line == "Commands:":
            inside = True
        elif inside and not line.strip():
            break
        elif inside and re.match(r"^  \S", line):
            words = []
            for w in line.split():
                if not re.match(r"^[a-z][a-z-]*$", w):
                    break
                words.append(w)
            if words and words not in cmds:
                cmds.append(words)
    return cmds


def page_provctl(binary, version):
    general = run_help(binary)
    usage, body = split_usage(general)
    cut = body.index("Commands:")
    globals_at = next(i for i, l in enumerate(body) if l.startswith("Global options"))
    out = header("provctl", 1, version, "administer provd through its service API")
    out += [".SH SYNOPSIS"] + synopsis(usage)
    out += [".SH DESCRIPTION"] + render_blocks(blocks(body[:cut]))
    out += [".SH COMMANDS"]
    for words in provctl_commands(general):
        c_usage, c_body = split_usage(run_help(binary, *words))
        own = next((i for i, l in enumerate(c_body)
                    if l.startswith("Global options")), len(c_body))
        out += [".SS %s" % roff_text(" ".join(words))] + synopsis(c_usage)
        out += render_blocks(blocks(c_body[:own]))
    out += [".SH OPTIONS"] + render_blocks(blocks(body[globals_at:]))
    return out + see_also(("provd", 8), ("provd-device", 1))


def page_provd_device(binary, version):
    usage, body = split_usage(run_help(binary))
    out = header("provd-device", 1, version,
                 "register a device with provd or Azure DPS, send telemetry")
    out += help_page(usage, body)
    return out + see_also(("provd", 8), ("provctl", 1))


# ---- provd.yaml(5) from docs/configuration.md ----

def md_inline(text):
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)   # links: their text
    text = text.replace("\\|", "|")
    return roff_line(text)


def md_cells(line):
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip() for c in cells]


def md_table(rows):
    """Each row a tagged paragraph: the first cell, then "header: cell"
    for the middle columns and the last column as text."""
    head = md_cells(rows[0])
    out = []
    for row in rows[2:]:
        cells = md_cells(row)
        out += [".TP", md_inline(cells[0])]
        extra = ["%s: %s" % (h, c) for h, c in zip(head[1:-1], cells[1:-1])]
        text = "; ".join(extra) + (". " if extra else "") + cells[-1]
        out.append(md_inline(text))
    return out


def page_provd_yaml(config_doc, version):
    lines = open(config_doc, encoding="utf-8").read().split("\n")
    out = header("provd.yaml", 5, version, "provd configuration file")
    out += [".SH SYNOPSIS", ".B /etc/provd/provd.yaml", ".br",
            ".B provd \\-c FILE [\\-\\-check\\-config]", ".SH DESCRIPTION"]
    i, para = 0, []

    def flush():
        nonlocal para
        if para:
            out.extend([".PP", md_inline(" ".join(para))])
            para = []

    while i < len(lines):
        line = lines[i]
        if line.startswith("# "):
            i += 1
            continue
        if line.startswith("```"):
            flush()
            j = lines.index("```", i + 1) if "```" in lines[i + 1:] else len(lines)
            out += [".PP", ".nf", ".RS"]
            out += [roff_line(l) for l in lines[i + 1:j]]
            out += [".RE", ".fi"]
            i = j + 1
            continue
        if line.startswith("## "):
            flush()
            out.append(".SH %s" % roff_text(line[3:].replace("`", "").upper()))
        elif line.startswith("### "):
            flush()
            out.append(".SS %s" % roff_text(line[4:].replace("`", "")))
        elif line.startswith("|"):
            flush()
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out += md_table(lines[i:j])
            i = j
            continue
        elif line.startswith("* ") or line.startswith("- "):
            flush()
            para.append(line[2:])
            out.append(".IP \\(bu 2")
            out.append(md_inline(" ".join(para)))
            para = []
        elif not line.strip():
            flush()
        elif out[-1:] and out[-2:-1] == [".IP \\(bu 2"] and line.startswith("  "):
            out[-1] += " " + md_inline(line.strip())
        else:
            para.append(line.strip())
        i += 1
    flush()
    return out + see_also(("provd", 8), ("provctl", 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--provd", required=True)
    p.add_argument("--provctl", required=True)
    p.add_argument("--provd-device", required=True)
    p.add_argument("--config-doc", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    pages = {
        "provd.8": page_provd(a.provd, a.version),
        "provctl.1": page_provctl(a.provctl, a.version),
        "provd-device.1": page_provd_device(a.provd_device, a.version),
        "provd.yaml.5": page_provd_yaml(a.config_doc, a.version),
    }
    for name, lines in pages.items():
        text = "\n".join(['.\\" Generated by man/gen_man.py; edit the source, not this.']
                         + lines) + "\n"
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
