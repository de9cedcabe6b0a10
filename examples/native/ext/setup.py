"""kcovdf's native example extension: CC="kcovdf cc" pip install ./examples/native/ext."""

from setuptools import Extension, setup

setup(name="kcovdf-demo-ext", version="0.1", ext_modules=[Extension("demo_ext", ["demo_ext.c"])])
