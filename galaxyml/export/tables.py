"""Tables out: CSV, parquet and FITS (with units), each carrying its provenance."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from galaxyml.export.provenance import PROVENANCE_KEY, Provenance

TABLE_FORMATS = ("csv", "parquet", "fits")
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "fits": "application/fits"}


class EmptyExport(ValueError):
    """An export was asked of a view that has nothing to export."""


def table_bytes(table: pd.DataFrame, fmt: str, prov: Provenance, units: dict[str, str] | None = None) -> bytes:
    """``table`` as a CSV, parquet or FITS file's bytes.

    CSV starts with ``#`` comment lines (read it with ``pandas.read_csv(path, comment="#")`` or astropy's
    ascii reader); parquet keeps the record in its schema metadata and the units as ``unit:<column>`` keys;
    FITS is a binary table with astropy units on its columns and the record in ``PROVJSON`` (long-string
    CONTINUE cards) and COMMENT cards.
    """
    if table is None or len(table) == 0:
        raise EmptyExport("there is nothing to export: the table is empty")
    fmt = fmt.lower()
    units = {k: v for k, v in (units or {}).items() if k in table.columns and v and v != "bool"}
    if fmt == "csv":
        head = "".join(f"# {line}\n" for line in prov.lines())
        head += "".join(f"# unit {c}: {u}\n" for c, u in units.items())
        head += f"# {PROVENANCE_KEY} {prov.to_json(compact=True)}\n"
        return (head + table.to_csv(index=False)).encode("utf-8")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(table, preserve_index=False)
        meta = dict(arrow.schema.metadata or {})
        meta[PROVENANCE_KEY.encode()] = prov.to_json(compact=True).encode()
        meta.update({f"unit:{c}".encode(): u.encode() for c, u in units.items()})
        buf = io.BytesIO()
        pq.write_table(arrow.replace_schema_metadata(meta), buf)
        return buf.getvalue()
    if fmt == "fits":
        return _fits_bytes(table, prov, units)
    raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(TABLE_FORMATS)}")


def _fits_column(values: pd.Series) -> np.ndarray:
    """A column FITS can hold: strings as fixed-width bytes, missing numbers as NaN, booleans as is."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(float if values.isna().any() else values.dtype.numpy_dtype
                               if hasattr(values.dtype, "numpy_dtype") else values.dtype)
    return values.fillna("").astype(str).to_numpy(str)


def fits_unit(unit: str) -> str:
    """``unit`` in the FITS standard's spelling where astropy knows it (``km/s`` → ``km s-1``), else as given
    (FITS allows any TUNITn string; ``dex``, ``mag`` or ``mass fraction`` stay readable)."""
    import astropy.units as u

    try:
        return u.Unit(unit).to_string("fits")
    except (ValueError, TypeError, u.UnitsError):
        return unit


def _fits_bytes(table: pd.DataFrame, prov: Provenance, units: dict[str, str]) -> bytes:
    from astropy.io import fits
    from astropy.table import Table

    out = Table({str(col): _fits_column(table[col]) for col in table.columns})
    hdu = fits.table_to_hdu(out)
    hdu.name = "ATLAS"
    for i, name in enumerate(out.colnames, start=1):
        if units.get(name):
            hdu.header[f"TUNIT{i}"] = fits_unit(units[name])
    header = hdu.header
    header["ATLAS"] = (prov.atlas[:68], "Galaxy Feature Atlas run")
    header["MANIFEST"] = prov.manifest_sha256
    header["SWVERS"] = (prov.version, "galaxy-feature-atlas version")
    header["DATE"] = (prov.created, "UTC time of export")
    header["PROVJSON"] = prov.to_json(compact=True)
    for line in prov.lines():
        header.add_comment(line[:72])
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()
