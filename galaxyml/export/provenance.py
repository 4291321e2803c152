"""Provenance of an exported file: which atlas, which stages and which view it comes from.

Every file the atlas exports carries the same record: the atlas name, the sha256 of its manifest, the hash
of every stage behind the figure (each covers the stage's config and the hashes of its inputs, see
``precompute.runner.stage_hashes``), the library version, the UTC date and the deep link of the view. It is
written into the file (PNG text chunks, SVG ``<metadata>``, the PDF document information, parquet schema
metadata, FITS header cards, CSV ``#`` comment lines) and offered as a sidecar JSON file.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PROVENANCE_KEY = "galaxyml:provenance"
"""Key of the whole record (JSON) in PNG text chunks, PDF metadata and parquet schema metadata."""


def library_version() -> str:
    try:
        return version("galaxy-feature-atlas")
    except PackageNotFoundError:  # running from a checkout that was not pip-installed
        from pathlib import Path
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


@dataclass(frozen=True)
class Provenance:
    """Where an exported figure or table comes from."""

    atlas: str
    manifest_sha256: str
    stages: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per stage behind the figure: its ``config_hash`` and ``hash`` (config and inputs) from the manifest."""
    link: str = ""
    """Deep link that reproduces the view."""
    title: str = ""
    version: str = field(default_factory=library_version)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def of(cls, atlas_name: str, manifest: dict[str, Any], stages: tuple[str, ...] | list[str], link: str = "",
           title: str = "") -> "Provenance":
        """The record of a figure made from ``stages`` of an atlas with this manifest (stages it lacks are
        left out)."""
        table = manifest.get("stages", {})
        hashes = {s: {"config_hash": str(table[s].get("config_hash", "")), "hash": str(table[s].get("hash", ""))}
                  for s in stages if s in table}
        return cls(atlas=atlas_name, manifest_sha256=str(manifest.get("sha256", "")), stages=hashes, link=link,
                   title=title)

    def as_dict(self) -> dict[str, Any]:
        return {"generator": "Galaxy Feature Atlas", **asdict(self)}

    def to_json(self, compact: bool = False) -> str:
        """The record as JSON (``compact``: one ASCII line, for CSV comments and FITS cards)."""
        return json.dumps(self.as_dict(), separators=(",", ":")) if compact else json.dumps(self.as_dict(), indent=1)

    def sidecar(self) -> bytes:
        """The record as a sidecar JSON file's bytes."""
        return (self.to_json() + "\n").encode()

    def lines(self) -> list[str]:
        """One ``key: value`` line per field (CSV comments, FITS COMMENT cards)."""
        out = [f"generator: Galaxy Feature Atlas {self.version}", f"title: {self.title}", f"atlas: {self.atlas}",
               f"manifest_sha256: {self.manifest_sha256}", f"created: {self.created}", f"link: {self.link}"]
        out += [f"stage {s}: hash {h['hash']} config_hash {h['config_hash']}" for s, h in self.stages.items()]
        return out


# --- writing the record into a file ------------------------------------------------------------------

def stamp(data: bytes, fmt: str, prov: Provenance) -> bytes:
    """``data`` (a PNG, SVG or PDF file's bytes) with the provenance written into it."""
    fmt = fmt.lower()
    if fmt == "png":
        return _stamp_png(data, prov)
    if fmt == "svg":
        return _stamp_svg(data, prov)
    if fmt == "pdf":
        return _stamp_pdf(data, prov)
    raise ValueError(f"cannot write provenance into a .{fmt} file (png, svg or pdf)")


def _stamp_png(data: bytes, prov: Provenance) -> bytes:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.open(io.BytesIO(data))
    info = PngInfo()
    for key, value in (("Title", prov.title), ("Software", f"Galaxy Feature Atlas {prov.version}"),
                       ("Source", prov.link), ("Creation Time", prov.created)):
        info.add_text(key, value)
    info.add_itxt(PROVENANCE_KEY, prov.to_json())
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, dpi=image.info.get("dpi", (144, 144)))
    return out.getvalue()


def _stamp_svg(data: bytes, prov: Provenance) -> bytes:
    text = data.decode("utf-8")
    match = re.search(r"<svg\b[^>]*>", text)
    if match is None:
        raise ValueError("not an SVG file: no <svg> element")
    block = (f"<title>{html.escape(prov.title)}</title>"
             f'<metadata id="{PROVENANCE_KEY}">{html.escape(prov.to_json())}</metadata>')
    return (text[:match.end()] + block + text[match.end():]).encode("utf-8")


def _stamp_pdf(data: bytes, prov: Provenance) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.add_metadata({"/Title": prov.title, "/Creator": f"Galaxy Feature Atlas {prov.version}",
                         "/Subject": prov.link, "/Keywords": f"atlas={prov.atlas}",
                         "/" + PROVENANCE_KEY.replace(":", "_"): prov.to_json()})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- reading it back -------------------------------------------------------------------------------

def read_provenance(data: bytes, fmt: str) -> dict[str, Any]:
    """The provenance record of an exported file (png, svg, pdf, csv, parquet or fits); a file without one
    raises ``ValueError``."""
    fmt = fmt.lower()
    raw: str | None = None
    if fmt == "png":
        from PIL import Image

        raw = Image.open(io.BytesIO(data)).text.get(PROVENANCE_KEY)
    elif fmt == "svg":
        found = re.search(rf'<metadata id="{PROVENANCE_KEY}">(.*?)</metadata>', data.decode("utf-8"), re.S)
        raw = html.unescape(found.group(1)) if found else None
    elif fmt == "pdf":
        from pypdf import PdfReader

        raw = (PdfReader(io.BytesIO(data)).metadata or {}).get("/" + PROVENANCE_KEY.replace(":", "_"))
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(io.BytesIO(data)).metadata or {}
        raw = meta.get(PROVENANCE_KEY.encode(), b"").decode() or None
    elif fmt == "csv":
        text = data.decode("utf-8")
        found = re.search(rf"^# {PROVENANCE_KEY} (.*)$", text, re.M)
        raw = found.group(1) if found else None
    elif fmt == "fits":
        from astropy.io import fits

        with fits.open(io.BytesIO(data)) as hdul:
            raw = hdul[1].header.get("PROVJSON") if len(hdul) > 1 else None
    else:
        raise ValueError(f"unknown export format .{fmt}")
    if not raw:
        raise ValueError(f"this .{fmt} file carries no Galaxy Feature Atlas provenance")
    return json.loads(raw)
