"""The report page: one self-contained HTML file. Images are embedded as data URIs, the style
is inline, there are no scripts and no external references, so the page opens from disk with no
network. Every string that comes from a table is escaped here (html.escape)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_STYLE = """
body { margin: 0; background: #f6f7f9; color: #1d232b;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 40px 0 8px; padding-top: 12px; border-top: 2px solid #dde1e6; }
h3 { font-size: 16px; margin: 24px 0 6px; }
p.lead { color: #4a5561; margin: 0 0 16px; }
p.note { background: #fff8e1; border-left: 4px solid #f2b600; padding: 6px 10px; margin: 8px 0; }
nav.toc { background: #f0f3f6; padding: 10px 18px; border-radius: 6px; }
nav.toc ol { margin: 4px 0; padding-left: 22px; }
nav.toc a, a { color: #0b5cad; text-decoration: none; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { font-size: 13px; color: #4a5561; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; width: 100%; }
th, td { border: 1px solid #dde1e6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 22%; }
code { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
"""


def png_data_uri(png: bytes) -> str:
    """The PNG as a data: URI (checked to be a PNG)."""
    if not isinstance(png, bytes):
        raise TypeError(f"png must be bytes, got {type(png).__name__}")
    if not png.startswith(PNG_MAGIC):
        raise ValueError("png is not a PNG image (no PNG signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _text(value) -> str:
    """A cell's text: None as an em dash, floats compactly, everything escaped."""
    if value is None:
        return "\u2014"
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


@dataclass
class Section:
    """A titled part of the page with an in-page anchor; its blocks are already-escaped HTML."""

    anchor: str
    title: str
    blocks: list = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h3>{html.escape(text)}</h3>")

    def paragraph(self, text: str) -> None:
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def note(self, text: str) -> None:
        """Something the tables lack or a reason a part is missing: shown, never dropped."""
        self.blocks.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, png_path, caption: str) -> None:
        png_path = Path(png_path)
        uri = png_data_uri(png_path.read_bytes())
        self.blocks.append(f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
                           f"<figcaption>{html.escape(caption)} ({html.escape(png_path.name)})</figcaption></figure>")

    def table(self, headers: list, rows: list, numeric: tuple = ()) -> None:
        """A table; columns whose index is in `numeric` are right-aligned."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = []
        for row in rows:
            if len(row) != len(headers):
                raise ValueError(f"table row has {len(row)} cells for {len(headers)} headers")
            cells = "".join(f'<td class="num">{_text(c)}</td>' if i in numeric else f"<td>{_text(c)}</td>"
                            for i, c in enumerate(row))
            body.append(f"<tr>{cells}</tr>")
        self.blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def key_values(self, pairs: list) -> None:
        """A two-column table of (name, value) pairs."""
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_text(v)}</td></tr>" for k, v in pairs)
        self.blocks.append(f'<table class="kv"><tbody>{rows}</tbody></table>')


@dataclass
class Page:
    title: str
    lead: list = field(default_factory=list)     # lines under the title
    sections: list = field(default_factory=list)

    def section(self, anchor: str, title: str) -> Section:
        if not anchor.replace("-", "").isalnum():
            raise ValueError(f"anchor must be letters, digits and '-', got {anchor!r}")
        section = Section(anchor, title)
        self.sections.append(section)
        return section

    def render(self) -> str:
        lead = "".join(f'<p class="lead">{html.escape(line)}</p>' for line in self.lead)
        toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in self.sections)
        body = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{"".join(s.blocks)}</section>'
                       for s in self.sections)
        return ("<!DOCTYPE html>\n"
                f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<style>{_STYLE}</style></head>\n"
                f"<body><main><h1>{html.escape(self.title)}</h1>{lead}"
                f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>\n{body}</main></body></html>\n')
