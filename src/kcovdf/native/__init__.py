"""Native code (C, Rust) recorded into kcovdf's buffers through LLVM IR (docs/native.md).

- ``toolchain``: LLVM 19's tools, and the pass plugin and runtime built from source on first use;
- ``ir_pass``: the pass over textual IR (``kcovdf llvm-pass``);
- ``cc``: ``kcovdf cc``, a drop-in for cc; ``rustc``: ``kcovdf rustc``, the same for Rust;
- ``pass/KcovdfDataflow.cpp``: the LLVM 19 plugin; ``runtime/runtime.c``: the callbacks linked
  into instrumented code, which forward to the C core (``_core/native.c``).
"""
