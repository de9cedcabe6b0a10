/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every CPython version shim of the recorder, and every hand-copied CPython layout it
 * reads, each behind a named static inline function. Nothing else lives here: the rest
 * of the core is written against these functions and the stable parts of the C API.
 *
 * The layout mirrors (KDF_MIRRORS: 3.10 to 3.13, default build) copy each version's
 * internal headers: 3.10 Objects/dict-common.h; 3.11-3.13 Include/internal/pycore_dict.h
 * and pycore_object.h. They are never trusted blindly: layout.c tries them on probe
 * instances and dicts at import (kdf_mirrors_check) and reads through the C API when
 * they do not hold. A version outside that range compiles without them.
 */
#ifndef KCOVDF_COMPAT_H
#define KCOVDF_COMPAT_H

#include <Python.h>
#include <stdint.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#endif

/* --- shims ------------------------------------------------------------------- */

/* Whether a member descriptor's slot is an object slot read in place (T_OBJECT_EX). */
static inline int kdf_member_is_object(const PyMemberDef *m)
{
#if PY_VERSION_HEX < 0x030C0000
	return m->type == T_OBJECT_EX;
#else
	return m->type == Py_T_OBJECT_EX;
#endif
}

/* The type's version tag, 0 when it has none (any change to the class invalidates it). */
static inline unsigned int kdf_type_version(PyTypeObject *tp)
{
#if PY_VERSION_HEX < 0x030C0000
	return PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
#else
	return tp->tp_version_tag; /* 0 once modified, until reassigned */
#endif
}

/* The type's own dict (new reference); static builtin types keep it elsewhere on 3.12+. */
static inline PyObject *kdf_type_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
	return PyType_GetDict(tp);
#else
	return Py_XNewRef(tp->tp_dict);
#endif
}

/* The exception being handled (new reference), or NULL. */
static inline PyObject *kdf_handled_exception(void)
{
#if PY_VERSION_HEX >= 0x030B0000
	return PyErr_GetHandledException();
#else
	PyObject *type, *value, *tb;

	PyErr_GetExcInfo(&type, &value, &tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	return value;
#endif
}

/* Make a legacy str readable (before 3.12); 0, or -1 with the error cleared. */
static inline int kdf_str_ready(PyObject *s)
{
#if PY_VERSION_HEX < 0x030C0000
	if (PyUnicode_READY(s) < 0) {
		PyErr_Clear();
		return -1;
	}
#endif
	(void)s;
	return 0;
}

/* An int of at most one digit, read in place: 1 with its value in *x, else 0. */
static inline int kdf_long_compact(PyObject *v, long long *x)
{
#if PY_VERSION_HEX >= 0x030C0000
	if (!PyUnstable_Long_IsCompact((PyLongObject *)v))
		return 0;
	*x = (long long)PyUnstable_Long_CompactValue((PyLongObject *)v);
#else
	Py_ssize_t size = Py_SIZE(v);

	if (size < -1 || size > 1)
		return 0;
	*x = (long long)size * (long long)((PyLongObject *)v)->ob_digit[0];
#endif
	return 1;
}

#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
/* exported by libpython 3.13 (internal/pycore_function.h); what PyFunction_New calls */
extern void _PyFunction_SetVersion(PyFunctionObject *func, uint32_t version);
#endif

/*
 * After func.__code__ = code: 3.13's setter leaves the function without a version, and
 * a call site can only specialize for a function with one, so give it the version a new
 * function of that code gets. 3.11 and 3.12 assign one lazily themselves.
 */
static inline void kdf_function_keep_version(PyObject *func, PyObject *code)
{
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
	if (((PyFunctionObject *)func)->func_code == code)
		_PyFunction_SetVersion((PyFunctionObject *)func, ((PyCodeObject *)code)->co_version);
#else
	(void)func;
	(void)code;
#endif
}

/* Free-threaded build: another thread may be replacing an instance's attributes. */
static inline int kdf_free_threaded(void)
{
#ifdef Py_GIL_DISABLED
	return 1;
#else
	return 0;
#endif
}

/* Whether instances of tp keep a dict (or inline values) CPython manages itself (3.11+). */
static inline int kdf_type_managed_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000
	return PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT);
#else
	(void)tp;
	return 0;
#endif
}

/* Whether this version can keep an instance's attributes inline, away from any dict. */
static inline int kdf_has_inline_values(void)
{
	return PY_VERSION_HEX >= 0x030B0000;
}

/* --- frames ------------------------------------------------------------------------
 *
 * The shadow stack (record.c) names a call by its frame: the interpreter's frame of the
 * instrumented function, read where CPython keeps the thread's current frame, without
 * materializing a frame object. 3.10: PyFrameObject (public frameobject.h); 3.11-3.13: the
 * first fields of struct _PyInterpreterFrame (Include/internal/pycore_frame.h), mirrored
 * below and tried at import by kdf_frames_check() (record.c): without them, or if they do
 * not hold, kdf_frames_ok stays 0 and calls are paired by stack position alone.
 */
#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define KDF_FRAMES 1
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>
#elif PY_VERSION_HEX < 0x030C0000
struct kdf_iframe {
	PyObject *f_func, *f_globals, *f_builtins, *f_locals;
	PyObject *f_code;
	PyObject *frame_obj;
	struct kdf_iframe *previous;
};
#else
struct kdf_iframe {
	PyObject *f_executable; /* 3.12: f_code */
	struct kdf_iframe *previous;
};
#endif

/* The calling thread's current frame: the Python function that called into the core. */
static inline void *kdf_frame_current(void)
{
	PyThreadState *ts = PyThreadState_GET();
#if PY_VERSION_HEX < 0x030B0000
	return ts->frame;
#elif PY_VERSION_HEX < 0x030D0000
	return ts->cframe->current_frame;
#else
	return ts->current_frame;
#endif
}

static inline void *kdf_frame_back(void *f)
{
#if PY_VERSION_HEX < 0x030B0000
	return ((PyFrameObject *)f)->f_back;
#else
	return ((struct kdf_iframe *)f)->previous;
#endif
}

/* The frame's code object (borrowed), or NULL for a frame that runs none (3.12+ shims). */
static inline PyObject *kdf_frame_code(void *f)
{
#if PY_VERSION_HEX < 0x030B0000
	return (PyObject *)((PyFrameObject *)f)->f_code;
#elif PY_VERSION_HEX < 0x030C0000
	return ((struct kdf_iframe *)f)->f_code;
#else
	PyObject *code = ((struct kdf_iframe *)f)->f_executable;

	return code && PyCode_Check(code) ? code : NULL;
#endif
}
#endif

/* --- layout mirrors ------------------------------------------------------------ */

#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define KDF_MIRRORS 1

#if PY_VERSION_HEX < 0x030B0000
/* struct _dictkeysobject (3.10): indices of 1 to 8 bytes by size, then the entries */
struct kdf_dk {
	Py_ssize_t dk_refcnt;
	Py_ssize_t dk_size;
	void *dk_lookup;
	Py_ssize_t dk_usable;
	Py_ssize_t dk_nentries;
	char dk_indices[];
};

struct kdf_uentry { /* PyDictKeyEntry: a split table's values are in ma_values */
	Py_hash_t me_hash;
	PyObject *me_key, *me_value;
};
#else
/* struct _dictkeysobject (3.11-3.13, default build) */
struct kdf_dk {
	Py_ssize_t dk_refcnt;
	uint8_t dk_log2_size;
	uint8_t dk_log2_index_bytes;
	uint8_t dk_kind; /* DICT_KEYS_GENERAL 0, UNICODE 1, SPLIT 2 */
	uint32_t dk_version;
	Py_ssize_t dk_usable;
	Py_ssize_t dk_nentries;
	char dk_indices[];
};

struct kdf_uentry { /* PyDictUnicodeEntry */
	PyObject *me_key, *me_value;
};
#endif

#if PY_VERSION_HEX >= 0x030D0000
/* struct _dictvalues (3.13): the insertion order follows values[capacity] */
struct kdf_dv {
	uint8_t capacity, size, embedded, valid;
	PyObject *values[1];
};
#endif

/* A dict's keys object and its values array (NULL unless a split table). */
static inline const struct kdf_dk *kdf_dict_keys(PyObject *d)
{
	return (const struct kdf_dk *)((PyDictObject *)d)->ma_keys;
}

static inline void *kdf_dict_values(PyObject *d)
{
	return (void *)((PyDictObject *)d)->ma_values;
}

/* The shared keys of a class's instances (split tables and inline values). */
static inline const struct kdf_dk *kdf_split_keys(PyTypeObject *tp)
{
	return (const struct kdf_dk *)((PyHeapTypeObject *)tp)->ht_cached_keys;
}

static inline Py_ssize_t kdf_keys_nentries(const struct kdf_dk *dk)
{
	return dk->dk_nentries;
}

/* The keys' entry table, as split tables (and str-keyed ones, 3.11+) hold it. */
static inline const struct kdf_uentry *kdf_keys_entries(const struct kdf_dk *dk)
{
#if PY_VERSION_HEX < 0x030B0000
	size_t n = (size_t)dk->dk_size;
	size_t ix = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffff ? 4 : 8;

	return (const struct kdf_uentry *)(dk->dk_indices + ix * n);
#else
	return (const struct kdf_uentry *)(dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes));
#endif
}

/* Words per entry: PyDictKeyEntry (hash, key, value), or PyDictUnicodeEntry (3.11+, str keys). */
static inline int kdf_keys_entry_words(const struct kdf_dk *dk)
{
#if PY_VERSION_HEX < 0x030B0000
	(void)dk;
	return 3;
#else
	return dk->dk_kind == 0 ? 3 : 2;
#endif
}

/* The key word of a combined table's first entry: key and value are each entry's last two. */
static inline PyObject *const *kdf_keys_first_key(const struct kdf_dk *dk)
{
	return (PyObject *const *)kdf_keys_entries(dk) + (kdf_keys_entry_words(dk) - 2);
}

/* Whether keys can back a split table (3.11+: general keys cannot). */
static inline int kdf_keys_splittable(const struct kdf_dk *dk)
{
#if PY_VERSION_HEX < 0x030B0000
	return dk != NULL;
#else
	return dk && dk->dk_kind != 0;
#endif
}

/* The values array of a split table or inline values: values[ix] for key index ix. */
static inline PyObject **kdf_split_values(void *dv)
{
#if PY_VERSION_HEX >= 0x030D0000
	return ((struct kdf_dv *)dv)->values;
#else
	return (PyObject **)dv;
#endif
}

/* Their insertion order (3.11+; NULL on 3.10, where it is the key order). */
static inline const uint8_t *kdf_split_order(void *dv)
{
#if PY_VERSION_HEX >= 0x030D0000
	return (const uint8_t *)&((struct kdf_dv *)dv)->values[((struct kdf_dv *)dv)->capacity];
#elif PY_VERSION_HEX >= 0x030B0000
	/* values, preceded by [-1] prefix size, [-2] used size, [-3 - i] insertion order */
	return (const uint8_t *)dv - 3;
#else
	(void)dv;
	return NULL;
#endif
}

/* Key index of the i-th attribute: 3.10 keeps a split table in key order (a deletion
 * or another order makes it combined), 3.11+ records the order beside the values. */
static inline size_t kdf_split_index(const uint8_t *order, Py_ssize_t i)
{
#if PY_VERSION_HEX >= 0x030D0000
	return order[i];
#elif PY_VERSION_HEX >= 0x030B0000
	return order[-i];
#else
	(void)order;
	return (size_t)i;
#endif
}

/* How many key indices a walk over a split table visits: 3.10 all of them (skipping
 * those without a value, as PyDict_Next does), 3.11+ the `used` ones in order. */
static inline Py_ssize_t kdf_split_walk(Py_ssize_t used, Py_ssize_t nentries)
{
#if PY_VERSION_HEX >= 0x030B0000
	(void)nentries;
	return used;
#else
	(void)used;
	return nentries;
#endif
}
#endif /* KDF_MIRRORS */

#if PY_VERSION_HEX >= 0x030B0000
/* The managed dict pointer of an instance: three words before the object (3.11+). */
static inline PyObject **kdf_managed_dict_ptr(PyObject *obj)
{
	return (PyObject **)((char *)obj - 3 * (Py_ssize_t)sizeof(PyObject *));
}
#endif

/*
 * Where a managed-dict instance (kdf_type_managed_dict) keeps its attributes:
 * 1 inline, in *dv with *used of them (keyed by kdf_split_keys(tp)); 0 in the dict
 * *dict (NULL: none yet); -1 unknown here. Without the mirrors only the dict pointer
 * is known, and only while it is set.
 */
static inline int kdf_inline_values(PyObject *obj, PyTypeObject *tp, PyObject **dict, void **dv,
				    Py_ssize_t *used)
{
#if PY_VERSION_HEX < 0x030B0000
	(void)obj, (void)tp, (void)dict, (void)dv, (void)used;
	return -1;
#elif defined(KDF_MIRRORS) && PY_VERSION_HEX >= 0x030D0000
	/* inline values after the object, valid while no dict has taken them over */
	if (PyType_HasFeature(tp, Py_TPFLAGS_INLINE_VALUES)) {
		struct kdf_dv *v = (struct kdf_dv *)((char *)obj + sizeof(PyObject));

		if (tp->tp_basicsize != sizeof(PyObject))
			return -1;
		if (v->valid) {
			*dv = v;
			*used = v->size;
			return 1;
		}
	}
	*dict = *kdf_managed_dict_ptr(obj);
	return 0;
#elif defined(KDF_MIRRORS) && PY_VERSION_HEX >= 0x030C0000
	/* PyDictOrValues: a dict, or the values pointer - 1 (its low bit set) */
	uintptr_t w = *(uintptr_t *)kdf_managed_dict_ptr(obj);

	(void)tp;
	if (w & 1) {
		*dv = (void *)(w + 1);
		*used = ((uint8_t *)(w + 1))[-2];
		return 1;
	}
	*dict = (PyObject *)w;
	return 0;
#elif defined(KDF_MIRRORS)
	/* 3.11: the values pointer one word below the dict pointer */
	void *v = *(void **)((char *)kdf_managed_dict_ptr(obj) - sizeof(PyObject *));

	(void)tp;
	if (v) {
		*dv = v;
		*used = ((uint8_t *)v)[-2];
		return 1;
	}
	*dict = *kdf_managed_dict_ptr(obj);
	return 0;
#else
	/* a later version: only its dict pointer, which kept this place so far */
	(void)tp, (void)dv, (void)used;
	*dict = *kdf_managed_dict_ptr(obj);
	return *dict ? 0 : -1;
#endif
}

#endif /* KCOVDF_COMPAT_H */
