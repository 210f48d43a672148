"""The report as a list of blocks, rendered twice: Markdown and one self-contained HTML file.

Nothing the report did not write itself (paths, genotypes, notes, the command line, numbers' labels
from the records) can turn into markup: in HTML every text is escaped (``html.escape``) and every link
percent-encoded; in Markdown, text writes ``<``, ``>`` and ``&`` as entities and backslash-escapes every
other character that could start markup, code spans and fenced blocks use more backticks than the
longest run inside them (so no text can close them), and link targets are percent-encoded. Outside
code, the Markdown holds no ``<`` at all.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

__all__ = ["Block", "Claim", "Fig", "H", "List", "P", "Pre", "S", "Table", "p", "table", "to_html", "to_md"]


class S(NamedTuple):
    """An inline span: plain text (``t``), ``code``, ``b`` (bold) or ``a`` (a link to ``href``)."""

    text: str
    kind: str = "t"
    href: str = ""


class H(NamedTuple):
    level: int
    text: str


class P(NamedTuple):
    spans: tuple[S, ...]


class Table(NamedTuple):
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


class Pre(NamedTuple):
    text: str


class Fig(NamedTuple):
    src: str
    caption: str
    width: int | None = None  # CSS pixels at the figure's designed size (PNG only)


class List(NamedTuple):
    items: tuple[str, ...]


class Claim(NamedTuple):
    """A claim's box: its verdict, what this run found and what the paper reported, side by side."""

    title: str
    verdict: str  # agrees | disagrees | inconclusive
    label: str  # the verdict as shown, e.g. "inconclusive (underpowered)"
    this_run: str
    paper: str


Block = H | P | Table | Pre | Fig | List | Claim


def p(*parts: str | S) -> P:
    return P(tuple(S(x) if isinstance(x, str) else x for x in parts))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    return Table(tuple(headers), tuple(tuple(str(v) for v in r) for r in rows))


# ---------------------------------------------------------------------------------- Markdown
_MD_SPECIAL = set("\\`*_[]|~!#$")
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_NUMERIC = re.compile(r"[\d\s.,+\-±\[\]()/e%<]+|n/a|-")


def md_escape(text: str) -> str:
    """Text that Markdown shows as it is: every markup character backslash-escaped, newlines folded."""
    return "".join(_MD_ENTITIES.get(ch) or ("\\" + ch if ch in _MD_SPECIAL else ch)
                   for ch in " ".join(text.splitlines()))


def _fence(text: str, least: int) -> str:
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(least, max(runs, default=0) + 1)


def md_code(text: str) -> str:
    """An inline code span no text can close (CommonMark: a longer backtick string than any inside)."""
    flat = " ".join(text.splitlines())
    fence = _fence(flat, 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _href(target: str) -> str:
    """A link target with every character but ``/._-~%`` percent-encoded (no space, quote, parenthesis or
    angle bracket left to end it early)."""
    return quote(target, safe="/._-~%")


def _md_spans(spans: Sequence[S]) -> str:
    out = []
    for s in spans:
        if s.kind == "code":
            out.append(md_code(s.text))
        elif s.kind == "b":
            out.append(f"**{md_escape(s.text)}**")
        elif s.kind == "a":
            out.append(f"[{md_escape(s.text)}]({_href(s.href)})")
        else:
            out.append(md_escape(s.text))
    return "".join(out)


def numeric_columns(t: Table) -> list[bool]:
    """Columns of numbers (and "-"), right-aligned in both renderings."""
    return [bool(t.rows) and all(_NUMERIC.fullmatch(r[i]) is not None for r in t.rows) for i in range(len(t.headers))]


def _md_table(t: Table) -> str:
    align = "".join("---:|" if n else "---|" for n in numeric_columns(t))
    lines = ["| " + " | ".join(md_escape(h) for h in t.headers) + " |", "|" + align]
    return "\n".join(lines + ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in t.rows])


def _md_block(b: Block) -> str:
    if isinstance(b, H):
        return "#" * b.level + " " + md_escape(b.text)
    if isinstance(b, P):
        return _md_spans(b.spans)
    if isinstance(b, Table):
        return _md_table(b)
    if isinstance(b, Pre):
        fence = _fence(b.text, 3)
        return f"{fence}text\n{b.text}\n{fence}"
    if isinstance(b, Fig):
        return f"![{md_escape(b.caption)}]({_href(b.src)})\n\n*{md_escape(b.caption)}*"
    if isinstance(b, List):
        return "\n".join("- " + md_escape(i) for i in b.items)
    return (f"**{md_escape(b.title)}**: verdict *{md_escape(b.label)}*\n\n"
            + _md_table(table(["This run", "The paper reported"], [[b.this_run, b.paper]])))


def to_md(blocks: Sequence[Block]) -> str:
    return "\n\n".join(_md_block(b) for b in blocks) + "\n"


# ---------------------------------------------------------------------------------- HTML
_CSS = """
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;margin:0;padding:2rem 1rem}
main{max-width:1040px;margin:0 auto}h1{font-size:1.8rem;margin:0 0 1rem}h3{font-size:1.15rem;margin:1.6rem 0 .6rem}
h2{font-size:1.4rem;margin:2.2rem 0 .8rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa}
pre{border:1px solid #d0d7de;border-radius:6px;padding:.8rem;overflow-x:auto;font-size:12px;line-height:1.45}
code{font-size:.9em;padding:.1em .3em;border-radius:4px;overflow-wrap:anywhere}
figure{margin:1.4rem 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.9rem;color:#57606a;margin-top:.3rem}
.claim{border:1px solid #d0d7de;border-radius:8px;margin:.9rem 0;overflow:hidden}
.claim-head{background:#f6f8fa;padding:.45rem .8rem;font-weight:600}.side{display:grid;grid-template-columns:1fr 1fr}
.side>div{padding:.5rem .8rem}.side>div+div{border-left:1px solid #d0d7de;color:#57606a}.side p{margin:0}
.side h4{margin:0 0 .2rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#57606a}
.v{display:inline-block;border-radius:999px;padding:.05rem .6rem;margin-right:.5rem;font-size:.85rem}
.v-agrees{background:#dafbe1;color:#116329}.v-disagrees{background:#ffebe9;color:#a40e26}
.v-inconclusive{background:#fff8c5;color:#6c4b00}
ul.notes{color:#57606a;font-size:.92rem}.wide{overflow-x:auto}
@media(max-width:700px){.side{grid-template-columns:1fr}.side>div+div{border-left:0;border-top:1px solid #d0d7de}}
"""


def _html_spans(spans: Sequence[S]) -> str:
    tags = {"code": "code", "b": "strong"}
    return "".join(f'<a href="{html.escape(_href(s.href))}">{html.escape(s.text)}</a>' if s.kind == "a" else
                   f"<{tags[s.kind]}>{html.escape(s.text)}</{tags[s.kind]}>" if s.kind in tags else html.escape(s.text)
                   for s in spans)


def _html_table(t: Table) -> str:
    cls = [' class="num"' if n else "" for n in numeric_columns(t)]
    head = "".join(f"<th{c}>{html.escape(h)}</th>" for h, c in zip(t.headers, cls, strict=True))
    body = "".join("<tr>" + "".join(f"<td{c}>{html.escape(v)}</td>" for v, c in zip(row, cls, strict=True)) + "</tr>"
                   for row in t.rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_block(b: Block) -> str:
    e = html.escape
    if isinstance(b, H):
        return f"<h{b.level}>{e(b.text)}</h{b.level}>"
    if isinstance(b, P):
        return f"<p>{_html_spans(b.spans)}</p>"
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Pre):
        return f"<pre>{e(b.text)}</pre>"
    if isinstance(b, Fig):
        width = "" if b.width is None else f' width="{b.width}"'
        return (f'<figure><img src="{e(_href(b.src))}"{width} alt="{e(b.caption)}">'
                f"<figcaption>{e(b.caption)}</figcaption></figure>")
    if isinstance(b, List):
        return '<ul class="notes">' + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>"
    verdict = b.verdict if b.verdict in ("agrees", "disagrees") else "inconclusive"
    return (f'<section class="claim"><div class="claim-head"><span class="v v-{verdict}">{e(b.label)}</span>'
            f"{e(b.title)}</div><div class=\"side\"><div><h4>This run</h4><p>{e(b.this_run)}</p></div>"
            f"<div><h4>The paper reported</h4><p>{e(b.paper)}</p></div></div></section>")


def to_html(blocks: Sequence[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, H)), "report")
    body = "\n".join(_html_block(b) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>'
            f"\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")
