"""Export of figures, galleries, tables and whole views, each with its provenance.

``python -m galaxyml.export URL_OR_DEEP_LINK -o fig.png`` writes a screenshot of a view (see
:mod:`galaxyml.export.screenshot`).
"""

from galaxyml.export.figures import FIGURE_FORMATS, ExportUnavailable, figure_bytes, publication_style
from galaxyml.export.gallery import GALLERY_FORMATS, gallery_bytes
from galaxyml.export.provenance import Provenance, read_provenance, stamp
from galaxyml.export.tables import TABLE_FORMATS, EmptyExport, table_bytes

__all__ = ["FIGURE_FORMATS", "GALLERY_FORMATS", "TABLE_FORMATS", "EmptyExport", "ExportUnavailable", "Provenance",
           "figure_bytes", "gallery_bytes", "publication_style", "read_provenance", "stamp", "table_bytes"]
