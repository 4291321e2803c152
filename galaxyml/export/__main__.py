"""``python -m galaxyml.export URL_OR_DEEP_LINK -o fig.png``: a screenshot of a view of the atlas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from galaxyml.export.screenshot import ScreenshotError, app_server, capture


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m galaxyml.export",
        description="Write a PNG or PDF of a view of the Galaxy Feature Atlas, with its provenance (atlas, manifest "
                    "and stage hashes, version, date, link) in the file and in a sidecar .json.",
        epilog="Examples: python -m galaxyml.export 'atlas?run=demo&feature=12' -o feature12.png; "
               "python -m galaxyml.export http://localhost:8501/clusters?run=demo -o sky.pdf --element 'Sky'")
    ap.add_argument("target", help="a URL of a running app (http://...), or a deep link such as "
                                   "'atlas?run=demo&feature=3' for which the app is started on a free local port")
    ap.add_argument("-o", "--output", type=Path, required=True, help="file to write: .png or .pdf")
    ap.add_argument("--element", help="capture only the section of this heading or the figure under this label "
                                      "(e.g. 'Top 30 galaxies')")
    ap.add_argument("--home", type=Path, help="folder of the atlases (default: $GALAXYML_HOME or ./runs)")
    ap.add_argument("--width", type=int, default=1400, help="browser width [px] (default 1400)")
    ap.add_argument("--height", type=int, default=1000, help="browser height [px] (default 1000)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the view to settle")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.target.startswith(("http://", "https://")):
            result = capture(args.target, args.output, args.element, args.width, args.height, args.timeout, args.home)
        else:
            with app_server(args.home) as base:
                link = f"/{args.target.lstrip('/')}"
                result = capture(base + link, args.output, args.element, args.width, args.height, args.timeout,
                                 args.home, link=link)
    except ScreenshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {result.path} ({result.path.stat().st_size / 1024:.0f} KiB) in {result.seconds:.1f} s "
          f"from {result.provenance.link}; provenance in {result.path}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
