// SPDX-License-Identifier: GPL-2.0
/*
 * kcovdf._core._recorder: the record writers of KCOV-Dataflow for Python.
 *
 * Per-thread state: one struct kdf_task per OS thread (_Thread_local).
 *   area, size  the enabled buffer (area[0] counts the words after it) and its
 *               length in words; area == NULL means "not enabled" (the mode check);
 *   hdr         the .kdf header page in front of it (drops and owner words);
 *   seq         24-bit sequence: reset to 0 by enable(), pre-incremented per record;
 *   busy        re-entrancy guard: set while a record is being made, so that
 *               finalizers, signal handlers, the runtime itself or the test seam's
 *               record hook (an "interrupt" mid-record) record nothing;
 *   holder      the kdf_holder that keeps the mapping exported.
 * Only its own thread touches a kdf_task.
 *
 * Lifecycle, as kernel/kcov.c: enable() CASes the header's owner word 0 -> tid and
 * stores a kdf_holder (the Py_buffer export of the mapping) in the thread's state
 * dict; disable() stores owner 0 and drops the holder. If the thread ends while
 * enabled, CPython clears that dict on the exiting thread and the holder's dealloc
 * does what disable() would: it clears the kdf_task, the owner word (when it still
 * names this thread of this process) and the export. A holder inherited through
 * fork belongs to the parent: the child only lets go of its export.
 *
 * Shared words: buf[0] and the header's drops and owner words may be written by
 * several threads and by processes sharing a MAP_SHARED mapping after fork; they
 * change only through atomic compare-and-swap or fetch-add. Every other global
 * (type cache, seen ids, table fds, remembered lines, active count) is protected
 * by the GIL: nothing in this file releases it.
 *
 * Decomposition never runs code of the traced program: types are read through
 * Py_TYPE and their C slots, values through their C storage (PyLong digits, the
 * PyUnicode data, tp_members offsets, an instance's inline values or dict where
 * CPython keeps them, dict entries), with automatic garbage collection paused around
 * the few allocations, so no finalizer runs in the middle of a record. Recording
 * does not make an instance dict that was not there (kdf_attrs_of).
 *
 * The file reads like kcov.c: the hot path (mode check, encoder, bounded append,
 * drop counter), then the type table, then enable/disable, then the module table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define KDF_T_OBJECT_EX T_OBJECT_EX
#else
#define KDF_T_OBJECT_EX Py_T_OBJECT_EX
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kcovdf buffers hold little-endian words updated in place: big-endian hosts are not supported"
#endif

/* scan.c: the decoder's record scanner, added to this module at init. */
extern PyMethodDef kcovdf_scan_methods[];

struct kdf_task {
	uint64_t *area;
	uint64_t size;
	uint64_t *hdr;
	uint32_t seq;
	int busy;
	PyObject *holder; /* borrowed: the thread state dict owns it */
};

/*
 * initial-exec: the module is loaded by dlopen, whose default (general dynamic) model
 * calls __tls_get_addr on every access; a few dozen bytes fit glibc's static TLS surplus.
 */
static _Thread_local struct kdf_task kdf_task __attribute__((tls_model("initial-exec")));

/* Threads of this process enabled right now (GIL). */
static long kdf_active;
/* The REDACTED sentinel. */
static PyObject *kdf_redacted;

/* One encoded value: shape word, layout word, field words. */
struct kdf_value {
	uint64_t w[KDF_MAX_VALUES];
	int n;
};

static inline void kdf_encode(PyObject *obj, int redacted, int emit, struct kdf_value *out);
static PyObject *kdf_oserror(int err, const char *fmt, ...);

/* ---------------------------------------------------------------------------
 * The hot path: mode check, encode, bounded append, drop counter.
 */

/*
 * Reserve n words after buf[0]. A record that does not fit whole is dropped and
 * counted (unless `batch`: the caller then reserves its records one by one);
 * buf[0] therefore never exceeds size - 1.
 */
static inline uint64_t *kdf_reserve(struct kdf_task *t, uint64_t n, int batch)
{
	uint64_t pos = __atomic_load_n(&t->area[0], __ATOMIC_RELAXED);

	do {
		if (pos >= t->size - 1 || n > t->size - 1 - pos) {
			if (!batch)
				__atomic_fetch_add(&t->hdr[KDF_HDR_DROPS / 8], 1, __ATOMIC_RELAXED);
			return NULL;
		}
	} while (!__atomic_compare_exchange_n(&t->area[0], &pos, pos + n, 1,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	return &t->area[1 + pos];
}

/*
 * Test seam (_set_record_hook): a callable run in the middle of every record, after
 * its words are reserved and before its values are written, with the guard held: it
 * stands for the kernel's interrupt arriving mid-record. NULL in production, so the
 * hot path pays one load and test.
 */
static PyObject *kdf_hook;

/*
 * Run the hook. Returns -1 if it left this thread on another buffer (it disabled
 * it): the reserved words must not be written through the old pointer. What the
 * hook raises is dropped, as nothing an interrupt does can fail the record.
 */
static __attribute__((noinline, cold)) int kdf_call_hook(struct kdf_task *t)
{
	uint64_t *area = t->area;
	PyObject *hook = Py_NewRef(kdf_hook), *r;

	r = PyObject_CallNoArgs(hook);
	Py_DECREF(hook);
	if (r)
		Py_DECREF(r);
	else
		PyErr_Clear();
	return t->area == area ? 0 : -1;
}

/* The three header words of a record whose value takes nv words. */
static inline void kdf_header(uint64_t *w, unsigned rtype, uint32_t seq, int nv, uint64_t pc,
			      unsigned arg_idx, PyObject *value)
{
	w[0] = (uint64_t)rtype << 28 | (uint64_t)(nv & 0xF) << 24 | seq;
	w[1] = pc;
	w[2] = (uint64_t)arg_idx << 56 | (uint64_t)KDF_PY_VALUE_SIZE << 48 |
	       (value == kdf_redacted ? 0 : ((uintptr_t)value & KDF_PTR_MASK));
}

/*
 * Append one encoded record (its own reservation); -1 if the thread's buffer changed
 * under it (only the hook can do that).
 */
static inline int kdf_append(struct kdf_task *t, unsigned rtype, uint64_t pc, unsigned arg_idx,
			     PyObject *value, const struct kdf_value *v)
{
	uint64_t *w;

	t->seq = (t->seq + 1) & KDF_SEQ_MASK;
	w = kdf_reserve(t, KDF_HEADER_WORDS + v->n, 0);
	if (!w)
		return 0;
	kdf_header(w, rtype, t->seq, v->n, pc, arg_idx, value);
	if (kdf_hook && kdf_call_hook(t) < 0)
		return -1;
	memcpy(&w[3], v->w, sizeof(uint64_t) * v->n);
	return 0;
}

/* One record; -1 if the thread's buffer changed under it (only the hook can do that). */
static int kdf_write(struct kdf_task *t, unsigned rtype, uint64_t pc, unsigned arg_idx,
		     PyObject *value)
{
	struct kdf_value v;

	kdf_encode(value, value == kdf_redacted, 1, &v);
	if (!t->area)
		return -1; /* cannot happen (no code ran), but never write through a stale pointer */
	return kdf_append(t, rtype, pc, arg_idx, value, &v);
}

/*
 * The entry records of args[0..n), 1 < n <= KDF_BATCH, with one reservation when they
 * fit together: the same words and drops as one kdf_write each, as no code can run
 * in between (no hook). What does not fit is appended record by record, so that
 * drops stay counted per record.
 */
#define KDF_BATCH 6

static __attribute__((noinline)) void kdf_write_batch(struct kdf_task *t, uint64_t pc,
						      PyObject *const *args, Py_ssize_t n)
{
	struct kdf_value v[KDF_BATCH];
	uint64_t need = 0, *w;
	Py_ssize_t i;

	for (i = 0; i < n; i++) {
		kdf_encode(args[i], args[i] == kdf_redacted, 1, &v[i]);
		need += KDF_HEADER_WORDS + v[i].n;
	}
	if (!t->area)
		return;
	w = kdf_reserve(t, need, 1);
	if (!w) {
		for (i = 0; i < n; i++)
			kdf_append(t, KDF_TYPE_ENTRY, pc, (unsigned)i, args[i], &v[i]);
		return;
	}
	for (i = 0; i < n; i++) {
		t->seq = (t->seq + 1) & KDF_SEQ_MASK;
		kdf_header(w, KDF_TYPE_ENTRY, t->seq, v[i].n, pc, (unsigned)i, args[i]);
		memcpy(&w[3], v[i].w, sizeof(uint64_t) * v[i].n);
		w += KDF_HEADER_WORDS + v[i].n;
	}
}

/*
 * The last pc object and its value (GIL): instrumented code passes the same
 * constant each time, and an int never changes, so identity is enough. The strong
 * reference keeps the address from being reused by another int.
 */
static PyObject *kdf_pc_obj;
static uint64_t kdf_pc_val;

static int kdf_pc(const char *call, PyObject *o, uint64_t *pc)
{
	if (o == kdf_pc_obj) {
		*pc = kdf_pc_val;
		return 0;
	}
	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s(): pc must be an int, not %.100s", call,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	*pc = PyLong_AsUnsignedLongLongMask(o); /* cannot fail on an int */
	if (PyLong_CheckExact(o)) {
		/* no Python code runs when an exact int dies: safe inside a record */
		Py_XSETREF(kdf_pc_obj, Py_NewRef(o));
		kdf_pc_val = *pc;
	}
	return 0;
}

static PyObject *kdf_entry(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	uint64_t pc;
	Py_ssize_t i, n;

	if (nargs < 1) {
		PyErr_SetString(PyExc_TypeError, "entry() missing its pc argument");
		return NULL;
	}
	if (!t->area || t->busy)
		Py_RETURN_NONE;
	if (args[0] == kdf_pc_obj)
		pc = kdf_pc_val;
	else if (kdf_pc("entry", args[0], &pc) < 0)
		return NULL;
	n = nargs - 1;
	if (n > KDF_ARG_MAX_PARAM + 1)
		n = KDF_ARG_MAX_PARAM + 1;
	t->busy = 1;
	if (n > 1 && n <= KDF_BATCH && !kdf_hook) {
		kdf_write_batch(t, pc, args + 1, n);
	} else {
		for (i = 0; i < n; i++)
			if (kdf_write(t, KDF_TYPE_ENTRY, pc, (unsigned)i, args[1 + i]) < 0)
				break;
	}
	t->busy = 0;
	Py_RETURN_NONE;
}

/* One return-type record; returns a new reference to value (ret, yld). */
static PyObject *kdf_return(const char *call, unsigned arg_idx, PyObject *const *args,
			    Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	uint64_t pc;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (pc, value), got %zd", call,
			     nargs);
		return NULL;
	}
	if (t->area && !t->busy) {
		if (kdf_pc(call, args[0], &pc) < 0)
			return NULL;
		t->busy = 1;
		kdf_write(t, KDF_TYPE_RETURN, pc, arg_idx, args[1]);
		t->busy = 0;
	}
	return Py_NewRef(args[1]);
}

static PyObject *kdf_ret(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	return kdf_return("ret", KDF_ARG_RETURN, args, nargs);
}

static PyObject *kdf_yld(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	return kdf_return("yld", KDF_ARG_YIELD, args, nargs);
}

static PyObject *kdf_exc(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	PyObject *value;
	uint64_t pc;

	if (nargs < 1 || nargs > 2) {
		PyErr_Format(PyExc_TypeError, "exc() takes 1 or 2 arguments (pc[, exc]), got %zd",
			     nargs);
		return NULL;
	}
	if (!t->area || t->busy)
		Py_RETURN_NONE;
	if (kdf_pc("exc", args[0], &pc) < 0)
		return NULL;
	if (nargs == 2) {
		value = Py_NewRef(args[1]);
	} else {
#if PY_VERSION_HEX >= 0x030B0000
		value = PyErr_GetHandledException();
#else
		PyObject *type, *tb;

		PyErr_GetExcInfo(&type, &value, &tb);
		Py_XDECREF(type);
		Py_XDECREF(tb);
#endif
		if (!value)
			value = Py_NewRef(Py_None);
	}
	t->busy = 1;
	kdf_write(t, KDF_TYPE_RETURN, pc, KDF_ARG_EXCEPTION, value);
	/* the handled exception (or the caller's argument) keeps it alive: no finalizer here */
	Py_DECREF(value);
	t->busy = 0;
	Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------
 * Strings: UTF-8 by hand from the PyUnicode data, so nothing is cached on the
 * object and lone surrogates encode as 'surrogatepass' does.
 */

static int kdf_utf8_char(Py_UCS4 c, unsigned char *b)
{
	if (c < 0x80) {
		b[0] = (unsigned char)c;
		return 1;
	}
	if (c < 0x800) {
		b[0] = (unsigned char)(0xC0 | c >> 6);
		b[1] = (unsigned char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		b[0] = (unsigned char)(0xE0 | c >> 12);
		b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (unsigned char)(0x80 | (c & 0x3F));
		return 3;
	}
	b[0] = (unsigned char)(0xF0 | c >> 18);
	b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
	b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
	b[3] = (unsigned char)(0x80 | (c & 0x3F));
	return 4;
}

static inline int kdf_utf8_len(Py_UCS4 c)
{
	return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

/*
 * UTF-8 of str s: the first `cap` bytes go to out; returns the byte length of the
 * whole encoding, or any value >= stop once it is known to reach stop. -1 if the
 * str cannot be read (an unready legacy str that fails to become ready).
 */
static Py_ssize_t kdf_utf8(PyObject *s, unsigned char *out, Py_ssize_t cap, Py_ssize_t stop)
{
	Py_ssize_t len, i, nb = 0;
	const void *data;
	int kind;

#if PY_VERSION_HEX < 0x030C0000
	if (PyUnicode_READY(s) < 0) {
		PyErr_Clear();
		return -1;
	}
#endif
	len = PyUnicode_GET_LENGTH(s);
	data = PyUnicode_DATA(s);
	if (PyUnicode_IS_ASCII(s)) {
		memcpy(out, data, (size_t)(len < cap ? len : cap));
		return len;
	}
	kind = PyUnicode_KIND(s);
	for (i = 0; i < len && nb < cap; i++) {
		unsigned char b[4];
		int k = kdf_utf8_char(PyUnicode_READ(kind, data, i), b), j;

		for (j = 0; j < k; j++)
			if (nb + j < cap)
				out[nb + j] = b[j];
		nb += k;
	}
	if (kind == PyUnicode_1BYTE_KIND) {
		const Py_UCS1 *p = data;

		for (; i < len && nb < stop; i++)
			nb += 1 + (p[i] >= 0x80);
	} else {
		for (; i < len && nb < stop; i++)
			nb += kdf_utf8_len(PyUnicode_READ(kind, data, i));
	}
	return nb;
}

static inline int kdf_str_eq(PyObject *a, PyObject *b)
{
	/* exact strs only: equal text has equal kind (compact strs use the smallest) */
	Py_hash_t ha = ((PyASCIIObject *)a)->hash, hb = ((PyASCIIObject *)b)->hash;

	if (a == b)
		return 1;
	if ((ha != -1 && hb != -1 && ha != hb) || PyUnicode_GET_LENGTH(a) != PyUnicode_GET_LENGTH(b) ||
	    PyUnicode_KIND(a) != PyUnicode_KIND(b))
		return 0;
	return !memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
		       (size_t)(PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a)));
}

static inline uint64_t kdf_fnv(uint64_t h, const unsigned char *p, Py_ssize_t n)
{
	Py_ssize_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * KDF_FNV_PRIME;
	return h;
}

/* ---------------------------------------------------------------------------
 * Type cache: per class, its qualified name and class id, how its instances are
 * decomposed (the plan) and the last shape seen.
 *
 * Types are mutable, so an entry is keyed as follows. The name is reused while
 * the type pointer and its __qualname__ object are the same and, for heap types,
 * either the type's version tag is unchanged (setting any class attribute,
 * __module__ included, or __bases__ changes it) or its __module__ object is the
 * same; the entry keeps strong references to both strs, so identity is safe.
 * The plan holds borrowed pointers into the class dicts of the MRO and is reused
 * only while the version tag is unchanged (static types cannot change); so are the
 * plan's layout cache (struct kdf_fcache) and the "takes the OBJECT form" verdict.
 * Not noticed: in-place changes that bypass type attribute assignment, such as
 * mutating a __dataclass_fields__ dict or a Field after the class was created, or
 * giving __get__ to the class of an object that shadows a missing declared field.
 * The cache never keeps a class alive.
 */

struct kdf_slot {
	PyObject *name;  /* strong */
	PyObject *descr; /* borrowed member descriptor (valid while the tag holds) */
};

/*
 * The field layout last seen for instances of a class: the keys of their dict,
 * pointer for pointer in order (strong references, so no other str can take an
 * address), and what was derived from them. An instance whose dict holds exactly
 * these keys is encoded from its values alone. Instances of a class with only
 * __slots__ (object members) or a namedtuple have one layout, the plan's: their
 * slots at fixed offsets, their items (for one tuple length). Everything else the
 * layout depends on (the declared fields, whether a missing one is FAULT) belongs
 * to the plan, and the cache lives and dies with it.
 */
#define KDF_FC_KEYS 16
#define KDF_SRC_FAULT (-1) /* a declared field in no storage, behind a descriptor */
#define KDF_SRC_UNSET (-2) /* a declared field in no storage */

enum { KDF_FC_DICT, KDF_FC_SLOTS, KDF_FC_TUPLE };

struct kdf_fcache {
	Py_ssize_t nkeys; /* -1: empty; KDF_FC_TUPLE: the tuple length */
	int mode;	  /* where the values are: KDF_FC_* */
	PyObject *keys[KDF_FC_KEYS]; /* KDF_FC_SLOTS: the slot names; KDF_FC_TUPLE: _fields */
	Py_ssize_t off[KDF_FC_KEYS]; /* KDF_FC_SLOTS: the slots' offsets in the instance */
	int nout;
	signed char src[KDF_MAX_FIELDS];   /* per recorded field: index into keys, or KDF_SRC_* */
	PyObject *names[KDF_MAX_FIELDS];   /* borrowed from keys or the plan's declared names */
	Py_ssize_t total;
	uint64_t sid;
	int registered; /* the shape's table line was emitted */
	int direct;	/* the fields are the keys, in order (src[i] == i for all) */
};

struct kdf_plan {
	PyObject *nt_fields; /* namedtuple _fields (strong), or NULL */
	Py_ssize_t nslots;
	struct kdf_slot *slots;
	PyObject *dict_descr; /* borrowed C-level __dict__ descriptor, or NULL */
	int dict_peek;	      /* dict_descr is type_new's own: an existing dict is read in place */
	Py_ssize_t ndeclared;
	PyObject **declared; /* dataclass field names in order (strong) */
	struct kdf_fcache fc;
};

struct kdf_type {
	PyTypeObject *tp; /* key only: never dereferenced unless it is Py_TYPE(obj) */
	PyObject *qualname, *module;
	unsigned int name_tag;
	char *name; /* "module.Qualname", UTF-8 */
	Py_ssize_t nlen;
	uint64_t cid;
	int registered; /* its class-id line is in the type table */
	struct kdf_plan *plan;
	unsigned int plan_tag;
	int nshape;
	PyObject *shape_names[KDF_MAX_FIELDS];
	uint64_t shape_id;
	int shape_registered;
	int is_object; /* instances take the OBJECT form (kdf_encode_type's last case) */
	unsigned int object_tag;
	/*
	 * Nonzero: the tag at which name, OBJECT form and plan (with a layout cache read
	 * in place) were all found valid; kdf_encode goes straight to the layout cache
	 * while the type still has this tag and qualname.
	 */
	unsigned int fast_tag;
};

#define KDF_TYPE_SLOTS 1024
static struct kdf_type kdf_types[KDF_TYPE_SLOTS];
/* The entry of the object being decomposed must survive nested lookups. */
static struct kdf_type *kdf_pinned;
static struct kdf_type kdf_scratch;

static PyObject *s_module, *s_slots, *s_dict, *s_fields, *s_dc_fields, *s_get, *s_field_type,
	*s_Field, *s_FIELD, *s_dataclasses, *s_task_key;

static unsigned int kdf_tag(PyTypeObject *tp)
{
#if PY_VERSION_HEX < 0x030C0000
	return PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
#else
	return tp->tp_version_tag; /* 0 once modified, until reassigned */
#endif
}

/* The type's own dict (new reference); static builtin types keep it elsewhere on 3.12+. */
static PyObject *kdf_type_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
	return PyType_GetDict(tp);
#else
	return Py_XNewRef(tp->tp_dict);
#endif
}

/* Borrowed item of a dict, NULL (no error set) if absent or unreadable. */
static PyObject *kdf_dict_get(PyObject *d, PyObject *key)
{
	PyObject *v = d ? PyDict_GetItemWithError(d, key) : NULL;

	if (!v)
		PyErr_Clear();
	return v;
}

static PyObject *kdf_heap_module(PyTypeObject *tp)
{
	return kdf_dict_get(tp->tp_dict, s_module);
}

static void kdf_plan_free(struct kdf_plan *p)
{
	Py_ssize_t i;

	if (!p)
		return;
	Py_XDECREF(p->nt_fields);
	for (i = 0; i < p->fc.nkeys; i++)
		Py_DECREF(p->fc.keys[i]);
	for (i = 0; i < p->nslots; i++)
		Py_DECREF(p->slots[i].name);
	for (i = 0; i < p->ndeclared; i++)
		Py_DECREF(p->declared[i]);
	PyMem_Free(p->slots);
	PyMem_Free(p->declared);
	PyMem_Free(p);
}

static void kdf_type_clear(struct kdf_type *te)
{
	int i;

	Py_CLEAR(te->qualname);
	Py_CLEAR(te->module);
	PyMem_Free(te->name);
	kdf_plan_free(te->plan);
	for (i = 0; i < te->nshape; i++)
		Py_DECREF(te->shape_names[i]);
	memset(te, 0, sizeof(*te));
}

static int kdf_type_fill(struct kdf_type *te, PyTypeObject *tp)
{
	const char *mod = "?", *qual;
	Py_ssize_t mlen = 1, qlen;
	PyObject *mstr = NULL, *qstr = NULL;

	te->tp = tp;
	if (PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) {
		PyObject *m = kdf_heap_module(tp);

		te->qualname = Py_NewRef(((PyHeapTypeObject *)tp)->ht_qualname);
		te->module = Py_XNewRef(m);
		te->name_tag = kdf_tag(tp);
		if (m && PyUnicode_Check(m)) {
			mstr = m;
			mlen = kdf_utf8(m, NULL, 0, PY_SSIZE_T_MAX);
		}
		qstr = te->qualname;
		qlen = PyUnicode_Check(qstr) ? kdf_utf8(qstr, NULL, 0, PY_SSIZE_T_MAX) : -1;
		if (mlen < 0 || qlen < 0)
			return -1;
		qual = NULL;
	} else {
		const char *dot = strrchr(tp->tp_name, '.');

		if (dot) {
			mod = tp->tp_name;
			mlen = dot - tp->tp_name;
			qual = dot + 1;
		} else {
			mod = "builtins";
			mlen = 8;
			qual = tp->tp_name;
		}
		qlen = (Py_ssize_t)strlen(qual);
	}
	te->nlen = mlen + 1 + qlen;
	te->name = PyMem_Malloc((size_t)te->nlen + 1);
	if (!te->name)
		return -1;
	if (mstr)
		kdf_utf8(mstr, (unsigned char *)te->name, mlen, mlen);
	else
		memcpy(te->name, mod, (size_t)mlen);
	te->name[mlen] = '.';
	if (qstr)
		kdf_utf8(qstr, (unsigned char *)te->name + mlen + 1, qlen, qlen);
	else
		memcpy(te->name + mlen + 1, qual, (size_t)qlen);
	te->name[te->nlen] = '\0';
	te->cid = kdf_fnv(KDF_FNV_OFFSET, (unsigned char *)te->name, te->nlen);
	return 0;
}

static inline size_t kdf_type_hash(PyTypeObject *tp)
{
	uintptr_t p = (uintptr_t)tp;

	return (size_t)((p >> 4) ^ (p >> 14)) & (KDF_TYPE_SLOTS - 1);
}

/* The cache entry of tp, filled if needed; NULL (no error set) when memory runs out. */
static struct kdf_type *kdf_type_of(PyTypeObject *tp)
{
	struct kdf_type *te = &kdf_types[kdf_type_hash(tp)];

	if (te->tp == tp && te->name) {
		unsigned int tag;
		PyObject *m;

		if (!PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE))
			return te;
		if (te->qualname == ((PyHeapTypeObject *)tp)->ht_qualname) {
			tag = kdf_tag(tp);
			if (tag && tag == te->name_tag)
				return te;
			m = kdf_heap_module(tp);
			if (m == te->module) {
				te->name_tag = tag;
				return te;
			}
		}
	}
	if (te == kdf_pinned)
		te = &kdf_scratch;
	kdf_type_clear(te);
	if (kdf_type_fill(te, tp) < 0) {
		kdf_type_clear(te);
		PyErr_Clear();
		return NULL;
	}
	return te;
}

static int kdf_grow(void **arr, Py_ssize_t *cap, Py_ssize_t need, size_t item)
{
	Py_ssize_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	p = PyMem_Realloc(*arr, (size_t)ncap * item);
	if (!p)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* A member descriptor of the `_field_type` slot of dataclasses.Field, from its own dict. */
static PyMemberDef *kdf_field_type_member(PyObject *field_cls)
{
	PyObject *own, *d;
	PyMemberDef *m = NULL;

	own = kdf_type_dict((PyTypeObject *)field_cls);
	d = kdf_dict_get(own, s_field_type);
	if (d && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
	    ((PyMemberDescrObject *)d)->d_member->type == KDF_T_OBJECT_EX)
		m = ((PyMemberDescrObject *)d)->d_member;
	Py_XDECREF(own);
	return m;
}

/* Dataclass fields, as declared (docs/abi.md §2.2); never imports dataclasses. */
static int kdf_plan_declared(struct kdf_plan *p, PyTypeObject *tp)
{
	PyObject *dcf = _PyType_Lookup(tp, s_dc_fields);
	PyObject *modules, *dc, *md, *field_cls, *field_mark, *name, *f;
	Py_ssize_t pos = 0, cap = 0;
	PyMemberDef *m;

	if (!dcf || !PyDict_CheckExact(dcf))
		return 0;
	/* sys.modules read directly: PyImport_GetModule may run importlib to wait on a lock */
	modules = PyImport_GetModuleDict();
	dc = PyDict_Check(modules) ? kdf_dict_get(modules, s_dataclasses) : NULL;
	if (!dc || !PyModule_Check(dc))
		return 0;
	md = PyModule_GetDict(dc);
	field_cls = kdf_dict_get(md, s_Field);
	field_mark = kdf_dict_get(md, s_FIELD);
	if (!field_cls || !PyType_Check(field_cls) || !field_mark)
		return 0;
	m = kdf_field_type_member(field_cls);
	if (!m)
		return 0;
	while (PyDict_Next(dcf, &pos, &name, &f)) {
		if (!PyUnicode_CheckExact(name) ||
		    !PyObject_TypeCheck(f, (PyTypeObject *)field_cls) ||
		    *(PyObject **)((char *)f + m->offset) != field_mark)
			continue;
		if (kdf_grow((void **)&p->declared, &cap, p->ndeclared + 1, sizeof(PyObject *)) < 0)
			return -1;
		p->declared[p->ndeclared++] = Py_NewRef(name);
	}
	return 0;
}

/* The getter of type_new's __dict__ descriptor (subtype_dict), found at module init. */
static getter kdf_subtype_dict;

/*
 * Whether reading tp's instance dict through descr returns the dict CPython keeps at
 * the type's managed or tp_dictoffset slot: descr is type_new's own and no builtin
 * base has a dict of its own (subtype_dict then defers to PyObject_GenericGetDict).
 */
static int kdf_dict_in_place(PyTypeObject *tp, PyObject *descr)
{
	PyTypeObject *b;

	if (!kdf_subtype_dict || !Py_IS_TYPE(descr, &PyGetSetDescr_Type) ||
	    ((PyGetSetDescrObject *)descr)->d_getset->get != kdf_subtype_dict)
		return 0;
	for (b = tp; b->tp_base; b = b->tp_base)
		if (b->tp_dictoffset && !PyType_HasFeature(b, Py_TPFLAGS_HEAPTYPE))
			return 0;
#if PY_VERSION_HEX >= 0x030B0000
	if (PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT))
		return 1;
#endif
	return tp->tp_dictoffset > 0;
}

/*
 * Instance attributes read where CPython keeps them, without making the dict.
 * Since 3.11 an instance of a plain class keeps its values inline, keyed by the
 * class's shared keys (ht_cached_keys), until someone asks for __dict__; asking
 * (PyObject_GenericGetDict) allocates a dict and changes what later code sees, so
 * the recorder reads the values in place. On 3.10 the dict always exists, most
 * often a split table over the shared keys. Dicts, split or combined, are read
 * by key index or entry rather than through PyDict_Next (a call per attribute).
 * The layouts mirror each version's internals (3.10 Objects/dict-common.h,
 * 3.11+ pycore_dict.h, pycore_object.h); kdf_layout_check() tries them on probe
 * instances and dicts at import and turns them off if they do not hold.
 */
#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define KDF_LAYOUT 1

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

static inline const struct kdf_uentry *kdf_uentries(const struct kdf_dk *dk)
{
	size_t n = (size_t)dk->dk_size;
	size_t ix = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffff ? 4 : 8;

	return (const struct kdf_uentry *)(dk->dk_indices + ix * n);
}

/* any entry table: key and value are its last two words */
#define KDF_ENTRY_WORDS(dk) 3
/* a split table keeps key order, deletion makes it combined: attribute i is at key index i */
#define KDF_IX(order, i) ((void)(order), (size_t)(i))
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

static inline const struct kdf_uentry *kdf_uentries(const struct kdf_dk *dk)
{
	return (const struct kdf_uentry *)(dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes));
}

/* PyDictKeyEntry (hash, key, value) for general keys, PyDictUnicodeEntry otherwise */
#define KDF_ENTRY_WORDS(dk) ((dk)->dk_kind == 0 ? 3 : 2)

#if PY_VERSION_HEX >= 0x030D0000
/* struct _dictvalues: the insertion order follows values[capacity] */
struct kdf_dv {
	uint8_t capacity, size, embedded, valid;
	PyObject *values[1];
};
#define KDF_DV_VALUES(dv) (((struct kdf_dv *)(dv))->values)
#define KDF_DV_ORDER(dv) ((const uint8_t *)&((struct kdf_dv *)(dv))->values[((struct kdf_dv *)(dv))->capacity])
#define KDF_ORD(i) (i)
#else
/* values, preceded by [-1] prefix size, [-2] used size, [-3 - i] insertion order */
#define KDF_DV_VALUES(dv) ((PyObject **)(dv))
#define KDF_DV_ORDER(dv) ((const uint8_t *)(dv) - 3)
#define KDF_ORD(i) (-(i))
#endif
/* key index of the i-th attribute of a split table */
#define KDF_IX(order, i) ((size_t)(order)[KDF_ORD(i)])
#endif

static int kdf_layout_ok; /* set by kdf_layout_check() */
#endif

/*
 * Where an instance's attributes are. A split table (values != NULL) holds the
 * value of key index ix at values[ix], the i-th attribute at KDF_IX(order, i); a
 * combined one (ent != NULL) holds key and value in its entries, in order, with
 * holes; any other dict is read through PyDict_Next.
 */
struct kdf_attrs {
	PyObject *dict; /* read with PyDict_Next (unless values or ent), or NULL */
	PyObject *owned; /* a dict the descriptor returned: dropped by kdf_attrs_done */
	Py_ssize_t used; /* number of attributes */
	Py_ssize_t pos;
#ifdef KDF_LAYOUT
	const struct kdf_dk *keys;
	PyObject **values;
	const uint8_t *order; /* 3.11+ */
	PyObject *const *ent; /* the first entry's key; the value follows it */
	Py_ssize_t nent;
	int stride; /* words per entry */
#endif
};

#ifdef KDF_LAYOUT
static inline int kdf_attrs_split(struct kdf_attrs *a, const void *keys, void *dv, Py_ssize_t used)
{
	const struct kdf_dk *dk = keys;

#if PY_VERSION_HEX >= 0x030B0000
	if (!dk || dk->dk_kind == 0)
		return -1;
	a->values = KDF_DV_VALUES(dv);
	a->order = KDF_DV_ORDER(dv);
#else
	if (!dk)
		return -1;
	a->values = dv;
	a->order = NULL;
#endif
	a->used = used;
	a->keys = dk;
	a->pos = 0;
	return 1;
}
#endif

static inline int kdf_attrs_dict(struct kdf_attrs *a, PyObject *d)
{
	a->dict = d;
	a->used = PyDict_GET_SIZE(d);
	a->pos = 0;
#ifdef KDF_LAYOUT
	a->values = NULL;
	a->ent = NULL;
	if (!kdf_layout_ok)
		return 1;
	if (((PyDictObject *)d)->ma_values) {
		/* a split table is read by key index; if its keys are not as expected, PyDict_Next */
		kdf_attrs_split(a, ((PyDictObject *)d)->ma_keys, ((PyDictObject *)d)->ma_values,
				a->used);
	} else {
		const struct kdf_dk *dk = (const struct kdf_dk *)((PyDictObject *)d)->ma_keys;
		int words = KDF_ENTRY_WORDS(dk);

		a->stride = words;
		a->nent = dk->dk_nentries;
		a->ent = (PyObject *const *)kdf_uentries(dk) + (words - 2);
	}
#endif
	return 1;
}

/*
 * The attributes of obj, for a plan with dict_peek: 1 found, 0 none (no dict and no
 * values: what asking would give is an empty dict), -1 unknown here (ask the
 * descriptor). Borrowed: no call, no allocation.
 */
static inline int kdf_attrs_of(PyObject *obj, PyTypeObject *tp, struct kdf_attrs *a)
{
	PyObject *d;

#if defined(Py_GIL_DISABLED)
	return -1; /* another thread may be replacing them */
#endif
	a->dict = a->owned = NULL;
	a->used = a->pos = 0;
#ifdef KDF_LAYOUT
	a->values = NULL;
	a->ent = NULL;
#endif
#if PY_VERSION_HEX >= 0x030B0000
#ifdef KDF_LAYOUT
	if (!kdf_layout_ok)
		return -1; /* where the values are depends on the layout */
#endif
	if (PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT)) {
		char *pre = (char *)obj - 3 * (Py_ssize_t)sizeof(PyObject *);
#if defined(KDF_LAYOUT) && PY_VERSION_HEX >= 0x030D0000
		/* inline values after the object, valid while no dict has taken them over */
		if (PyType_HasFeature(tp, Py_TPFLAGS_INLINE_VALUES)) {
			struct kdf_dv *dv = (struct kdf_dv *)((char *)obj + sizeof(PyObject));

			if (tp->tp_basicsize != sizeof(PyObject))
				return -1;
			if (dv->valid)
				return kdf_attrs_split(a, ((PyHeapTypeObject *)tp)->ht_cached_keys, dv,
						       dv->size);
		}
		d = *(PyObject **)pre;
#elif defined(KDF_LAYOUT) && PY_VERSION_HEX >= 0x030C0000
		/* PyDictOrValues: a dict, or the values pointer - 1 (its low bit set) */
		uintptr_t dv = *(uintptr_t *)pre;

		if (dv & 1)
			return kdf_attrs_split(a, ((PyHeapTypeObject *)tp)->ht_cached_keys,
					       (void *)(dv + 1), ((uint8_t *)(dv + 1))[-2]);
		d = (PyObject *)dv;
#elif defined(KDF_LAYOUT)
		/* 3.11: the values pointer one word below the dict pointer */
		void *dv = *(void **)(pre - sizeof(PyObject *));

		if (dv)
			return kdf_attrs_split(a, ((PyHeapTypeObject *)tp)->ht_cached_keys, dv,
					       ((uint8_t *)dv)[-2]);
		d = *(PyObject **)pre;
#else
		/* a later version: only its dict pointer, which kept this place so far */
		d = *(PyObject **)pre;
		if (!d)
			return -1;
#endif
	} else
#endif
	if (tp->tp_dictoffset > 0) {
		d = *(PyObject **)((char *)obj + tp->tp_dictoffset);
	} else {
		return -1;
	}
	if (!d)
		return 0;
	return PyDict_Check(d) ? kdf_attrs_dict(a, d) : -1;
}

/* The next attribute, borrowed; 0 at the end. */
static inline int kdf_attrs_next(struct kdf_attrs *a, PyObject **k, PyObject **v)
{
#ifdef KDF_LAYOUT
	if (a->values) {
		const struct kdf_uentry *ents = kdf_uentries(a->keys);
		Py_ssize_t nent = a->keys->dk_nentries;

#if PY_VERSION_HEX >= 0x030B0000
		while (a->pos < a->used) {
			size_t ix = KDF_IX(a->order, a->pos);

			a->pos++;
			if (ix >= (size_t)nent)
				return 0;
#else
		/* as PyDict_Next: every key index, skipping those without a value */
		while (a->pos < nent) {
			size_t ix = (size_t)a->pos++;
#endif
			*k = ents[ix].me_key;
			*v = a->values[ix];
			if (*k && *v)
				return 1;
		}
		return 0;
	}
	if (a->ent) {
		while (a->pos < a->nent) {
			PyObject *const *e = a->ent + a->pos++ * a->stride;

			if (e[1]) {
				*k = e[0];
				*v = e[1];
				return 1;
			}
		}
		return 0;
	}
#endif
	return a->dict ? PyDict_Next(a->dict, &a->pos, k, v) : 0;
}

/* How instances of tp (OBJECT form, or a tuple subclass) are decomposed. */
static struct kdf_plan *kdf_plan_build(PyTypeObject *tp)
{
	struct kdf_plan *p = PyMem_Calloc(1, sizeof(*p));
	PyObject *mro = tp->tp_mro, *own, *k, *v;
	Py_ssize_t i, pos, cap = 0;

	if (!p || !mro || !PyTuple_Check(mro))
		goto fail;
	p->fc.nkeys = -1;
	if (PyType_IsSubtype(tp, &PyTuple_Type)) {
		own = kdf_type_dict(tp);
		v = kdf_dict_get(own, s_fields);
		if (v && PyTuple_CheckExact(v)) {
			for (i = 0; i < PyTuple_GET_SIZE(v); i++)
				if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(v, i)))
					break;
			if (i == PyTuple_GET_SIZE(v))
				p->nt_fields = Py_NewRef(v);
		}
		Py_XDECREF(own);
		if (p->nt_fields)
			return p;
	}
	for (i = 0; i < PyTuple_GET_SIZE(mro); i++) {
		PyTypeObject *klass = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);

		/* only classes defined in Python have __slots__ members */
		if (!PyType_Check(klass) || !PyType_HasFeature(klass, Py_TPFLAGS_HEAPTYPE))
			continue;
		own = klass->tp_dict;
		if (!kdf_dict_get(own, s_slots))
			continue;
		pos = 0;
		while (PyDict_Next(own, &pos, &k, &v)) {
			if (!Py_IS_TYPE(v, &PyMemberDescr_Type))
				continue;
			if (kdf_grow((void **)&p->slots, &cap, p->nslots + 1, sizeof(struct kdf_slot)) < 0)
				goto fail;
			p->slots[p->nslots].name = Py_NewRef(k);
			p->slots[p->nslots++].descr = v;
		}
	}
	/* a class or module dict is a namespace, not state */
	if (!PyType_IsSubtype(tp, &PyType_Type) && !PyType_IsSubtype(tp, &PyModule_Type)) {
		for (i = 0; i < PyTuple_GET_SIZE(mro) && !p->dict_descr; i++) {
			PyTypeObject *klass = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);

			if (!PyType_Check(klass))
				continue;
			own = kdf_type_dict(klass);
			v = kdf_dict_get(own, s_dict);
			if (v && (Py_IS_TYPE(v, &PyGetSetDescr_Type) || Py_IS_TYPE(v, &PyMemberDescr_Type)))
				p->dict_descr = v; /* the MRO keeps it alive while the tag holds */
			Py_XDECREF(own);
		}
		p->dict_peek = p->dict_descr && kdf_dict_in_place(tp, p->dict_descr);
	}
	if (kdf_plan_declared(p, tp) < 0)
		goto fail;
	return p;
fail:
	kdf_plan_free(p);
	PyErr_Clear();
	return NULL;
}

static struct kdf_plan *kdf_plan_of(struct kdf_type *te, PyTypeObject *tp)
{
	int heap = PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE);
	unsigned int tag = heap ? kdf_tag(tp) : 0;

	if (te->plan && (!heap || (tag && tag == te->plan_tag)))
		return te->plan;
	kdf_plan_free(te->plan);
	te->plan = kdf_plan_build(tp);
	/* read after building: the MRO lookup there assigns a tag to a fresh type */
	te->plan_tag = heap ? kdf_tag(tp) : 0;
	return te->plan;
}

/* ---------------------------------------------------------------------------
 * The encoder (docs/abi.md §2; kcovdf/encode.py is the reference, word for word).
 */

struct kdf_pending {
	uint64_t id;
	char *name;
	Py_ssize_t nlen;
};

struct kdf_enc {
	int emit; /* register type-table entries (records), or not (encode()) */
	uint64_t kinds;
	uint64_t *words; /* the field words of the output value: no copy at the end */
	int n;
	/* class entries of OBJ words not yet in the table, in first-seen order */
	struct kdf_pending *pend;
	Py_ssize_t npend, cappend;
};

static int kdf_seen_contains(uint64_t id);
static inline void kdf_finish(struct kdf_enc *e, struct kdf_type *te, uint64_t sid,
			      Py_ssize_t total, unsigned form, struct kdf_value *out);
static void kdf_register(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			 int nfields);

static inline void kdf_put(struct kdf_enc *e, unsigned kind, uint64_t word)
{
	if (e->n < KDF_MAX_FIELDS) {
		e->kinds |= (uint64_t)kind << (4 * e->n);
		e->words[e->n++] = word;
	}
}

static void kdf_pend(struct kdf_enc *e, struct kdf_type *te)
{
	Py_ssize_t i;
	char *copy;

	if (te->registered)
		return;
	if (kdf_seen_contains(te->cid)) {
		te->registered = 1;
		return;
	}
	for (i = 0; i < e->npend; i++)
		if (e->pend[i].id == te->cid)
			return;
	if (kdf_grow((void **)&e->pend, &e->cappend, e->npend + 1, sizeof(*e->pend)) < 0)
		return;
	/* copied: a later lookup may evict te before the entry is written */
	copy = PyMem_Malloc((size_t)te->nlen + 1);
	if (!copy)
		return;
	memcpy(copy, te->name, (size_t)te->nlen + 1);
	e->pend[e->npend].id = te->cid;
	e->pend[e->npend].name = copy;
	e->pend[e->npend++].nlen = te->nlen;
}

/*
 * An int (PyLong_Check) as a signed 64-bit value in *x; returns 0, or its sign (+1 or
 * -1) when it does not fit. A one-digit int (most of them) is read in place instead
 * of through the C API's general loop.
 */
static inline int kdf_long(PyObject *v, long long *x)
{
	int overflow;

#if PY_VERSION_HEX >= 0x030C0000
	if (PyUnstable_Long_IsCompact((PyLongObject *)v)) {
		*x = (long long)PyUnstable_Long_CompactValue((PyLongObject *)v);
		return 0;
	}
#else
	Py_ssize_t size = Py_SIZE(v);

	if (size >= -1 && size <= 1) {
		*x = (long long)size * (long long)((PyLongObject *)v)->ob_digit[0];
		return 0;
	}
#endif
	*x = PyLong_AsLongLongAndOverflow(v, &overflow);
	return overflow;
}

/* A length or field total in a word's top byte, capped as docs/abi.md says. */
static inline uint64_t kdf_total_bits(Py_ssize_t n)
{
	return (uint64_t)(n < KDF_TOTAL_CAP ? n : KDF_TOTAL_CAP) << 56;
}

/* The shape and layout words of a value whose nf field words are in place after them. */
static inline void kdf_value_head(struct kdf_value *out, uint64_t sid, Py_ssize_t total,
				  unsigned form, uint64_t kinds, int nf)
{
	out->w[0] = sid;
	out->w[1] = kdf_total_bits(total) | (uint64_t)form << 52 | kinds;
	out->n = 2 + nf;
}

static uint64_t kdf_prefix7(const unsigned char *head, Py_ssize_t nhead, Py_ssize_t length)
{
	uint64_t w = 0;

	memcpy(&w, head, (size_t)(nhead < 7 ? nhead : 7));
	return kdf_total_bits(length) | w;
}

static uint64_t kdf_float_bits(PyObject *o)
{
	double d = PyFloat_AS_DOUBLE(o);
	uint64_t w;

	memcpy(&w, &d, sizeof(w));
	return w;
}

/* Kind of a value inside another one, its word in *w: one word, no recursion. */
static unsigned kdf_kw(struct kdf_enc *e, PyObject *v, uint64_t *w)
{
	PyTypeObject *tp = Py_TYPE(v);
	struct kdf_type *te;

	/* exact builtins first: no subclass walk for the common values */
	if (tp == &PyUnicode_Type)
		goto str;
	if (tp == &PyFloat_Type)
		goto flt;
	if (v == Py_None) {
		*w = 0;
		return KDF_KIND_NONE;
	}
	if (tp == &PyBool_Type) {
		*w = v == Py_True;
		return KDF_KIND_BOOL;
	}
	if (PyLong_Check(v)) {
		long long x;

		if (kdf_long(v, &x)) {
			*w = PyLong_AsUnsignedLongLongMask(v);
			return KDF_KIND_INT_TRUNC;
		}
		*w = (uint64_t)x;
		return KDF_KIND_INT;
	}
	if (PyFloat_Check(v)) {
flt:
		*w = kdf_float_bits(v);
		return KDF_KIND_FLOAT;
	}
	if (PyUnicode_Check(v)) {
str:;
		unsigned char head[7];
		Py_ssize_t nb = kdf_utf8(v, head, 7, KDF_TOTAL_CAP);

		if (nb < 0) {
			*w = KDF_FAULT;
			return KDF_KIND_FAULT;
		}
		*w = kdf_prefix7(head, nb, nb);
		return KDF_KIND_STR7;
	}
	if (PyBytes_Check(v)) {
		*w = kdf_prefix7((unsigned char *)PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v),
				 PyBytes_GET_SIZE(v));
		return KDF_KIND_BYTES7;
	}
	if (PyByteArray_Check(v)) {
		*w = kdf_prefix7((unsigned char *)PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v),
				 PyByteArray_GET_SIZE(v));
		return KDF_KIND_BYTES7;
	}
	te = kdf_type_of(tp);
	if (!te) {
		*w = KDF_FAULT;
		return KDF_KIND_FAULT;
	}
	if (e->emit)
		kdf_pend(e, te);
	*w = te->cid;
	return KDF_KIND_OBJ;
}

/* n <= 8 bytes at p as a little-endian word, without reading past p + n. */
static inline uint64_t kdf_load_le(const unsigned char *p, size_t n)
{
	uint32_t lo, hi;

	if (n >= 4) {
		/* two overlapping 4-byte loads: the bytes they share are the same */
		memcpy(&lo, p, 4);
		memcpy(&hi, p + n - 4, 4);
		return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
	}
	if (!n)
		return 0;
	return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) | (uint64_t)p[n - 1] << (8 * (n - 1));
}

/*
 * kdf_kw of the exact builtins most fields hold (a one-digit int, an ASCII str, a
 * float, a bool, None), inline and calling nothing; -1 for any other value.
 */
static inline int kdf_kw_builtin(PyObject *v, uint64_t *w)
{
	PyTypeObject *tp = Py_TYPE(v);

	if (tp == &PyLong_Type) {
#if PY_VERSION_HEX >= 0x030C0000
		if (PyUnstable_Long_IsCompact((PyLongObject *)v)) {
			*w = (uint64_t)(long long)PyUnstable_Long_CompactValue((PyLongObject *)v);
			return KDF_KIND_INT;
		}
#else
		Py_ssize_t size = Py_SIZE(v);

		if (size >= -1 && size <= 1) {
			*w = (uint64_t)((long long)size * (long long)((PyLongObject *)v)->ob_digit[0]);
			return KDF_KIND_INT;
		}
#endif
	} else if (tp == &PyUnicode_Type && PyUnicode_IS_COMPACT_ASCII(v)) {
		Py_ssize_t len = PyUnicode_GET_LENGTH(v);

		*w = kdf_total_bits(len) | kdf_load_le(PyUnicode_DATA(v), (size_t)(len < 7 ? len : 7));
		return KDF_KIND_STR7;
	} else if (tp == &PyFloat_Type) {
		*w = kdf_float_bits(v);
		return KDF_KIND_FLOAT;
	} else if (tp == &PyBool_Type) {
		*w = v == Py_True;
		return KDF_KIND_BOOL;
	} else if (v == Py_None) {
		*w = 0;
		return KDF_KIND_NONE;
	}
	return -1;
}

static inline unsigned kdf_kw_fast(struct kdf_enc *e, PyObject *v, uint64_t *w)
{
	int kind = kdf_kw_builtin(v, w);

	return kind >= 0 ? (unsigned)kind : kdf_kw(e, v, w);
}

static void kdf_nested(struct kdf_enc *e, PyObject *v)
{
	uint64_t w;
	unsigned kind = kdf_kw(e, v, &w);

	kdf_put(e, kind, w);
}

/* First min(n, 8 * nchunks) bytes as little-endian CHUNK words. */
static void kdf_chunks(struct kdf_enc *e, const unsigned char *p, Py_ssize_t n, int nchunks)
{
	Py_ssize_t i, j, lim = n < 8 * nchunks ? n : 8 * nchunks;

	for (i = 0; i < lim; i += 8) {
		uint64_t w = 0;

		j = lim - i < 8 ? lim - i : 8;
		memcpy(&w, p + i, (size_t)j);
		kdf_put(e, KDF_KIND_CHUNK, w);
	}
}

static void kdf_str(struct kdf_enc *e, PyObject *s)
{
	unsigned char head[8 * KDF_STR_CHUNKS];
	Py_ssize_t nb = kdf_utf8(s, head, sizeof(head), PY_SSIZE_T_MAX);

	if (nb < 0) {
		kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
		return;
	}
	kdf_put(e, KDF_KIND_LEN, (uint64_t)PyUnicode_GET_LENGTH(s));
	kdf_put(e, KDF_KIND_LEN, (uint64_t)nb);
	kdf_chunks(e, head, nb, KDF_STR_CHUNKS);
}

static void kdf_items(struct kdf_enc *e, PyObject *const *items, Py_ssize_t n)
{
	Py_ssize_t i;

	kdf_put(e, KDF_KIND_LEN, (uint64_t)n);
	for (i = 0; i < n && i < KDF_SEQ_ITEMS; i++)
		kdf_nested(e, items[i]);
}

/* set and frozenset through the set type's own C iterator (not an overridden __iter__). */
static void kdf_set(struct kdf_enc *e, PyObject *s)
{
	PyTypeObject *base = PyObject_TypeCheck(s, &PySet_Type) ? &PySet_Type : &PyFrozenSet_Type;
	PyObject *it, *x;
	int i, gc;

	kdf_put(e, KDF_KIND_LEN, (uint64_t)PySet_GET_SIZE(s));
	/* the iterator is a GC object: no collection (and no finalizer) in a record */
	gc = PyGC_Disable();
	it = base->tp_iter(s);
	if (gc)
		PyGC_Enable();
	if (!it) {
		PyErr_Clear();
		return;
	}
	for (i = 0; i < KDF_SEQ_ITEMS && (x = Py_TYPE(it)->tp_iternext(it)); i++) {
		kdf_nested(e, x);
		Py_DECREF(x);
	}
	PyErr_Clear();
	Py_DECREF(it);
}

static void kdf_map(struct kdf_enc *e, PyObject *d)
{
	Py_ssize_t pos = 0;
	PyObject *k, *v;
	int i;

	kdf_put(e, KDF_KIND_LEN, (uint64_t)PyDict_GET_SIZE(d));
	for (i = 0; i < KDF_MAP_PAIRS && PyDict_Next(d, &pos, &k, &v); i++) {
		kdf_nested(e, k);
		kdf_nested(e, v);
	}
}

/* One field found in C-level storage (slots, then the instance dict). */
struct kdf_stored {
	PyObject *name; /* strong */
	unsigned kind;	/* the value, encoded when read (UNSET for an empty slot) */
	uint64_t word;
	int used; /* already placed as a declared dataclass field */
};

struct kdf_fields {
	struct kdf_stored local[32];
	struct kdf_stored *v;
	Py_ssize_t n, cap;
	Py_ssize_t nslot; /* the first nslot came from __slots__ */
	PyObject *names[KDF_MAX_FIELDS]; /* recorded field names (borrowed from v) */
	signed char src[KDF_MAX_FIELDS];  /* where each came from: index into v, or KDF_SRC_* */
	int nnames;
	Py_ssize_t total;
	Py_ssize_t dict_n; /* size of the instance dict read, -1 if none */
};

/* Index of name among the first `upto` stored fields, trying `hint` first; -1 if absent. */
static Py_ssize_t kdf_stored_find(struct kdf_fields *f, PyObject *name, Py_ssize_t upto,
				  Py_ssize_t hint)
{
	Py_ssize_t i;

	if (hint < upto && f->v[hint].name == name)
		return hint;
	for (i = 0; i < upto; i++)
		if (f->v[i].name == name)
			return i;
	for (i = 0; i < upto; i++)
		if (kdf_str_eq(f->v[i].name, name))
			return i;
	return -1;
}

static void kdf_stored_add(struct kdf_enc *e, struct kdf_fields *f, PyObject *name,
			   PyObject *value)
{
	/* encoded even when the name repeats: the reference registers its class too */
	uint64_t word = 0;
	unsigned kind = value ? kdf_kw(e, value, &word) : KDF_KIND_UNSET;

	/* dict keys are unique among themselves: only slot names can repeat a name */
	if (kdf_stored_find(f, name, f->nslot, f->n) >= 0)
		return;
	if (f->n == f->cap) {
		struct kdf_stored *nv;
		Py_ssize_t ncap = f->cap * 2;

		if (f->v == f->local) {
			nv = PyMem_Malloc(sizeof(*nv) * (size_t)ncap);
			if (nv)
				memcpy(nv, f->local, sizeof(f->local));
		} else {
			nv = PyMem_Realloc(f->v, sizeof(*nv) * (size_t)ncap);
		}
		if (!nv)
			return;
		f->v = nv;
		f->cap = ncap;
	}
	f->v[f->n].name = Py_NewRef(name);
	f->v[f->n].kind = kind;
	f->v[f->n].word = word;
	f->v[f->n++].used = 0;
}

static void kdf_field(struct kdf_enc *e, struct kdf_fields *f, PyObject *name, unsigned kind,
		      uint64_t word, Py_ssize_t src)
{
	f->total++;
	if (f->nnames == KDF_MAX_FIELDS)
		return;
	f->src[f->nnames] = (signed char)(src < KDF_FC_KEYS ? src : KDF_FC_KEYS);
	f->names[f->nnames++] = name;
	kdf_put(e, kind, word);
}

/* The instance dict through the plan's descriptor, which may create it (no collection meanwhile). */
static __attribute__((noinline)) int kdf_attrs_descr(PyObject *obj, PyTypeObject *tp,
						     struct kdf_plan *p, struct kdf_attrs *a)
{
	PyObject *d;
	int gc;

	gc = PyGC_Disable();
	d = Py_TYPE(p->dict_descr)->tp_descr_get(p->dict_descr, obj, (PyObject *)tp);
	if (gc)
		PyGC_Enable();
	if (!d) {
		PyErr_Clear();
		return -1;
	}
	if (!PyDict_Check(d)) {
		Py_DECREF(d);
		return -1;
	}
	kdf_attrs_dict(a, d);
	a->owned = d;
	return 1;
}

/*
 * The instance attributes: read in place when the plan allows, else through the
 * descriptor. 1 found, 0 none, -1 none readable; kdf_attrs_done() ends the reading.
 */
static inline __attribute__((always_inline)) int kdf_instance_attrs(PyObject *obj, PyTypeObject *tp,
								    struct kdf_plan *p,
								    struct kdf_attrs *a)
{
	int r;

	a->dict = a->owned = NULL;
	a->used = a->pos = 0;
	if (p->dict_peek && (r = kdf_attrs_of(obj, tp, a)) >= 0)
		return r;
	return kdf_attrs_descr(obj, tp, p, a);
}

static inline void kdf_attrs_done(struct kdf_attrs *a)
{
	Py_XDECREF(a->owned);
}

/* A declared field in no storage: FAULT if reading it through the class would run code. */
static unsigned kdf_missing_kind(PyTypeObject *tp, PyObject *name)
{
	PyObject *attr = _PyType_Lookup(tp, name);

	return attr && _PyType_Lookup(Py_TYPE(attr), s_get) ? KDF_KIND_FAULT : KDF_KIND_UNSET;
}

static void kdf_object_fields(struct kdf_enc *e, PyObject *obj, PyTypeObject *tp,
			      struct kdf_plan *p, struct kdf_fields *f)
{
	Py_ssize_t i;
	struct kdf_attrs a;
	PyObject *k, *v;

	for (i = 0; i < p->nslots; i++) {
		PyMemberDescrObject *md = (PyMemberDescrObject *)p->slots[i].descr;
		PyObject *val;

		if (!PyObject_TypeCheck(obj, PyDescr_TYPE(md)))
			continue;
		if (md->d_member->type == KDF_T_OBJECT_EX) {
			val = Py_XNewRef(*(PyObject **)((char *)obj + md->d_member->offset));
		} else {
			val = PyMember_GetOne((const char *)obj, md->d_member);
			if (!val)
				PyErr_Clear();
		}
		kdf_stored_add(e, f, p->slots[i].name, val);
		f->nslot = f->n;
		Py_XDECREF(val);
	}
	if (p->dict_descr && kdf_instance_attrs(obj, tp, p, &a) >= 0) {
		f->dict_n = a.used;
		while (kdf_attrs_next(&a, &k, &v))
			if (PyUnicode_CheckExact(k))
				kdf_stored_add(e, f, k, v);
		kdf_attrs_done(&a);
	}
	for (i = 0; i < p->ndeclared; i++) {
		Py_ssize_t at = kdf_stored_find(f, p->declared[i], f->n, i);

		if (at >= 0) {
			f->v[at].used = 1;
			kdf_field(e, f, f->v[at].name, f->v[at].kind, f->v[at].word, at);
		} else {
			unsigned kind = kdf_missing_kind(tp, p->declared[i]);

			kdf_field(e, f, p->declared[i], kind, kind == KDF_KIND_FAULT ? KDF_FAULT : 0,
				  kind == KDF_KIND_FAULT ? KDF_SRC_FAULT : KDF_SRC_UNSET);
		}
	}
	for (i = 0; i < f->n; i++)
		if (!f->v[i].used)
			kdf_field(e, f, f->v[i].name, f->v[i].kind, f->v[i].word, i);
}

/* The i-th cached value of an instance of a KDF_FC_SLOTS or KDF_FC_TUPLE layout, borrowed. */
static inline PyObject *kdf_fixed_value(PyObject *obj, const struct kdf_fcache *fc, Py_ssize_t i)
{
	return fc->mode == KDF_FC_TUPLE ? PyTuple_GET_ITEM(obj, i)
					: *(PyObject **)((char *)obj + fc->off[i]);
}

/* The cached layout's fields from their values in key order (kinds in kacc), then the table line. */
static inline void kdf_cached_place(struct kdf_enc *e, struct kdf_type *te, struct kdf_fcache *fc,
				    uint64_t kacc, const uint64_t *words, struct kdf_value *out)
{
	int j;

	if (fc->direct) {
		e->kinds = kacc;
		e->n = (int)fc->nkeys;
	} else {
		for (j = 0; j < fc->nout; j++) {
			int src = fc->src[j];

			if (src >= 0)
				kdf_put(e, (unsigned)(kacc >> (4 * src)) & 0xF, words[src]);
			else if (src == KDF_SRC_FAULT)
				kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
			else
				kdf_put(e, KDF_KIND_UNSET, 0);
		}
	}
	if (e->emit && !fc->registered && fc->nout) {
		/* as kdf_shape does when it computes the id; no fields: kdf_finish does it */
		kdf_register(fc->sid, te->name, te->nlen, fc->names, fc->nout);
		fc->registered = 1;
	}
	kdf_finish(e, te, fc->sid, fc->total, KDF_FORM_OBJECT, out);
}

/* kdf_object_cached for a slots or namedtuple layout; apart, so the dict reader keeps its registers. */
static __attribute__((noinline)) int kdf_object_cached_fixed(struct kdf_enc *e, PyObject *obj,
							     struct kdf_type *te, struct kdf_fcache *fc,
							     struct kdf_value *out)
{
	Py_ssize_t i, nk = fc->nkeys;
	uint64_t words[KDF_FC_KEYS], kacc = 0;
	uint64_t *dst = fc->direct ? e->words : words;

	/* the plan's places: only a tuple's length can differ between instances */
	if (fc->mode == KDF_FC_TUPLE && PyTuple_GET_SIZE(obj) != nk)
		return 0;
	for (i = 0; i < nk; i++) {
		PyObject *v = kdf_fixed_value(obj, fc, i);

		if (v) {
			kacc |= (uint64_t)kdf_kw_fast(e, v, &dst[i]) << (4 * i);
		} else { /* an empty slot */
			dst[i] = 0;
			kacc |= (uint64_t)KDF_KIND_UNSET << (4 * i);
		}
	}
	kdf_cached_place(e, te, fc, kacc, words, out);
	return 1;
}

/*
 * An instance whose dict keys are the cached ones (or of a slots or namedtuple
 * layout): its values are encoded in dict (slot, item) order, as the full walk
 * does, so OBJ classes are met in the same order, and placed as the cache says.
 * 1 if done, 0 to take the full walk (nothing was put).
 */
static int kdf_object_cached(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
			     struct kdf_plan *p, struct kdf_value *out)
{
	struct kdf_fcache *fc = &p->fc;
	PyObject *const *keys = fc->keys;
	Py_ssize_t i = 0, nk = fc->nkeys;
	uint64_t words[KDF_FC_KEYS], kacc = 0; /* kinds: 4 bits each, as in the layout word */
	/* fields in key order: encoded straight into the output */
	uint64_t *dst = fc->direct ? e->words : words;
	struct kdf_attrs a;
	PyObject *k, *v;

	if (fc->mode != KDF_FC_DICT)
		return kdf_object_cached_fixed(e, obj, te, fc, out);
	if (kdf_instance_attrs(obj, Py_TYPE(obj), p, &a) < 0)
		return 0;
	if (a.used != nk)
		goto miss;
#ifdef KDF_LAYOUT
	if (a.values) {
		/* a split table: each cached key must sit at the index its order names */
		const struct kdf_uentry *ents = kdf_uentries(a.keys);
		size_t nent = (size_t)a.keys->dk_nentries;
		PyObject **vals = a.values;
		const uint8_t *order = a.order;

		/* builtin values first, in a loop that calls nothing (no register spills) */
		for (i = 0; i < nk; i++) {
			size_t ix = KDF_IX(order, i);
			int kind;

			if (ix >= nent || ents[ix].me_key != keys[i] || !(v = vals[ix]))
				goto miss;
			kind = kdf_kw_builtin(v, &dst[i]);
			if (kind < 0)
				break;
			kacc |= (uint64_t)kind << (4 * i);
		}
		for (; i < nk; i++) {
			size_t ix = KDF_IX(order, i);

			if (ix >= nent || ents[ix].me_key != keys[i] || !(v = vals[ix]))
				goto miss;
			kacc |= (uint64_t)kdf_kw_fast(e, v, &dst[i]) << (4 * i);
		}
	} else if (a.ent) {
		/* a combined table: the i-th entry with a value must hold the i-th cached key */
		PyObject *const *ent = a.ent;
		Py_ssize_t pos = 0, nent = a.nent, stride = a.stride;

		for (i = 0; i < nk; i++, pos++) {
			while (pos < nent && !ent[pos * stride + 1])
				pos++;
			if (pos == nent || ent[pos * stride] != keys[i])
				goto miss;
			v = ent[pos * stride + 1];
			kacc |= (uint64_t)kdf_kw_fast(e, v, &dst[i]) << (4 * i);
		}
		/* used == nk: no value after these */
	} else
#endif
	{
		while (kdf_attrs_next(&a, &k, &v)) {
			unsigned kind;

			if (i == nk || k != keys[i])
				goto miss;
			kind = kdf_kw_fast(e, v, &dst[i]);
			kacc |= (uint64_t)kind << (4 * i);
			i++;
		}
		if (i != nk)
			goto miss;
	}
	kdf_attrs_done(&a);
	kdf_cached_place(e, te, fc, kacc, words, out);
	return 1;
miss:
	kdf_attrs_done(&a);
	return 0;
}

/* Remember the layout the full walk found, when the cache can serve it next time. */
static void kdf_fcache_clear(struct kdf_fcache *fc)
{
	Py_ssize_t i;

	for (i = 0; i < fc->nkeys; i++)
		Py_DECREF(fc->keys[i]);
	fc->nkeys = -1;
}

static void kdf_fcache_fill(struct kdf_plan *p, struct kdf_fields *f, uint64_t sid)
{
	struct kdf_fcache *fc = &p->fc;
	int mode = p->nslots ? KDF_FC_SLOTS : KDF_FC_DICT;
	Py_ssize_t i;

	if (f->n > KDF_FC_KEYS || sid == KDF_FAULT)
		return; /* many fields: the full walk each time */
	if (mode == KDF_FC_DICT && (p->nslots || f->dict_n != f->n))
		return; /* slots and a dict, non-str keys */
	if (mode == KDF_FC_SLOTS) {
		/*
		 * Every slot stored, in plan order (no name repeated, none of another
		 * class), each an object member read in place: then where the values are
		 * depends on the class alone.
		 */
		if (p->dict_descr || f->n != p->nslots)
			return;
		for (i = 0; i < p->nslots; i++)
			if (((PyMemberDescrObject *)p->slots[i].descr)->d_member->type != KDF_T_OBJECT_EX ||
			    f->v[i].name != p->slots[i].name)
				return;
	}
	kdf_fcache_clear(fc);
	fc->mode = mode;
	for (i = 0; i < f->n; i++) {
		fc->keys[i] = Py_NewRef(f->v[i].name);
		if (mode == KDF_FC_SLOTS)
			fc->off[i] = ((PyMemberDescrObject *)p->slots[i].descr)->d_member->offset;
	}
	fc->nkeys = f->n;
	for (i = 0; i < f->nnames; i++) {
		fc->src[i] = f->src[i];
		fc->names[i] = f->src[i] >= 0 ? fc->keys[f->src[i]] : f->names[i];
	}
	fc->nout = f->nnames;
	fc->direct = fc->nout == fc->nkeys;
	for (i = 0; i < fc->nout; i++)
		fc->direct &= fc->src[i] == i;
	fc->total = f->total;
	fc->sid = sid;
	fc->registered = 0; /* checked once against the seen ids at the next record */
}

/* The same for a namedtuple's n items (all of them, all recorded). */
static void kdf_fcache_fill_tuple(struct kdf_plan *p, PyObject *const *names, Py_ssize_t n,
				  uint64_t sid)
{
	struct kdf_fcache *fc = &p->fc;
	Py_ssize_t i;

	if (n > KDF_FC_KEYS || n > KDF_MAX_FIELDS || sid == KDF_FAULT)
		return;
	kdf_fcache_clear(fc);
	fc->mode = KDF_FC_TUPLE;
	for (i = 0; i < n; i++) {
		fc->keys[i] = Py_NewRef(names[i]);
		fc->src[i] = (signed char)i;
		fc->names[i] = fc->keys[i];
	}
	fc->nkeys = fc->nout = (int)n;
	fc->direct = 1;
	fc->total = PyTuple_GET_SIZE(p->nt_fields);
	fc->sid = sid;
	fc->registered = 0;
}

/* Shape id of te with these recorded field names, through te's one-shape cache. */
static uint64_t kdf_shape(struct kdf_enc *e, struct kdf_type *te, PyObject *const *names,
			  int n)
{
	uint64_t h;
	int i;

	if (!n)
		return te->cid;
	if (te->nshape == n) {
		for (i = 0; i < n && te->shape_names[i] == names[i]; i++)
			;
		if (i == n) {
			/* it may have been computed by encode(), which registers nothing */
			if (e->emit && !te->shape_registered) {
				kdf_register(te->shape_id, te->name, te->nlen, names, n);
				te->shape_registered = 1;
			}
			return te->shape_id;
		}
	}
	h = kdf_fnv(KDF_FNV_OFFSET, (unsigned char *)te->name, te->nlen);
	for (i = 0; i < n; i++) {
		unsigned char buf[256], *p = buf;
		Py_ssize_t nb = kdf_utf8(names[i], NULL, 0, PY_SSIZE_T_MAX);

		if (nb > (Py_ssize_t)sizeof(buf))
			p = PyMem_Malloc((size_t)nb);
		if (nb < 0 || !p)
			return KDF_FAULT; /* unreadable name: out of memory */
		kdf_utf8(names[i], p, nb, nb);
		h = kdf_fnv(h, (const unsigned char *)"", 1);
		h = kdf_fnv(h, p, nb);
		if (p != buf)
			PyMem_Free(p);
	}
	for (i = 0; i < te->nshape; i++)
		Py_DECREF(te->shape_names[i]);
	for (i = 0; i < n; i++)
		te->shape_names[i] = Py_NewRef(names[i]);
	te->nshape = n;
	te->shape_id = h;
	te->shape_registered = e->emit;
	if (e->emit)
		kdf_register(h, te->name, te->nlen, names, n);
	return h;
}

/* The table lines kdf_finish owes: the class line of a value without fields, pending classes. */
static __attribute__((noinline, cold)) void kdf_finish_table(struct kdf_enc *e, struct kdf_type *te,
							     uint64_t sid)
{
	Py_ssize_t i;

	if (e->emit && te && sid == te->cid && !te->registered) {
		kdf_register(te->cid, te->name, te->nlen, NULL, 0);
		te->registered = 1;
	}
	if (e->pend) {
		for (i = 0; i < e->npend; i++) {
			if (e->emit)
				kdf_register(e->pend[i].id, e->pend[i].name, e->pend[i].nlen, NULL, 0);
			PyMem_Free(e->pend[i].name);
		}
		PyMem_Free(e->pend);
		e->pend = NULL;
	}
}

static inline void kdf_finish(struct kdf_enc *e, struct kdf_type *te, uint64_t sid,
			      Py_ssize_t total, unsigned form, struct kdf_value *out)
{
	if (e->pend || (e->emit && te && sid == te->cid && !te->registered))
		kdf_finish_table(e, te, sid);
	kdf_value_head(out, sid, total, form, e->kinds, e->n);
}

static uint64_t kdf_redacted_cid;

/* The full walk; apart, so the cached path does not set up its large frame. */
static __attribute__((noinline)) void kdf_object_walk(struct kdf_enc *e, PyObject *obj,
						      struct kdf_type *te, struct kdf_plan *p,
						      struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_fields f;
	Py_ssize_t i, n;
	uint64_t sid;
	int gc;

	if (!p) {
		kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
		kdf_finish(e, te, te->cid, 1, KDF_FORM_OBJECT, out);
		return;
	}
	if (p->nt_fields) {
		PyObject *names[KDF_MAX_FIELDS];

		n = PyTuple_GET_SIZE(obj);
		if (n > PyTuple_GET_SIZE(p->nt_fields))
			n = PyTuple_GET_SIZE(p->nt_fields);
		if (n > KDF_MAX_FIELDS)
			n = KDF_MAX_FIELDS;
		for (i = 0; i < n; i++) {
			kdf_nested(e, PyTuple_GET_ITEM(obj, i));
			names[i] = PyTuple_GET_ITEM(p->nt_fields, i);
		}
		sid = kdf_shape(e, te, names, (int)n);
		if (n == PyTuple_GET_SIZE(obj))
			kdf_fcache_fill_tuple(p, names, n, sid);
		kdf_finish(e, te, sid, PyTuple_GET_SIZE(p->nt_fields), KDF_FORM_OBJECT, out);
		return;
	}
	f.v = f.local;
	f.n = 0;
	f.cap = (Py_ssize_t)(sizeof(f.local) / sizeof(f.local[0]));
	f.nslot = 0;
	f.nnames = 0;
	f.total = 0;
	f.dict_n = -1;
	/* members may allocate, the instance dict may be created now: no collection here */
	gc = p->nslots ? PyGC_Disable() : 0;
	kdf_object_fields(e, obj, tp, p, &f);
	if (gc)
		PyGC_Enable();
	sid = kdf_shape(e, te, f.names, f.nnames);
	if (p->dict_descr || p->nslots)
		kdf_fcache_fill(p, &f, sid);
	kdf_finish(e, te, sid, f.total, KDF_FORM_OBJECT, out);
	for (i = 0; i < f.n; i++)
		Py_DECREF(f.v[i].name);
	if (f.v != f.local)
		PyMem_Free(f.v);
}

static void kdf_object(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
		       struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_plan *p = kdf_plan_of(te, tp);
	unsigned int tag;

	if (!(p && p->fc.nkeys >= 0 && kdf_object_cached(e, obj, te, p, out)))
		kdf_object_walk(e, obj, te, p, out);
	/*
	 * The next instance may skip the checks above (kdf_encode): the form is OBJECT
	 * while the tag holds, or a namedtuple's (a tuple subclass whose plan found
	 * _fields, kdf_encode_type); dicts read in place only.
	 */
	if (p && p->fc.nkeys >= 0 &&
	    (p->fc.mode != KDF_FC_DICT || (p->dict_peek && !p->nslots && !p->nt_fields)) &&
	    PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) && (tag = kdf_tag(tp)) && tag == te->plan_tag &&
	    (te->is_object ? tag == te->object_tag : p->fc.mode == KDF_FC_TUPLE) &&
	    tag == te->name_tag && te->qualname == ((PyHeapTypeObject *)tp)->ht_qualname)
		te->fast_tag = tag;
}

static void kdf_encode_type(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
			    struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	int heap;

	/* exact int and str first: no subclass walk on the hottest values */
	if (tp == &PyLong_Type)
		goto integer;
	if (tp == &PyUnicode_Type)
		goto text;
	/* a class already found to take the OBJECT form, while its tag holds */
	heap = PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE);
	if (te->is_object && (!heap || (te->object_tag && te->object_tag == kdf_tag(tp)))) {
		kdf_object(e, obj, te, out);
		return;
	}
	if (obj == Py_None || tp == &PyBool_Type || PyFloat_Check(obj)) {
		kdf_nested(e, obj);
		kdf_finish(e, te, te->cid, 1, KDF_FORM_SCALAR, out);
	} else if (PyLong_Check(obj)) {
integer:;
		long long x;
		int overflow = kdf_long(obj, &x);

		if (!overflow) {
			kdf_put(e, KDF_KIND_INT, (uint64_t)x);
			kdf_finish(e, te, te->cid, 1, KDF_FORM_SCALAR, out);
			return;
		}
		kdf_put(e, KDF_KIND_INT_TRUNC, PyLong_AsUnsignedLongLongMask(obj));
		kdf_put(e, KDF_KIND_INT, (uint64_t)(overflow * (long long)_PyLong_NumBits(obj)));
		kdf_finish(e, te, te->cid, 1, KDF_FORM_BIGINT, out);
	} else if (PyUnicode_Check(obj)) {
text:
		kdf_str(e, obj);
		kdf_finish(e, te, te->cid, 0, KDF_FORM_STR, out);
	} else if (PyBytes_Check(obj) || PyByteArray_Check(obj)) {
		int b = PyBytes_Check(obj);
		Py_ssize_t n = b ? PyBytes_GET_SIZE(obj) : PyByteArray_GET_SIZE(obj);

		kdf_put(e, KDF_KIND_LEN, (uint64_t)n);
		kdf_chunks(e, (unsigned char *)(b ? PyBytes_AS_STRING(obj) : PyByteArray_AS_STRING(obj)),
			   n, KDF_BYTES_CHUNKS);
		kdf_finish(e, te, te->cid, 0, KDF_FORM_BYTES, out);
	} else if (PyExceptionInstance_Check(obj)) {
		PyObject *args = ((PyBaseExceptionObject *)obj)->args;
		Py_ssize_t n = args && PyTuple_Check(args) ? PyTuple_GET_SIZE(args) : 0;

		Py_XINCREF(args);
		kdf_items(e, n ? &PyTuple_GET_ITEM(args, 0) : NULL, n);
		Py_XDECREF(args);
		kdf_finish(e, te, te->cid, n, KDF_FORM_EXCEPTION, out);
	} else if (PyTuple_Check(obj) && !PyTuple_CheckExact(obj) && kdf_plan_of(te, tp) &&
		   te->plan->nt_fields) {
		kdf_object(e, obj, te, out);
	} else if (PyList_Check(obj) || PyTuple_Check(obj)) {
		int l = PyList_Check(obj);
		Py_ssize_t n = l ? PyList_GET_SIZE(obj) : PyTuple_GET_SIZE(obj);

		kdf_items(e, n ? (l ? &PyList_GET_ITEM(obj, 0) : &PyTuple_GET_ITEM(obj, 0)) : NULL, n);
		kdf_finish(e, te, te->cid, n, KDF_FORM_SEQ, out);
	} else if (PyAnySet_Check(obj)) {
		kdf_set(e, obj);
		kdf_finish(e, te, te->cid, PySet_GET_SIZE(obj), KDF_FORM_SEQ, out);
	} else if (PyDict_Check(obj)) {
		kdf_map(e, obj);
		kdf_finish(e, te, te->cid, PyDict_GET_SIZE(obj), KDF_FORM_MAP, out);
	} else {
		/* none of the builtin bases above: that depends on the MRO alone (tag) */
		te->is_object = 1;
		te->object_tag = heap ? kdf_tag(tp) : 0;
		kdf_object(e, obj, te, out);
	}
}

/*
 * The two commonest values, an exact int that is one digit and an exact ASCII str,
 * written without the general machinery (type cache, encoder state). Their class ids
 * are fixed (builtins.int, builtins.str); the table line is emitted once. 1 if done.
 */
static uint64_t kdf_int_cid, kdf_str_cid;
static int kdf_int_registered, kdf_str_registered;

static inline int kdf_encode_common(PyObject *obj, int emit, struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);

	if (tp == &PyLong_Type) {
		long long x;

#if PY_VERSION_HEX >= 0x030C0000
		if (!PyUnstable_Long_IsCompact((PyLongObject *)obj))
			return 0;
		x = (long long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
#else
		Py_ssize_t size = Py_SIZE(obj);

		if (size < -1 || size > 1)
			return 0;
		x = (long long)size * (long long)((PyLongObject *)obj)->ob_digit[0];
#endif
		if (emit && !kdf_int_registered) {
			kdf_register(kdf_int_cid, "builtins.int", 12, NULL, 0);
			kdf_int_registered = 1;
		}
		out->w[0] = kdf_int_cid;
		out->w[1] = (uint64_t)1 << 56 | (uint64_t)KDF_FORM_SCALAR << 52 | KDF_KIND_INT;
		out->w[2] = (uint64_t)x;
		out->n = 3;
		return 1;
	}
	if (tp == &PyUnicode_Type && PyUnicode_IS_COMPACT_ASCII(obj)) {
		/* code points = UTF-8 bytes; the first 88 of them as CHUNK words */
		Py_ssize_t len = PyUnicode_GET_LENGTH(obj);
		size_t nb = len < 8 * KDF_STR_CHUNKS ? (size_t)len : 8 * KDF_STR_CHUNKS;
		int nw = (int)((nb + 7) / 8), i;
		uint64_t kinds = KDF_KIND_LEN | KDF_KIND_LEN << 4;

		if (emit && !kdf_str_registered) {
			kdf_register(kdf_str_cid, "builtins.str", 12, NULL, 0);
			kdf_str_registered = 1;
		}
		for (i = 0; i < nw; i++) {
			kinds |= (uint64_t)KDF_KIND_CHUNK << (4 * (2 + i));
			out->w[4 + i] = 0;
		}
		memcpy(&out->w[4], PyUnicode_DATA(obj), nb);
		out->w[0] = kdf_str_cid;
		out->w[1] = (uint64_t)KDF_FORM_STR << 52 | kinds;
		out->w[2] = out->w[3] = (uint64_t)len;
		out->n = 4 + nw;
		return 1;
	}
	return 0;
}

/* Drop the class entries an abandoned encoding left pending. */
static void kdf_pend_free(struct kdf_enc *e)
{
	Py_ssize_t i;

	for (i = 0; i < e->npend; i++)
		PyMem_Free(e->pend[i].name);
	PyMem_Free(e->pend);
}

static inline void kdf_enc_init(struct kdf_enc *e, int emit, struct kdf_value *out)
{
	e->emit = emit;
	e->kinds = 0;
	e->words = &out->w[2];
	e->n = 0;
	e->pend = NULL;
	e->npend = e->cappend = 0;
}

#ifdef KDF_LAYOUT
/*
 * The commonest instance, served without the encoder's state: its attributes in a
 * split table under the cached keys and order, which are its fields as they are
 * (fc->direct), each a builtin kdf_kw_builtin takes, and the layout's table line
 * already emitted. 1 if done, 0 to ask kdf_object_cached.
 */
static __attribute__((noinline)) int kdf_object_split(PyObject *obj, PyTypeObject *tp, struct kdf_plan *p, int emit,
				   struct kdf_value *out)
{
	struct kdf_fcache *fc = &p->fc;
	PyObject *const *keys = fc->keys;
	Py_ssize_t i, nk = fc->nkeys;
	const struct kdf_uentry *ents;
	uint64_t kacc = 0;
	struct kdf_attrs a;
	size_t nent;

	if (!fc->direct || !nk || (emit && !fc->registered) || kdf_attrs_of(obj, tp, &a) != 1 ||
	    !a.values || a.used != nk)
		return 0;
	ents = kdf_uentries(a.keys);
	nent = (size_t)a.keys->dk_nentries;
	for (i = 0; i < nk; i++) {
		size_t ix = KDF_IX(a.order, i);
		PyObject *v;
		int kind;

		if (ix >= nent || ents[ix].me_key != keys[i] || !(v = a.values[ix]))
			return 0;
		kind = kdf_kw_builtin(v, &out->w[2 + i]);
		if (kind < 0)
			return 0;
		kacc |= (uint64_t)kind << (4 * i);
	}
	kdf_value_head(out, fc->sid, fc->total, KDF_FORM_OBJECT, kacc, (int)nk);
	return 1;
}
#endif

/*
 * kdf_object_split for a slots or namedtuple layout: its values at the plan's
 * places, each a builtin kdf_kw_builtin takes (or an empty slot), the fields as
 * they are, the table line already emitted. 1 if done, 0 to ask kdf_object_cached.
 */
static __attribute__((noinline)) int kdf_object_fixed(PyObject *obj, struct kdf_plan *p, int emit,
						      struct kdf_value *out)
{
	struct kdf_fcache *fc = &p->fc;
	Py_ssize_t i, nk = fc->nkeys;
	uint64_t kacc = 0;

	if (!fc->direct || !nk || (emit && !fc->registered) ||
	    (fc->mode == KDF_FC_TUPLE && PyTuple_GET_SIZE(obj) != nk))
		return 0;
	for (i = 0; i < nk; i++) {
		PyObject *v = kdf_fixed_value(obj, fc, i);
		int kind;

		if (!v) {
			out->w[2 + i] = 0;
			kind = KDF_KIND_UNSET;
		} else if ((kind = kdf_kw_builtin(v, &out->w[2 + i])) < 0) {
			return 0;
		}
		kacc |= (uint64_t)kind << (4 * i);
	}
	kdf_value_head(out, fc->sid, fc->total, KDF_FORM_OBJECT, kacc, (int)nk);
	return 1;
}

/*
 * An instance of a class kdf_object found served by its layout cache (fast_tag),
 * while the class keeps that tag and qualname: straight to the cache. 1 if done.
 */
static inline int kdf_encode_cached(PyObject *obj, struct kdf_type *te, int emit,
						       struct kdf_value *out)
{
	struct kdf_type *outer = kdf_pinned;
	struct kdf_enc e;
	int done;

	kdf_enc_init(&e, emit, out);
	kdf_pinned = te;
	done = kdf_object_cached(&e, obj, te, te->plan, out);
	kdf_pinned = outer;
	if (!done && e.pend)
		kdf_pend_free(&e); /* the general encoder meets those classes again */
	return done;
}

/* The checks inline; the readers that call nothing, then the cache with the encoder's state. */
static inline __attribute__((always_inline)) int kdf_encode_fast(PyObject *obj, int emit,
								 struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_type *te = &kdf_types[kdf_type_hash(tp)];

	if (te->tp != tp || !te->fast_tag || te->fast_tag != kdf_tag(tp) ||
	    !PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) ||
	    te->qualname != ((PyHeapTypeObject *)tp)->ht_qualname)
		return 0;
	if (te->plan->fc.mode != KDF_FC_DICT) {
		if (kdf_object_fixed(obj, te->plan, emit, out))
			return 1;
	}
#ifdef KDF_LAYOUT
	else if (kdf_object_split(obj, tp, te->plan, emit, out))
		return 1;
#endif
	return kdf_encode_cached(obj, te, emit, out);
}

/* The general encoder. */
static __attribute__((noinline)) void kdf_encode_any(PyObject *obj, int redacted, int emit,
						     struct kdf_value *out)
{
	struct kdf_enc e;
	struct kdf_type *te, *outer = kdf_pinned;

	kdf_enc_init(&e, emit, out);
	if (redacted) {
		kdf_put(&e, KDF_KIND_REDACTED, KDF_REDACTED);
		if (emit)
			kdf_register(kdf_redacted_cid, KDF_REDACTED_CLASS,
				     (Py_ssize_t)strlen(KDF_REDACTED_CLASS), NULL, 0);
		kdf_finish(&e, NULL, kdf_redacted_cid, 1, KDF_FORM_REDACTED, out);
		return;
	}
	te = kdf_type_of(Py_TYPE(obj));
	if (!te) {
		out->w[0] = KDF_FAULT;
		out->w[1] = (uint64_t)1 << 56 | (uint64_t)KDF_FORM_OBJECT << 52 | KDF_KIND_FAULT;
		out->w[2] = KDF_FAULT;
		out->n = 3;
		return;
	}
	kdf_pinned = te;
	kdf_encode_type(&e, obj, te, out);
	kdf_pinned = outer;
}

/* The value words of obj. Never fails: what cannot be read becomes a FAULT word. */
static inline __attribute__((always_inline)) void kdf_encode(PyObject *obj, int redacted, int emit,
							     struct kdf_value *out)
{
	if (!redacted && (kdf_encode_common(obj, emit, out) || kdf_encode_fast(obj, emit, out)))
		return;
	kdf_encode_any(obj, redacted, emit, out);
}

/* ---------------------------------------------------------------------------
 * The type table: JSON lines appended to every registered table fd, remembered
 * for replay when a table is added later.
 */

static uint64_t *kdf_seen;      /* open addressing; 0 marks a free slot */
static size_t kdf_seen_cap, kdf_seen_n;
static int kdf_seen_zero;	/* id 0 seen */
static int *kdf_tables;
static Py_ssize_t kdf_ntables, kdf_cap_tables;
static PyObject *kdf_remembered; /* list of bytes, without the newline */

static int kdf_seen_contains(uint64_t id)
{
	size_t i;

	if (!id)
		return kdf_seen_zero;
	if (!kdf_seen_cap)
		return 0;
	for (i = (size_t)id & (kdf_seen_cap - 1); kdf_seen[i]; i = (i + 1) & (kdf_seen_cap - 1))
		if (kdf_seen[i] == id)
			return 1;
	return 0;
}

static void kdf_seen_put(uint64_t *tab, size_t cap, uint64_t id)
{
	size_t i;

	for (i = (size_t)id & (cap - 1); tab[i]; i = (i + 1) & (cap - 1))
		;
	tab[i] = id;
}

static int kdf_seen_add(uint64_t id)
{
	if (!id) {
		kdf_seen_zero = 1;
		return 0;
	}
	if (2 * (kdf_seen_n + 1) > kdf_seen_cap) {
		size_t cap = kdf_seen_cap ? 2 * kdf_seen_cap : 256, i;
		uint64_t *tab = PyMem_Calloc(cap, sizeof(uint64_t));

		if (!tab)
			return -1;
		for (i = 0; i < kdf_seen_cap; i++)
			if (kdf_seen[i])
				kdf_seen_put(tab, cap, kdf_seen[i]);
		PyMem_Free(kdf_seen);
		kdf_seen = tab;
		kdf_seen_cap = cap;
	}
	kdf_seen_put(kdf_seen, kdf_seen_cap, id);
	kdf_seen_n++;
	return 0;
}

struct kdf_buf {
	char *p;
	size_t n, cap;
	int failed;
};

static void kdf_buf_put(struct kdf_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *p;

		while (cap < b->n + n)
			cap *= 2;
		p = PyMem_Realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void kdf_json_u(struct kdf_buf *b, unsigned cp)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[6] = {'\\', 'u', hex[(cp >> 12) & 0xF], hex[(cp >> 8) & 0xF], hex[(cp >> 4) & 0xF],
		       hex[cp & 0xF]};

	kdf_buf_put(b, tmp, 6);
}

/*
 * A JSON string from UTF-8 bytes (possibly holding surrogates, as 'surrogatepass'
 * writes them), escaped like json.dumps: with ascii, ensure_ascii=True.
 */
static void kdf_json_str(struct kdf_buf *b, const unsigned char *s, Py_ssize_t n, int ascii)
{
	Py_ssize_t i = 0;

	kdf_buf_put(b, "\"", 1);
	while (i < n) {
		unsigned c = s[i];
		const char *esc = NULL;

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		}
		if (esc) {
			kdf_buf_put(b, esc, 2);
			i++;
		} else if (c < 0x20 || (ascii && c == 0x7F)) {
			kdf_json_u(b, c);
			i++;
		} else if (c < 0x80) {
			kdf_buf_put(b, (const char *)&s[i], 1);
			i++;
		} else {
			int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2, j;
			unsigned cp = c & (0xFF >> (k + 1));

			if (i + k > n)
				k = (int)(n - i); /* cannot happen: our own encoding is whole */
			if (!ascii) {
				kdf_buf_put(b, (const char *)&s[i], (size_t)k);
			} else {
				for (j = 1; j < k; j++)
					cp = cp << 6 | (s[i + j] & 0x3F);
				if (cp >= 0x10000) {
					cp -= 0x10000;
					kdf_json_u(b, 0xD800 | cp >> 10);
					kdf_json_u(b, 0xDC00 | (cp & 0x3FF));
				} else {
					kdf_json_u(b, cp);
				}
			}
			i += k;
		}
	}
	kdf_buf_put(b, "\"", 1);
}

/* A surrogate in UTF-8 (ED A0..BF ..): the line then needs ensure_ascii, as the twin does. */
static int kdf_has_surrogate(const unsigned char *s, Py_ssize_t n)
{
	Py_ssize_t i;

	for (i = 0; i + 1 < n; i++)
		if (s[i] == 0xED && s[i + 1] >= 0xA0)
			return 1;
	return 0;
}

/* Write data to every table fd, one write() each; returns the first errno, or 0. */
static int kdf_write_tables(const char *data, size_t n)
{
	int err = 0;
	Py_ssize_t i;

	for (i = 0; i < kdf_ntables; i++) {
		size_t done = 0;

		while (done < n) {
			ssize_t w = write(kdf_tables[i], data + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				if (!err)
					err = w < 0 ? errno : EIO;
				break;
			}
			done += (size_t)w;
		}
	}
	return err;
}

/* Remember a line (bytes without the newline) and write it to every table. */
static int kdf_emit_line(const char *line, size_t n, int remember)
{
	char stack[512], *data = n + 1 <= sizeof(stack) ? stack : PyMem_Malloc(n + 1);
	int err;

	if (remember) {
		PyObject *b = PyBytes_FromStringAndSize(line, (Py_ssize_t)n);

		if (!b || PyList_Append(kdf_remembered, b) < 0) {
			Py_XDECREF(b);
			if (data != stack)
				PyMem_Free(data);
			return -1;
		}
		Py_DECREF(b);
	}
	if (!data) {
		PyErr_NoMemory();
		return -1;
	}
	memcpy(data, line, n);
	data[n] = '\n';
	err = kdf_write_tables(data, n + 1);
	if (data != stack)
		PyMem_Free(data);
	return err;
}

/*
 * Emit {"t":"type","id":"0x…","class":…,"fields":[…]} for an id this process has
 * not seen. The bytes equal json.dumps(entry, separators=(",", ":"),
 * ensure_ascii=False) in UTF-8, or with ensure_ascii=True when a name holds a
 * lone surrogate (kcovdf.record._type_line).
 */
static void kdf_register(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			 int nfields)
{
	struct kdf_buf b = {NULL, 0, 0, 0};
	unsigned char fbuf[KDF_MAX_FIELDS][64], *fp[KDF_MAX_FIELDS];
	Py_ssize_t flen[KDF_MAX_FIELDS];
	char head[64];
	int i, ascii, n;

	if (kdf_seen_contains(id) || kdf_seen_add(id) < 0)
		return;
	ascii = kdf_has_surrogate((const unsigned char *)name, nlen);
	for (i = 0; i < nfields; i++) {
		flen[i] = kdf_utf8(fields[i], NULL, 0, PY_SSIZE_T_MAX);
		fp[i] = flen[i] <= 64 ? fbuf[i] : PyMem_Malloc((size_t)flen[i]);
		if (flen[i] < 0 || !fp[i]) {
			nfields = i; /* out of memory: the line is not written */
			b.failed = 1;
			break;
		}
		kdf_utf8(fields[i], fp[i], flen[i], flen[i]);
		ascii |= kdf_has_surrogate(fp[i], flen[i]);
	}
	n = snprintf(head, sizeof(head), "{\"t\":\"type\",\"id\":\"0x%016llx\",\"class\":",
		     (unsigned long long)id);
	kdf_buf_put(&b, head, (size_t)n);
	kdf_json_str(&b, (const unsigned char *)name, nlen, ascii);
	kdf_buf_put(&b, ",\"fields\":[", 11);
	for (i = 0; i < nfields; i++) {
		if (i)
			kdf_buf_put(&b, ",", 1);
		kdf_json_str(&b, fp[i], flen[i], ascii);
	}
	kdf_buf_put(&b, "]}", 2);
	if (!b.failed && kdf_emit_line(b.p, b.n, 1) < 0)
		PyErr_Clear();
	/* a table that cannot be written must not change what the program does */
	for (i = 0; i < nfields; i++)
		if (fp[i] != fbuf[i])
			PyMem_Free(fp[i]);
	PyMem_Free(b.p);
}

static PyObject *kdf_emit(PyObject *mod, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"line", "remember", NULL};
	Py_buffer line;
	int remember = 1, err;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|p:emit", kwlist, &line, &remember))
		return NULL;
	if (memchr(line.buf, '\n', (size_t)line.len)) {
		PyBuffer_Release(&line);
		PyErr_SetString(PyExc_ValueError, "emit(): a table line must not contain a newline");
		return NULL;
	}
	err = kdf_emit_line(line.buf, (size_t)line.len, remember);
	PyBuffer_Release(&line);
	if (err < 0)
		return NULL;
	if (err)
		return kdf_oserror(err, "emit(): cannot write to a table fd: %s", strerror(err));
	Py_RETURN_NONE;
}

static int kdf_fd_arg(const char *call, PyObject *o, int *fd)
{
	long v;

	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s(): fd must be an int, not %.100s", call,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	v = PyLong_AsLong(o);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (v < 0 || v > INT32_MAX) {
		PyErr_Format(PyExc_ValueError, "%s(): fd must be a file descriptor >= 0, not %ld",
			     call, v);
		return -1;
	}
	*fd = (int)v;
	return 0;
}

static PyObject *kdf_add_table(PyObject *mod, PyObject *arg)
{
	Py_ssize_t i;
	int fd;

	if (kdf_fd_arg("add_table", arg, &fd) < 0)
		return NULL;
	for (i = 0; i < kdf_ntables; i++)
		if (kdf_tables[i] == fd)
			Py_RETURN_NONE;
	if (fcntl(fd, F_GETFL) < 0) {
		return kdf_oserror(errno, "add_table(): fd %d is not open", fd);
	}
	for (i = 0; i < PyList_GET_SIZE(kdf_remembered); i++) {
		PyObject *b = PyList_GET_ITEM(kdf_remembered, i);
		Py_ssize_t n = PyBytes_GET_SIZE(b);
		char *data = PyMem_Malloc((size_t)n + 1);
		ssize_t w;

		if (!data)
			return PyErr_NoMemory();
		memcpy(data, PyBytes_AS_STRING(b), (size_t)n);
		data[n] = '\n';
		do
			w = write(fd, data, (size_t)n + 1);
		while (w < 0 && errno == EINTR);
		PyMem_Free(data);
		if (w < 0)
			return PyErr_SetFromErrno(PyExc_OSError);
	}
	if (kdf_grow((void **)&kdf_tables, &kdf_cap_tables, kdf_ntables + 1, sizeof(int)) < 0)
		return PyErr_NoMemory();
	kdf_tables[kdf_ntables++] = fd;
	Py_RETURN_NONE;
}

static PyObject *kdf_remove_table(PyObject *mod, PyObject *arg)
{
	Py_ssize_t i;
	int fd;

	if (kdf_fd_arg("remove_table", arg, &fd) < 0)
		return NULL;
	for (i = 0; i < kdf_ntables; i++) {
		if (kdf_tables[i] == fd) {
			memmove(&kdf_tables[i], &kdf_tables[i + 1],
				sizeof(int) * (size_t)(kdf_ntables - i - 1));
			kdf_ntables--;
			break;
		}
	}
	Py_RETURN_NONE;
}

static PyObject *kdf_encode_py(PyObject *mod, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"obj", "redacted", NULL};
	struct kdf_value v;
	PyObject *obj, *list;
	int redacted = 0, i;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:encode", kwlist, &obj, &redacted))
		return NULL;
	kdf_encode(obj, redacted, 0, &v);
	list = PyList_New(v.n);
	for (i = 0; list && i < v.n; i++) {
		PyObject *w = PyLong_FromUnsignedLongLong(v.w[i]);

		if (!w) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, w);
	}
	return list;
}

/* ---------------------------------------------------------------------------
 * enable / disable: the task lifecycle.
 */

typedef struct {
	PyObject_HEAD
	Py_buffer view; /* the export of the mapping, held while live */
	uint64_t *hdr;
	uint64_t tid;
	pid_t pid;
	int live;
} kdf_holder;

static uint64_t kdf_gettid(void)
{
	return (uint64_t)syscall(SYS_gettid);
}

static PyObject *kdf_oserror(int err, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	PyObject *exc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	exc = Py_BuildValue("(is)", err, msg);
	if (exc) {
		PyErr_SetObject(PyExc_OSError, exc);
		Py_DECREF(exc);
	}
	return NULL;
}

/*
 * Stop the task the holder stands for. clear_owner: this process owns it, so the
 * owner word goes back to 0 if it still names the thread, and it stops counting
 * as active; a holder inherited through fork leaves both to the parent.
 */
static void kdf_holder_release(kdf_holder *h, int clear_owner)
{
	uint64_t want = h->tid;

	if (!h->live)
		return;
	h->live = 0;
	if (kdf_task.holder == (PyObject *)h) {
		/* the guard outlives the task: a record hook may disable mid-record */
		int busy = kdf_task.busy;

		memset(&kdf_task, 0, sizeof(kdf_task));
		kdf_task.busy = busy;
	}
	if (clear_owner) {
		__atomic_compare_exchange_n(&h->hdr[KDF_HDR_OWNER / 8], &want, 0, 0, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
		kdf_active--;
	}
	PyBuffer_Release(&h->view);
}

/* Called (set_exit_hook) once a thread that ended while enabled has been released. */
static PyObject *kdf_exit_hook;

static int kdf_run_exit_hook(void *unused)
{
	PyObject *hook = Py_XNewRef(kdf_exit_hook), *r;

	if (!hook)
		return 0;
	r = PyObject_CallNoArgs(hook);
	if (r)
		Py_DECREF(r);
	else
		PyErr_WriteUnraisable(hook); /* a pending call that fails would raise in the main thread */
	Py_DECREF(hook);
	return 0;
}

static void kdf_holder_dealloc(PyObject *self)
{
	kdf_holder *h = (kdf_holder *)self;
	int ours = h->live && h->pid == getpid();

	/* the thread ended while enabled: as the kernel does at task exit */
	kdf_holder_release(h, h->pid == getpid());
	/*
	 * The dying thread is clearing its state: tell the hook from the main thread, soon.
	 * A full pending-call queue loses the call; listeners catch up at the next flip.
	 */
	if (ours && kdf_exit_hook)
		(void)Py_AddPendingCall(kdf_run_exit_hook, NULL);
	Py_TYPE(self)->tp_free(self);
}

static PyTypeObject kdf_holder_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "kcovdf._core._recorder._Task",
	.tp_basicsize = sizeof(kdf_holder),
	.tp_dealloc = kdf_holder_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "The buffer export of one enabled thread (internal).",
};

static PyObject *kdf_enable(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *mapping, *tdict;
	kdf_holder *h;
	uint64_t words, owner = 0;
	Py_buffer *view;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "enable() takes 2 arguments (mapping, table_fd), got %zd",
			     nargs);
		return NULL;
	}
	mapping = args[0];
	/* table_fd is the twin's lock file; the C core needs none (CAS on buf[0]) */
	if (!PyLong_Check(args[1])) {
		PyErr_Format(PyExc_TypeError, "enable(): table_fd must be an int, not %.100s",
			     Py_TYPE(args[1])->tp_name);
		return NULL;
	}
	if (kdf_task.area)
		return kdf_oserror(EBUSY, "enable(): this thread is already enabled on a device");
	if (!PyObject_CheckBuffer(mapping)) {
		PyErr_Format(PyExc_TypeError,
			     "enable(): mapping must be a writable buffer (an mmap), not %.100s",
			     Py_TYPE(mapping)->tp_name);
		return NULL;
	}
	tdict = PyThreadState_GetDict();
	if (!tdict) {
		PyErr_SetString(PyExc_RuntimeError, "enable(): no thread state dict");
		return NULL;
	}
	h = PyObject_New(kdf_holder, &kdf_holder_type);
	if (!h)
		return NULL;
	h->live = 0;
	view = &h->view;
	if (PyObject_GetBuffer(mapping, view, PyBUF_WRITABLE) < 0) {
		Py_DECREF(h);
		PyErr_SetString(PyExc_TypeError, "enable(): mapping must be writable");
		return NULL;
	}
	h->live = 1;
	h->hdr = view->buf;
	h->pid = getpid();
	h->tid = kdf_gettid();
	if (view->len < KDF_FILE_HEADER_SIZE || h->hdr[0] != KDF_FILE_MAGIC_LE64) {
		PyErr_SetString(PyExc_ValueError,
				"enable(): mapping does not start with a kcovdf header page");
		goto fail;
	}
	words = h->hdr[KDF_HDR_WORDS / 8];
	if (words < KDF_MIN_WORDS || words > (uint64_t)(view->len - KDF_FILE_HEADER_SIZE) / 8) {
		PyErr_Format(PyExc_ValueError, "enable(): header says %llu words, mapping holds %lld",
			     (unsigned long long)words,
			     (long long)((view->len - KDF_FILE_HEADER_SIZE) / 8));
		goto fail;
	}
	if ((uintptr_t)view->buf & 7) {
		PyErr_SetString(PyExc_ValueError, "enable(): mapping is not 8-byte aligned");
		goto fail;
	}
	if (!__atomic_compare_exchange_n(&h->hdr[KDF_HDR_OWNER / 8], &owner, h->tid, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		kdf_oserror(EBUSY, "enable(): device already enabled by task %llu",
			    (unsigned long long)owner);
		goto fail;
	}
	kdf_active++;
	if (PyDict_SetItem(tdict, s_task_key, (PyObject *)h) < 0) {
		kdf_holder_release(h, 1);
		Py_DECREF(h);
		return NULL;
	}
	kdf_task.area = (uint64_t *)((char *)view->buf + KDF_FILE_HEADER_SIZE);
	kdf_task.size = words;
	kdf_task.hdr = h->hdr;
	kdf_task.seq = 0;
	kdf_task.holder = (PyObject *)h;
	Py_DECREF(h); /* the thread dict holds it */
	Py_RETURN_NONE;
fail:
	h->live = 0;
	PyBuffer_Release(view);
	Py_DECREF(h);
	return NULL;
}

static PyObject *kdf_disable(PyObject *mod, PyObject *mapping)
{
	kdf_holder *h = (kdf_holder *)kdf_task.holder;
	PyObject *tdict;
	uint64_t owner;

	if (!kdf_task.area || !h || h->view.obj != mapping)
		return kdf_oserror(EINVAL, "disable(): this thread is not enabled on this device");
	owner = __atomic_load_n(&h->hdr[KDF_HDR_OWNER / 8], __ATOMIC_ACQUIRE);
	if (owner != h->tid)
		return kdf_oserror(EINVAL, "disable(): device owned by task %llu, not %llu",
				   (unsigned long long)owner, (unsigned long long)h->tid);
	kdf_holder_release(h, 1);
	tdict = PyThreadState_GetDict();
	if (tdict && PyDict_DelItem(tdict, s_task_key) < 0)
		PyErr_Clear();
	Py_RETURN_NONE;
}

static PyObject *kdf_after_fork_child(PyObject *mod, PyObject *unused)
{
	kdf_holder *h = (kdf_holder *)kdf_task.holder;
	PyObject *tdict;

	if (h) {
		/* the task belongs to the parent: its owner word and count stay as they are */
		kdf_holder_release(h, 0);
		tdict = PyThreadState_GetDict();
		if (tdict && PyDict_DelItem(tdict, s_task_key) < 0)
			PyErr_Clear();
	}
	memset(&kdf_task, 0, sizeof(kdf_task));
	kdf_active = 0; /* only the forking thread exists in the child */
	Py_RETURN_NONE;
}

static PyObject *kdf_active_py(PyObject *mod, PyObject *unused)
{
	return PyLong_FromLong(kdf_active);
}

static PyObject *kdf_noop(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	Py_RETURN_NONE;
}

static PyObject *kdf_set_exit_hook(PyObject *mod, PyObject *hook)
{
	if (hook != Py_None && !PyCallable_Check(hook)) {
		PyErr_Format(PyExc_TypeError, "set_exit_hook(): expected a callable or None, not %.100s",
			     Py_TYPE(hook)->tp_name);
		return NULL;
	}
	Py_XSETREF(kdf_exit_hook, hook == Py_None ? NULL : Py_NewRef(hook));
	Py_RETURN_NONE;
}

#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
/* exported by libpython 3.13 (internal/pycore_function.h); what PyFunction_New calls */
extern void _PyFunction_SetVersion(PyFunctionObject *func, uint32_t version);
#endif

/*
 * func.__code__ = code, for the Switch's patching (kcovdf/instrument.py). Through the
 * setter, so audit hooks and function watchers see it. 3.13's setter leaves the
 * function without a version, and a call site can only specialize for a function with
 * one: give it the version a new function of that code gets (3.11 and 3.12 assign one
 * lazily themselves).
 */
static PyObject *kdf_set_code(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2 || !PyFunction_Check(args[0]) || !PyCode_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "_set_code() takes a function and a code object");
		return NULL;
	}
	if (PyObject_SetAttrString(args[0], "__code__", args[1]) < 0)
		return NULL;
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
	if (((PyFunctionObject *)args[0])->func_code == args[1])
		_PyFunction_SetVersion((PyFunctionObject *)args[0], ((PyCodeObject *)args[1])->co_version);
#endif
	Py_RETURN_NONE;
}

/* Test seam: whether instance attributes and dicts are read in place (kdf_layout_check). */
static PyObject *kdf_layout_py(PyObject *mod, PyObject *unused)
{
#ifdef KDF_LAYOUT
	return PyBool_FromLong(kdf_layout_ok);
#else
	Py_RETURN_FALSE;
#endif
}

static PyObject *kdf_set_record_hook(PyObject *mod, PyObject *hook)
{
	if (hook != Py_None && !PyCallable_Check(hook)) {
		PyErr_Format(PyExc_TypeError,
			     "_set_record_hook(): expected a callable or None, not %.100s",
			     Py_TYPE(hook)->tp_name);
		return NULL;
	}
	/* a running hook holds its own reference (kdf_call_hook) */
	Py_XSETREF(kdf_hook, hook == Py_None ? NULL : Py_NewRef(hook));
	Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------
 * The REDACTED sentinel and the module table.
 */

static PyObject *kdf_redacted_repr(PyObject *self)
{
	return PyUnicode_FromString("kcovdf._core._recorder.REDACTED");
}

static PyTypeObject kdf_redacted_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "kcovdf._core._recorder._Redacted",
	.tp_basicsize = sizeof(PyObject),
	.tp_repr = kdf_redacted_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "The sentinel passed in place of a withheld value.",
};

static PyMethodDef kdf_methods[] = {
	{"entry", (PyCFunction)(void (*)(void))kdf_entry, METH_FASTCALL,
	 "entry(pc, *args)\n--\n\nOne entry record per argument, arg_idx = its position."},
	{"ret", (PyCFunction)(void (*)(void))kdf_ret, METH_FASTCALL,
	 "ret(pc, value)\n--\n\nOne return record (arg_idx 0); returns value."},
	{"exc", (PyCFunction)(void (*)(void))kdf_exc, METH_FASTCALL,
	 "exc(pc[, exc])\n--\n\nOne return record (arg_idx 0xFF) for exc, by default the "
	 "exception being handled."},
	{"yld", (PyCFunction)(void (*)(void))kdf_yld, METH_FASTCALL,
	 "yld(pc, value)\n--\n\nOne return record (arg_idx 0xFE) for a yielded value; returns value."},
	{"enable", (PyCFunction)(void (*)(void))kdf_enable, METH_FASTCALL,
	 "enable(mapping, table_fd)\n--\n\nBind the calling thread to the buffer of mapping."},
	{"disable", kdf_disable, METH_O,
	 "disable(mapping)\n--\n\nUnbind the calling thread from mapping."},
	{"active", kdf_active_py, METH_NOARGS,
	 "active()\n--\n\nNumber of threads of this process currently enabled."},
	{"encode", (PyCFunction)(void (*)(void))kdf_encode_py, METH_VARARGS | METH_KEYWORDS,
	 "encode(obj, redacted=False)\n--\n\nThe value words of obj (shape, layout, fields)."},
	{"add_table", kdf_add_table, METH_O,
	 "add_table(fd)\n--\n\nRegister a table fd and replay every remembered line into it."},
	{"remove_table", kdf_remove_table, METH_O,
	 "remove_table(fd)\n--\n\nForget a table fd (no error if it was not registered)."},
	{"emit", (PyCFunction)(void (*)(void))kdf_emit, METH_VARARGS | METH_KEYWORDS,
	 "emit(line, remember=True)\n--\n\nAppend line and a newline to every table fd."},
	{"after_fork_child", kdf_after_fork_child, METH_NOARGS,
	 "after_fork_child()\n--\n\nIn a fork child: clear the calling thread's state."},
	{"set_exit_hook", kdf_set_exit_hook, METH_O,
	 "set_exit_hook(hook)\n--\n\nCall hook() from the main thread after a thread that ended "
	 "while enabled is released (None: stop)."},
	{"_set_record_hook", kdf_set_record_hook, METH_O,
	 "_set_record_hook(hook)\n--\n\nTest seam: call hook() in the middle of every record, "
	 "with the re-entrancy guard held (None: stop)."},
	{"_set_code", (PyCFunction)(void (*)(void))kdf_set_code, METH_FASTCALL,
	 "_set_code(func, code)\n--\n\nfunc.__code__ = code, keeping the function's call sites "
	 "specializable (3.13)."},
	{"_layout", kdf_layout_py, METH_NOARGS,
	 "_layout()\n--\n\nTest seam: whether instance attributes are read where CPython keeps "
	 "them, by key index or entry (else through the C API)."},
	{"_noop", (PyCFunction)(void (*)(void))kdf_noop, METH_FASTCALL,
	 "_noop(*args)\n--\n\nAn empty C call: the benchmarks' baseline."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef kdf_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "kcovdf._core._recorder",
	.m_doc = "The C record writers of kcovdf (docs/core.md §1) and the decoder's scanner.",
	.m_size = -1,
	.m_methods = kdf_methods,
};

static int kdf_intern(PyObject **slot, const char *s)
{
	*slot = PyUnicode_InternFromString(s);
	return *slot ? 0 : -1;
}

#ifdef KDF_LAYOUT
/* Whether kdf_attrs_of reads obj's attributes as names/vals, in order, in place. */
static int kdf_layout_reads(PyObject *obj, PyObject *const *names, PyObject *const *vals, int n)
{
	struct kdf_attrs a;
	PyObject *k, *v;
	int i;

	if (kdf_attrs_of(obj, Py_TYPE(obj), &a) != 1 || !(a.values || a.ent) || a.used != n)
		return 0;
	for (i = 0; i < n; i++)
		if (!kdf_attrs_next(&a, &k, &v) || k != names[i] || v != vals[i])
			return 0;
	return !kdf_attrs_next(&a, &k, &v);
}

/* Whether kdf_attrs_dict reads d in place, as PyDict_Next does. */
static int kdf_layout_dict_reads(PyObject *d)
{
	struct kdf_attrs a;
	Py_ssize_t pos = 0;
	PyObject *k, *v, *ka, *va;

	kdf_attrs_dict(&a, d);
	if (!(a.values || a.ent))
		return 0;
	while (PyDict_Next(d, &pos, &k, &v))
		if (!kdf_attrs_next(&a, &ka, &va) || ka != k || va != v)
			return 0;
	return !kdf_attrs_next(&a, &ka, &va);
}

/*
 * Try the mirrored layouts on an instance of a fresh class: attributes b, a, c set
 * (3.10: a split table), a deleted and set again (order b, c, a; 3.10: combined),
 * read in place before and after its dict is made; then on plain dicts with holes,
 * str keys only and not. Any mismatch leaves kdf_layout_ok 0: every dict is then
 * read through PyDict_Next, on 3.11+ asked for.
 */
static int kdf_layout_check(PyObject *cls)
{
	static const char *const names[3] = {"b", "a", "c"};
	PyObject *obj, *k[3] = {NULL}, *v[3] = {NULL}, *d = NULL, *plain = NULL;
	PyObject *order_k[3], *order_v[3];
	int i, ok = 0, rc = -1;

	if (!(obj = PyObject_CallNoArgs(cls)))
		return -1;
	for (i = 0; i < 3; i++)
		if (!(k[i] = PyUnicode_InternFromString(names[i])) || !(v[i] = PyLong_FromLong(1000 + i)) ||
		    PyObject_SetAttr(obj, k[i], v[i]) < 0)
			goto done;
	kdf_layout_ok = 1;
	ok = kdf_layout_reads(obj, k, v, 3);
	if (PyObject_DelAttr(obj, k[1]) < 0 || PyObject_SetAttr(obj, k[1], v[1]) < 0)
		goto done;
	order_k[0] = k[0], order_k[1] = k[2], order_k[2] = k[1];
	order_v[0] = v[0], order_v[1] = v[2], order_v[2] = v[1];
	ok = ok && kdf_layout_reads(obj, order_k, order_v, 3);
	if (!(d = PyObject_GenericGetDict(obj, NULL)))
		goto done;
	ok = ok && PyDict_GET_SIZE(d) == 3 && kdf_layout_reads(obj, order_k, order_v, 3) &&
	     kdf_layout_dict_reads(d);
	/* a combined table of str keys, then one with another key (3.11+: general entries) */
	if (!(plain = PyDict_New()))
		goto done;
	for (i = 0; i < 3; i++)
		if (PyDict_SetItem(plain, k[i], v[i]) < 0)
			goto done;
	if (PyDict_DelItem(plain, k[1]) < 0)
		goto done;
	ok = ok && kdf_layout_dict_reads(plain);
	if (PyDict_SetItem(plain, v[0], v[1]) < 0 || PyDict_DelItem(plain, k[0]) < 0)
		goto done;
	ok = ok && kdf_layout_dict_reads(plain);
	rc = 0;
done:
	kdf_layout_ok = ok && rc == 0;
	Py_XDECREF(d);
	Py_XDECREF(plain);
	for (i = 0; i < 3; i++) {
		Py_XDECREF(k[i]);
		Py_XDECREF(v[i]);
	}
	Py_DECREF(obj);
	return rc;
}
#endif

/*
 * A fresh class: subtype_dict (static in typeobject.c) from its __dict__, and the
 * instance layouts tried on it.
 */
static int kdf_probe_class(void)
{
	PyObject *cls = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O){}", "_kdf_probe",
					      (PyObject *)&PyBaseObject_Type);
	PyObject *d;
	int rc = 0;

	if (!cls)
		return -1;
	d = kdf_dict_get(((PyTypeObject *)cls)->tp_dict, s_dict);
	if (d && Py_IS_TYPE(d, &PyGetSetDescr_Type))
		kdf_subtype_dict = ((PyGetSetDescrObject *)d)->d_getset->get;
#ifdef KDF_LAYOUT
	rc = kdf_layout_check(cls);
#endif
	Py_DECREF(cls);
	return rc;
}

PyMODINIT_FUNC PyInit__recorder(void)
{
	PyObject *m;

	if (kdf_intern(&s_module, "__module__") < 0 || kdf_intern(&s_slots, "__slots__") < 0 ||
	    kdf_intern(&s_dict, "__dict__") < 0 || kdf_intern(&s_fields, "_fields") < 0 ||
	    kdf_intern(&s_dc_fields, "__dataclass_fields__") < 0 ||
	    kdf_intern(&s_get, "__get__") < 0 || kdf_intern(&s_field_type, "_field_type") < 0 ||
	    kdf_intern(&s_Field, "Field") < 0 || kdf_intern(&s_FIELD, "_FIELD") < 0 ||
	    kdf_intern(&s_dataclasses, "dataclasses") < 0 ||
	    kdf_intern(&s_task_key, "kcovdf._core._recorder.task") < 0)
		return NULL;
	if (PyType_Ready(&kdf_holder_type) < 0 || PyType_Ready(&kdf_redacted_type) < 0)
		return NULL;
	if (!kdf_subtype_dict && kdf_probe_class() < 0)
		return NULL;
	kdf_int_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)"builtins.int", 12);
	kdf_str_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)"builtins.str", 12);
	kdf_redacted_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)KDF_REDACTED_CLASS,
				   (Py_ssize_t)strlen(KDF_REDACTED_CLASS));
	if (!kdf_remembered && !(kdf_remembered = PyList_New(0)))
		return NULL;
	if (!kdf_redacted && !(kdf_redacted = PyObject_New(PyObject, &kdf_redacted_type)))
		return NULL;
	m = PyModule_Create(&kdf_module);
	if (!m)
		return NULL;
	if (PyModule_AddFunctions(m, kcovdf_scan_methods) < 0 ||
	    PyModule_AddObjectRef(m, "REDACTED", kdf_redacted) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
