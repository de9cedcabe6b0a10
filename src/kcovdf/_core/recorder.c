/* Placeholder until the C core lands: an empty module so the package builds. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_recorder", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__recorder(void) { return PyModule_Create(&mod); }
