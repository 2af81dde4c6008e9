"""Makes the helpers next to these tests (decode_fixtures, official_parser_reference) importable."""
import pathlib
import sys

_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)
