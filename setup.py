"""Build of the one C extension, kcovdf._core (the hot path); the rest is pure Python."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kcovdf._core._recorder",
            sources=["src/kcovdf/_core/recorder.c", "src/kcovdf/_core/scan.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"],
        )
    ]
)
