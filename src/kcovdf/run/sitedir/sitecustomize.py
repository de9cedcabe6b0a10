"""Start kcovdf recording in a Python child of ``kcovdf run``, then chain to the real sitecustomize.

``kcovdf run`` puts this file's directory first on PYTHONPATH. At startup the
interpreter imports it as ``sitecustomize``; it removes its directory from
``sys.path`` again (so the program sees the path it would have had), starts
recording when ``KCOVDF_TRACE`` names a trace, and then imports the
``sitecustomize`` that would otherwise have run, if there is one. Nothing here
may change what the child does: if kcovdf cannot start (another interpreter
without kcovdf, say), the child runs untraced.
"""

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))


def _without_here(path):
    return [p for p in path if os.path.abspath(p or os.curdir) != _here]


def _start():
    try:
        from kcovdf.run.bootstrap import start_from_environ
    except ImportError:
        return  # kcovdf is not importable by this interpreter
    start_from_environ()


def _chain():
    """Import the sitecustomize this one hides; it becomes sys.modules['sitecustomize']."""
    me = sys.modules.pop(__name__, None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        if me is not None:
            sys.modules[__name__] = me


if __name__ == "sitecustomize":
    sys.path[:] = _without_here(sys.path)
    _start()
    _chain()
