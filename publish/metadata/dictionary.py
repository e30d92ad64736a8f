"""The data-dictionary page of a dataset version: one self-contained bilingual HTML5 file.

It sits in the version directory beside the files (``datasets/<id>/<version>/dictionary.html``), so
its file links are the manifest's relative paths. Korean comes first, English follows. Every value
from the catalogue or the manifest is escaped; the page loads nothing from elsewhere.
"""
from __future__ import annotations

from html import escape
from typing import Any

import pyarrow as pa

from publish import licences
from publish.catalog import Catalogue, Dataset
from publish.metadata import (
    DATAPACKAGE,
    FREQUENCY_LABELS,
    MANIFEST,
    all_files,
    file_url,
    format_label,
    privacy_note,
    status_text,
    table_schema_type,
)

CSS = """
body{font-family:system-ui,"Apple SD Gothic Neo","Malgun Gothic","Noto Sans KR",sans-serif;margin:0;
color:#1b1f23;line-height:1.5}
main{max-width:72rem;margin:0 auto;padding:1.5rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.en{color:#57606a}p.en{margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}
code,pre{font-family:ui-monospace,SFMono-Regular,Consolas,monospace;font-size:.88rem}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.7rem;overflow-x:auto}
.box{border-left:4px solid #0969da;background:#f6f8fa;padding:.5rem 1rem;margin:1rem 0}
.note{border-left-color:#bf8700}.hash{font-size:.75rem;word-break:break-all}
"""


def dictionary_html(ds: Dataset, schema: pa.Schema, manifest: dict[str, Any], catalogue: Catalogue,
                    base_url: str | None = None) -> str:
    """The page; ``base_url`` (default: the catalogue homepage) only makes the DuckDB example absolute."""
    sections = [
        _header(ds),
        _overview(ds, manifest, catalogue),
        _periods(manifest, catalogue),
        _columns(ds, schema),
        _files(manifest),
        _how_to(manifest, "date" in schema.names, base_url or catalogue.homepage),
    ]
    title = f"{ds.title_ko} · {ds.title_en} — 데이터 사전 (data dictionary)"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="ko">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        *sections,
        "</main>",
        "</body>",
        "</html>",
        "",
    ])


def _header(ds: Dataset) -> str:
    parts = [f"<h1>{escape(ds.title_ko)}</h1>", f'<p class="en" lang="en">{escape(ds.title_en)}</p>']
    if ds.description_ko:
        parts.append(f"<p>{escape(ds.description_ko)}</p>")
    if ds.description_en:
        parts.append(f'<p class="en" lang="en">{escape(ds.description_en)}</p>')
    note = privacy_note(ds)
    if note:
        parts.append(f'<div class="box note"><p>{escape(note[0])}</p>'
                     f'<p class="en" lang="en">{escape(note[1])}</p></div>')
    return "\n".join(parts)


def _overview(ds: Dataset, manifest: dict[str, Any], catalogue: Catalogue) -> str:
    lic = licences.licence(manifest["licence"])
    publisher, contact, spatial = catalogue.publisher, catalogue.contact, catalogue.spatial
    temporal = manifest.get("temporal")
    sources = ", ".join(f"{escape(sid)} ({_link(licences.licence(lid).url, licences.licence(lid).name_ko)})"
                        for sid, lid in sorted(manifest["sources"].items()))
    rows = [
        (("데이터셋 ID", "Dataset ID"), f"<code>{escape(ds.id)}</code>"),
        (("버전", "Version"), f"<code>{escape(manifest['version'])}</code>" + (
            f" ({_bi('릴리스', 'release')} {escape(manifest['release'])})" if manifest.get("release") else "")),
        (("발행", "Issued"), escape(manifest["issued"])),
        (("갱신 주기", "Update frequency"), _bi(*FREQUENCY_LABELS.get(ds.frequency, (ds.frequency, ds.frequency)))),
        (("시간 범위", "Temporal coverage"),
         f"{escape(temporal['start'])} – {escape(temporal['end'])}" if temporal else "—"),
        (("공간 범위", "Spatial coverage"), _bi(spatial["name_ko"], spatial["name_en"])),
        (("행 수", "Rows"), f"{manifest['rows']:,}"),
        (("기본 키", "Primary key"), ", ".join(f"<code>{escape(c)}</code>" for c in ds.primary_key)),
        (("라이선스", "Licence"), f"{_link(lic.url, lic.name_ko)} {_en(lic.name_en)}"),
        (("출처 표시", "Attribution"),
         f"{escape(publisher['name_ko'])}, 「{escape(ds.title_ko)}」, {escape(manifest['version'])}"),
        (("원천 데이터", "Sources"), sources or "—"),
        (("제공 기관", "Publisher"), f"{_link(publisher['url'], publisher['name_ko'])} {_en(publisher['name_en'])}"),
        (("문의", "Contact"),
         f"{_bi(contact['name_ko'], contact['name_en'])} {_link('mailto:' + contact['email'], contact['email'])}"),
    ]
    items = "\n".join(f"<dt>{_bi(ko, en)}</dt><dd>{value}</dd>" for (ko, en), value in rows)
    return f"<h2>{_bi('개요', 'Overview')}</h2>\n<dl>\n{items}\n</dl>"


def _periods(manifest: dict[str, Any], catalogue: Catalogue) -> str:
    periods = sorted(manifest.get("periods") or [], key=lambda p: p["period"])
    if not periods:
        return ""
    body = [f"<tr><td>{escape(p['period'])}</td><td>{_bi(*status_text(p['status']), sep='<br>')}</td>"
            f'<td class="num">{p["rows"]:,}</td><td>{escape(p["first_date"])}</td>'
            f"<td>{escape(p['last_date'])}</td></tr>" for p in periods]
    days = catalogue.settle_days
    settles = _bi(f"한 달의 자료는 그 달이 끝나고 {days}일이 지나면 확정됩니다.",
                  f"A month becomes validated (final) {days} days after it ends.")
    return "\n".join([
        f"<h2>{_bi('기간', 'Periods')}</h2>",
        f"<p>{settles}</p>",
        _table([("기간", "Period"), ("상태", "Status"), ("행", "Rows"), ("첫 날", "First date"),
                ("마지막 날", "Last date")], body),
    ])


def _columns(ds: Dataset, schema: pa.Schema) -> str:
    described = {c.name: c for c in ds.columns}
    body = []
    for field in schema:
        column = described.get(field.name)
        unit, ko, en = (column.unit, column.description_ko, column.description_en) if column else ("", "", "")
        key = ' <abbr title="기본 키 primary key">PK</abbr>' if field.name in ds.primary_key else ""
        arrow = f'<span class="en">({escape(str(field.type))})</span>'
        body.append(f"<tr><td><code>{escape(field.name)}</code>{key}</td>"
                    f"<td>{escape(table_schema_type(field.type))} {arrow}</td>"
                    f'<td>{escape(unit)}</td><td>{escape(ko)}</td><td lang="en">{escape(en)}</td></tr>')
    return "\n".join([
        f"<h2>{_bi('열', 'Columns')}</h2>",
        _table([("열", "Column"), ("형식", "Type"), ("단위", "Unit"), ("설명", "Description (ko)"),
                ("영문 설명", "Description (en)")], body),
    ])


def _files(manifest: dict[str, Any]) -> str:
    files = sorted(manifest["files"], key=lambda f: (f.get("period") is not None, f.get("period") or "", f["format"]))
    body = [f"<tr><td>{_link(f['path'], format_label(f['format']))}</td>"
            f"<td>{escape(f['period']) if f.get('period') else _bi('전체', 'all')}</td>"
            f'<td class="num">{f["rows"]:,}</td>'
            f'<td class="num" title="{f["bytes"]} bytes">{escape(_size(f["bytes"]))}</td>'
            f'<td class="hash"><code>{escape(f["sha256"])}</code></td></tr>' for f in files]
    return "\n".join([
        f"<h2>{_bi('파일', 'Files')}</h2>",
        f"<p>{_bi('메타데이터', 'Metadata')}: {_link(DATAPACKAGE, DATAPACKAGE)} (Frictionless Data Package), "
        f"{_link(MANIFEST, MANIFEST)}</p>",
        _table([("형식", "Format"), ("기간", "Period"), ("행", "Rows"), ("크기", "Size"), ("SHA-256", "checksum")], body),
    ])


def _how_to(manifest: dict[str, Any], has_date: bool, base_url: str) -> str:
    parquet = [f for f in all_files(manifest) if f["format"] == "parquet"]
    snippet = []
    if parquet:
        url = file_url(base_url, manifest, parquet[0]["path"]).replace("'", "''")   # an SQL string literal
        sql = f"SELECT * FROM read_parquet('{url}');"
        snippet = [f"<p>DuckDB ({_bi('HTTP로 바로 읽기', 'read over HTTP')}):</p>",
                   f"<pre><code>{escape(sql)}</code></pre>"]
    date_ko = ", <code>date</code>는 한국 시간(KST) 날짜" if has_date else ""
    date_en = ", <code>date</code> is the KST calendar day" if has_date else ""
    return "\n".join([
        '<section class="box">',
        f"<h2>{_bi('사용 방법', 'How to use')}</h2>",
        *snippet,
        "<p>CSV: UTF-8(BOM), 쉼표 구분, 첫 줄은 열 이름, 빈 칸은 값 없음(null), 시각은 UTC ISO 8601 "
        f"(<code>2026-11-24T01:00:00Z</code>){date_ko}, 참·거짓은 <code>true</code>/<code>false</code>.</p>",
        '<p class="en" lang="en">CSV: UTF-8 with BOM, comma-separated, header row, an empty field is null, '
        f"timestamps are UTC ISO 8601{date_en}, booleans are <code>true</code>/<code>false</code>.</p>",
        "</section>",
    ])


def _table(headings: list[tuple[str, str]], body: list[str]) -> str:
    head = "".join(f"<th>{_bi(ko, en, sep='<br>')}</th>" for ko, en in headings)
    return "\n".join([f"<table><thead><tr>{head}</tr></thead>", "<tbody>", *body, "</tbody></table>"])


def _bi(ko: str, en: str, sep: str = " ") -> str:
    """Korean, then English in a lighter span: both escaped."""
    return f"{escape(ko)}{sep}{_en(en)}"


def _en(text: str) -> str:
    return f'<span class="en" lang="en">{escape(text)}</span>'


def _link(href: str, text: str) -> str:
    if not href:
        return escape(text)
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KB"
    for bigger in ("MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
