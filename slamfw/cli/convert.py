"""``slamfw convert --reader NAME --data PATH -o spectra.fits``."""
from __future__ import annotations

import argparse

from .commands import key_values


def add_convert(sub: argparse._SubParsersAction, subparser) -> None:
    sp = subparser(sub, "convert", cmd_convert,
                   "write any reader's spectra in the table format (to inspect or reuse them)")
    sp.add_argument("--reader", required=True, help="reader name (see `slamfw plugins --kind reader`)")
    sp.add_argument("--data", default=None, help="the reader's input path (file, directory, glob or list)")
    sp.add_argument("--reader-param", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("-o", "--output", required=True, help="spectra table (.fits, .fits.gz, .ecsv or .npz)")
    sp.add_argument("--force", action="store_true", help="replace an existing output file")


def cmd_convert(args: argparse.Namespace) -> int:
    from ..workflows.convert import convert_spectra
    res = convert_spectra(args.reader, args.output, args.data, key_values(args.reader_param, "--reader-param"),
                          force=args.force)
    grid = "a grid per star" if res.per_star_grid else "one grid"
    print(f"{res.n_stars} spectra ({res.n_pixels} pixels, {grid}) written to {res.path}"
          + (f"; rejected files listed in {res.rejected}" if res.rejected else ""))
    return 0
