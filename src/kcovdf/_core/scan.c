/* Record scanner for kcovdf.decode (placeholder until the decoder lands). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
PyMethodDef kcovdf_scan_methods[] = {{NULL, NULL, 0, NULL}};
