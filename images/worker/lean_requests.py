"""Imported before requests, so requests leaves out what this worker never runs.

requests imports charset_normalizer only to guess the text encoding of an answer
(Response.text, Response.apparent_encoding); the worker reads raw bytes and never decodes text.
charset_normalizer imports every codec of Python to build its tables: about 3 MiB of the
worker's 39 (docs/benchmarks.md). requests runs without it (apparent_encoding then answers
"utf-8") and says so once in a RequestsDependencyWarning, which is silenced here alone.

Nothing changes in a process that imported requests before this module (the tests do)."""
import sys
import warnings

if "requests" not in sys.modules:
    for _unused in ("charset_normalizer", "chardet"):
        sys.modules.setdefault(_unused, None)   # `import` of it raises ImportError
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
