"""Build of kcovdf's three C extensions; the rest is pure Python.

kcovdf._core._recorder is the hot path: one translation unit, _recorder.c, that
includes the files it is split into (see _core/kdf.h), so the encoder inlines into
the writers without LTO. kcovdf._core._scan is the decoder's record scanner,
owned by kcovdf.read.decode; kcovdf._core._pair is the call pairer of kcovdf.read.calls.
"""

from setuptools import Extension, setup

CORE = "src/kcovdf/_core"
FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "kcovdf._core._recorder",
            sources=[f"{CORE}/_recorder.c"],
            # included by _recorder.c: a change to any of them rebuilds it
            depends=[f"{CORE}/{name}" for name in
                     ("kdf.h", "compat.h", "abi.h", "types.c", "layout.c", "encode.c", "record.c",
                      "native.c", "../native/runtime/kcovdf_api.h")],
            extra_compile_args=FLAGS,
        ),
        Extension("kcovdf._core._scan", sources=[f"{CORE}/scan.c"], extra_compile_args=FLAGS),
        Extension("kcovdf._core._pair", sources=[f"{CORE}/pair.c"], extra_compile_args=FLAGS),
        # the fuzzer's hot path (kcovdf.fuzz.engine): feature set, mutations, the loop
        Extension("kcovdf._core._fuzz", sources=[f"{CORE}/fuzz.c"], extra_compile_args=FLAGS),
    ]
)
