"""Charts inside Office Open XML files (the data cached in each chart part) as Markdown tables,
found per worksheet through the package relationships: sheet -> drawing -> chart."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from ingest.tables import markdown_table

_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _points(element: ET.Element | None) -> list[str]:
    if element is None:
        return []
    points = {int(pt.get("idx", "0")): (pt.findtext(f"{_C}v") or "") for pt in element.iter(f"{_C}pt")}
    return [_clean(points.get(i, "")) for i in range(max(points) + 1)] if points else []


def _clean(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return " ".join(value.split())
    return str(int(number)) if number.is_integer() else value


def chart_text(xml: bytes) -> str:
    """The chart's title and its series as a table: one row per category, one column per series."""
    root = ET.fromstring(xml)
    chart = root.find(f"{_C}chart")
    if chart is None:
        return ""
    title_element = chart.find(f"{_C}title")
    title = " ".join("".join(t.text or "" for t in title_element.iter(f"{_A}t")).split()) if title_element is not None else ""
    series = []
    for ser in chart.iter(f"{_C}ser"):
        name_el = ser.find(f"{_C}tx")
        name = " ".join("".join(v.text or "" for v in name_el.iter(f"{_C}v")).split()) if name_el is not None else ""
        categories = _points(ser.find(f"{_C}cat")) or _points(ser.find(f"{_C}xVal"))
        values = _points(ser.find(f"{_C}val")) or _points(ser.find(f"{_C}yVal"))
        series.append((name, categories, values))
    lines = [title] if title else []
    if series:
        categories = max((s[1] for s in series), key=len)
        n = max(len(categories), *(len(s[2]) for s in series))
        rows = [[""] + [s[0] for s in series]]
        for i in range(n):
            rows.append([categories[i] if i < len(categories) else str(i + 1)] + [s[2][i] if i < len(s[2]) else "" for s in series])
        lines.append(markdown_table(rows))
    return "\n\n".join(lines)


def _rels(z: zipfile.ZipFile, part: str) -> list[tuple[str, str]]:
    """(type, target part) of a part's relationships."""
    name = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    try:
        root = ET.fromstring(z.read(name))
    except (KeyError, ET.ParseError):
        return []
    out = []
    for rel in root.iter(f"{_REL}Relationship"):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        full = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(part), target))
        out.append((rel.get("Type", ""), full))
    return out


def workbook_charts(path: Path) -> dict[str, list[str]]:
    """Sheet name (worksheets and chart sheets) -> the texts of the charts drawn on it."""
    out: dict[str, list[str]] = {}
    try:
        with zipfile.ZipFile(path) as z:
            book = ET.fromstring(z.read("xl/workbook.xml"))
            rel_by_id = {}
            rels_root = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
            for rel in rels_root.iter(f"{_REL}Relationship"):
                t = rel.get("Target", "")
                rel_by_id[rel.get("Id")] = t.lstrip("/") if t.startswith("/") else posixpath.normpath(posixpath.join("xl", t))
            for sheet in book.iter(f"{_MAIN}sheet"):
                part = rel_by_id.get(sheet.get(_R_ID))
                if not part:
                    continue
                texts = []
                for kind, drawing in _rels(z, part):
                    if not kind.endswith("/drawing"):
                        continue
                    for kind2, chart in _rels(z, drawing):
                        if kind2.endswith("/chart"):
                            try:
                                text = chart_text(z.read(chart))
                            except (KeyError, ET.ParseError):
                                continue
                            if text:
                                texts.append(text)
                if texts:
                    out[sheet.get("name", "")] = texts
    except (zipfile.BadZipFile, KeyError, ET.ParseError, OSError):
        return out
    return out
