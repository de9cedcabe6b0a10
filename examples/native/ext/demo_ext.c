/*
 * A small C extension for kcovdf's native example: build it with CC="kcovdf cc" and a
 * Python caller, this C code and the Python callback it calls record into one trace.
 *
 *   CC="kcovdf cc" pip install ./examples/native/ext
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

struct point {
	long x;
	long y;
};

/* Plain C under the extension function: its struct argument is decomposed. */
static __attribute__((noinline)) long manhattan(const struct point *p)
{
	return labs(p->x) + labs(p->y);
}

/* apply(f, x, y): f(manhattan(x, y)), calling back into Python. */
static PyObject *apply(PyObject *self, PyObject *args)
{
	PyObject *f;
	struct point p;

	if (!PyArg_ParseTuple(args, "Oll", &f, &p.x, &p.y))
		return NULL;
	return PyObject_CallFunction(f, "l", manhattan(&p));
}

static PyMethodDef methods[] = {
	{"apply", apply, METH_VARARGS, "apply(f, x, y): f(|x| + |y|)"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "demo_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_demo_ext(void)
{
	return PyModule_Create(&module);
}
