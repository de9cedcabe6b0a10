/*
 * An empty C call with the recorder writers' calling convention (METH_FASTCALL):
 * benchmarks/record_cost.py's baseline. The benchmark compiles it for the running
 * interpreter into a temporary directory; it is never part of the shipped package.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *noop(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
	{"noop", (PyCFunction)(void (*)(void))noop, METH_FASTCALL, "noop(*args)\n--\n\nAn empty C call."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_kcovdf_noop",
	.m_size = -1,
	.m_methods = methods,
};

PyMODINIT_FUNC PyInit__kcovdf_noop(void)
{
	return PyModule_Create(&module);
}
