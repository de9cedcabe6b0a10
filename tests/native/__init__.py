"""The native tests (kcovdf.native): a package, so that its conftest and helpers keep their own names."""
