// SPDX-License-Identifier: GPL-2.0
/*
 * The value encoder (docs/abi.md §2): a Python object to its value words.
 *
 * This is the C twin of src/kcovdf/runtime/encode.py, function for function and in
 * the same order; each function names its twin, and tests/runtime/test_encode_c.py
 * checks the two word for word. Three of the twin's helpers have no function here:
 * _i64 is a cast, _class_lookup is _PyType_Lookup, _slot_or_none a NULL check. What
 * the C side adds is caching: the class-side answers of _slot_fields, _instance_dict,
 * _namedtuple_fields and _dataclass_fields are kept per class (the plan, kdf_plan_of),
 * and the layout cache (layout.c) serves a repeat instance from its values alone.
 *
 * Decomposition never runs code of the traced program: types are read through
 * Py_TYPE and their C slots, values through their C storage (PyLong digits, the
 * PyUnicode data, tp_members offsets, an instance's inline values or dict where
 * CPython keeps them, dict entries), with automatic garbage collection paused around
 * the few allocations, so no finalizer runs in the middle of a record. Recording
 * does not make an instance dict that was not there (kdf_attrs_of).
 * Part of kdf.h's unity build.
 */
#include "kdf.h"

/* The class id of the REDACTED form, fixed at init. */
static uint64_t kdf_redacted_cid;

/* ---------------------------------------------------------------------------
 * The encoder's state: the field words of one value, and the classes it met.
 */

static inline void kdf_enc_init(struct kdf_enc *e, int emit, int cached, struct kdf_value *out)
{
	e->emit = emit;
	e->cached = cached;
	e->kinds = 0;
	e->words = &out->w[2];
	e->n = 0;
	e->pend = NULL;
	e->npend = e->cappend = 0;
}

static inline void kdf_put(struct kdf_enc *e, unsigned kind, uint64_t word)
{
	if (e->n < KDF_MAX_FIELDS) {
		e->kinds |= (uint64_t)kind << (4 * e->n);
		e->words[e->n++] = word;
	}
}

/*
 * Owe the table line of id: class cname, and for a named value (named not NULL) its kind
 * and label. Names are copied: a later lookup may evict the type entry they come from.
 */
static void kdf_pend_line(struct kdf_enc *e, uint64_t id, const char *cname, Py_ssize_t clen,
			  const char *named, const char *label, Py_ssize_t llen)
{
	Py_ssize_t i;
	char *copy, *lcopy = NULL;

	for (i = 0; i < e->npend; i++)
		if (e->pend[i].id == id)
			return;
	if (kdf_grow((void **)&e->pend, &e->cappend, e->npend + 1, sizeof(*e->pend)) < 0)
		return;
	copy = PyMem_Malloc((size_t)clen + 1);
	if (named)
		lcopy = PyMem_Malloc((size_t)llen + 1);
	if (!copy || (named && !lcopy)) {
		PyMem_Free(copy);
		PyMem_Free(lcopy);
		return;
	}
	memcpy(copy, cname, (size_t)clen + 1);
	if (lcopy) {
		memcpy(lcopy, label, (size_t)llen);
		lcopy[llen] = '\0';
	}
	e->pend[e->npend].id = id;
	e->pend[e->npend].name = copy;
	e->pend[e->npend].nlen = clen;
	e->pend[e->npend].named = named;
	e->pend[e->npend].label = lcopy;
	e->pend[e->npend++].llen = llen;
}

/* nested()'s seen.setdefault(): a class met in an OBJ word, owed a table line. */
static void kdf_pend(struct kdf_enc *e, struct kdf_type *te)
{
	if (te->registered)
		return;
	if (kdf_seen_contains(te->cid)) {
		te->registered = 1;
		return;
	}
	kdf_pend_line(e, te->cid, te->name, te->nlen, NULL, NULL, 0);
}

/* The same for a named value in an OBJ word: id names label (a kind named), of class cname. */
static void kdf_pend_named(struct kdf_enc *e, uint64_t id, const char *cname, Py_ssize_t clen,
			   const char *named, const char *label, Py_ssize_t llen)
{
	if (!kdf_seen_contains(id))
		kdf_pend_line(e, id, cname, clen, named, label, llen);
}

/* Drop the class entries an abandoned encoding left pending. */
static void kdf_pend_free(struct kdf_enc *e)
{
	Py_ssize_t i;

	if (!e->pend)
		return;
	for (i = 0; i < e->npend; i++) {
		PyMem_Free(e->pend[i].name);
		PyMem_Free(e->pend[i].label);
	}
	PyMem_Free(e->pend);
	e->pend = NULL;
	e->npend = e->cappend = 0;
}

/* ---------------------------------------------------------------------------
 * qualified_name(): "module.Qualname" and its class id, for the type cache (types.c).
 * A heap type's names are its __module__ and __qualname__ strs (kdf_type_of holds
 * them in te); a static type's come from tp_name.
 */
static int kdf_qualified_name(struct kdf_type *te, PyTypeObject *tp)
{
	const char *mod = "?", *qual = NULL;
	Py_ssize_t mlen = 1, qlen;
	PyObject *mstr = NULL, *qstr = NULL;

	if (PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) {
		if (te->module && PyUnicode_Check(te->module)) {
			mstr = te->module;
			mlen = kdf_utf8(mstr, NULL, 0, PY_SSIZE_T_MAX);
		}
		qstr = te->qualname;
		qlen = PyUnicode_Check(qstr) ? kdf_utf8(qstr, NULL, 0, PY_SSIZE_T_MAX) : -1;
		if (mlen < 0 || qlen < 0)
			return -1;
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

/* A length or field total in a word's top byte, capped as docs/abi.md says. */
/* ---------------------------------------------------------------------------
 * naming(): what a class, function, method or module passed as a value is, and its
 * qualified name, read from C-level storage as everything here.
 */

/* Whether instances of tp take the NAMED form: the type checks of kdf_naming, once per type. */
static int kdf_nameable(struct kdf_type *te, PyTypeObject *tp)
{
	if (!te->nameable)
		te->nameable = PyType_IsSubtype(tp, &PyType_Type) || tp == &PyFunction_Type ||
				       PyType_IsSubtype(tp, &PyCFunction_Type) ||
				       tp == &PyMethodDescr_Type || tp == &PyWrapperDescr_Type ||
				       tp == &PyClassMethodDescr_Type || tp == &PyMethod_Type ||
				       PyType_IsSubtype(tp, &PyModule_Type)
				       ? 2 : 1;
	return te->nameable == 2;
}

/* The UTF-8 of str s onto b, "?" when s is not a str (_str_or). */
static void kdf_buf_str(struct kdf_buf *b, PyObject *s)
{
	unsigned char stack[256], *p = stack;
	Py_ssize_t n;

	if (!s || !PyUnicode_Check(s)) {
		kdf_buf_put(b, "?", 1);
		return;
	}
	n = kdf_utf8(s, NULL, 0, PY_SSIZE_T_MAX);
	if (n > (Py_ssize_t)sizeof(stack))
		p = PyMem_Malloc((size_t)n);
	if (n < 0 || !p) {
		b->failed = 1;
		return;
	}
	kdf_utf8(s, p, n, n);
	kdf_buf_put(b, (const char *)p, (size_t)n);
	if (p != stack)
		PyMem_Free(p);
}

/* qualified_name() of class tp onto b. */
static void kdf_buf_class(struct kdf_buf *b, PyTypeObject *tp)
{
	struct kdf_type *te = kdf_type_of(tp);

	if (te)
		kdf_buf_put(b, te->name, (size_t)te->nlen);
	else
		b->failed = 1;
}

static void kdf_buf_member(struct kdf_buf *b, PyTypeObject *owner, const char *name)
{
	kdf_buf_class(b, owner);
	kdf_buf_put(b, ".", 1);
	kdf_buf_put(b, name, strlen(name));
}

/* naming(): the kind (one of abi.NAMED_KINDS) of obj with its qualified name in b; NULL if none. */
static const char *kdf_naming(PyObject *obj, struct kdf_buf *b)
{
	PyTypeObject *tp = Py_TYPE(obj);

	if (PyType_Check(obj)) {
		kdf_buf_class(b, (PyTypeObject *)obj);
		return "class";
	}
	if (tp == &PyFunction_Type) {
		kdf_buf_str(b, PyFunction_GET_MODULE(obj));
		kdf_buf_put(b, ".", 1);
		kdf_buf_str(b, ((PyFunctionObject *)obj)->func_qualname);
		return "function";
	}
	if (PyCFunction_Check(obj)) {
		PyObject *self = PyCFunction_GET_SELF(obj);
		const char *name = ((PyCFunctionObject *)obj)->m_ml->ml_name;

		if (!self || PyModule_Check(self)) {
			kdf_buf_str(b, ((PyCFunctionObject *)obj)->m_module);
			kdf_buf_put(b, ".", 1);
			kdf_buf_put(b, name, strlen(name));
		} else {
			/* a method of a C type bound to an instance (or, a classmethod, to the class) */
			kdf_buf_member(b, PyType_Check(self) ? (PyTypeObject *)self : Py_TYPE(self), name);
		}
		return "builtin";
	}
	if (tp == &PyMethodDescr_Type || tp == &PyWrapperDescr_Type || tp == &PyClassMethodDescr_Type) {
		kdf_buf_class(b, PyDescr_TYPE(obj));
		kdf_buf_put(b, ".", 1);
		kdf_buf_str(b, PyDescr_NAME(obj));
		return "builtin";
	}
	if (tp == &PyMethod_Type) {
		PyObject *func = PyMethod_GET_FUNCTION(obj);

		if (!kdf_naming(func, b))
			kdf_buf_class(b, Py_TYPE(func));
		return "method";
	}
	if (PyModule_Check(obj)) {
		PyObject *d = PyModule_GetDict(obj);

		kdf_buf_str(b, d && PyDict_CheckExact(d) ? kdf_dict_get(d, s_name) : NULL);
		return "module";
	}
	return NULL;
}

/* abi.named_id(): the id of the named value in b whose own class is named cname. */
static uint64_t kdf_named_id(const char *cname, Py_ssize_t clen, const struct kdf_buf *b)
{
	uint64_t h = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)cname, clen);

	h = kdf_fnv(h, (const unsigned char *)"\x01", 1);
	return kdf_fnv(h, (const unsigned char *)b->p, (Py_ssize_t)b->n);
}

static inline uint64_t kdf_total_bits(Py_ssize_t n)
{
	return (uint64_t)(n < KDF_TOTAL_CAP ? n : KDF_TOTAL_CAP) << 56;
}

/* _prefix7(): a length and the first 7 bytes in one word. */
static uint64_t kdf_prefix7(const unsigned char *head, Py_ssize_t nhead, Py_ssize_t length)
{
	uint64_t w = 0;

	memcpy(&w, head, (size_t)(nhead < 7 ? nhead : 7));
	return kdf_total_bits(length) | w;
}

/* _chunks(): the first min(n, 8 * nchunks) bytes as little-endian CHUNK words. */
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

/* ---------------------------------------------------------------------------
 * _utf8(): UTF-8 by hand from the PyUnicode data, so nothing is cached on the
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

	if (kdf_str_ready(s) < 0)
		return -1;
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

/* Equal exact strs (field names): equal text has equal kind, compact strs use the smallest. */
static inline int kdf_str_eq(PyObject *a, PyObject *b)
{
	Py_hash_t ha = ((PyASCIIObject *)a)->hash, hb = ((PyASCIIObject *)b)->hash;

	if (a == b)
		return 1;
	if ((ha != -1 && hb != -1 && ha != hb) || PyUnicode_GET_LENGTH(a) != PyUnicode_GET_LENGTH(b) ||
	    PyUnicode_KIND(a) != PyUnicode_KIND(b))
		return 0;
	return !memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
		       (size_t)(PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a)));
}

/*
 * _int_value(): an int (PyLong_Check) as a signed 64-bit value in *x; returns 0, or
 * its sign (+1 or -1) when it does not fit. A one-digit int (most of them) is read in
 * place instead of through the C API's general loop.
 */
static inline int kdf_long(PyObject *v, long long *x)
{
	int overflow;

	if (kdf_long_compact(v, x))
		return 0;
	*x = PyLong_AsLongLongAndOverflow(v, &overflow);
	return overflow;
}

static uint64_t kdf_float_bits(PyObject *o)
{
	double d = PyFloat_AS_DOUBLE(o);
	uint64_t w;

	memcpy(&w, &d, sizeof(w));
	return w;
}

/* nested() of a class, function, method or module: an OBJ word with its named id. */
static __attribute__((noinline)) unsigned kdf_nested_named(struct kdf_enc *e, PyObject *v,
							   struct kdf_type *te, uint64_t *w)
{
	struct kdf_buf b = {NULL, 0, 0, 0};
	/* copied: naming v may look up other classes and evict te */
	Py_ssize_t clen = te->nlen;
	char *cname = PyMem_Malloc((size_t)clen + 1);
	const char *named = NULL;
	unsigned kind = KDF_KIND_FAULT;

	*w = KDF_FAULT;
	if (cname) {
		memcpy(cname, te->name, (size_t)clen + 1);
		named = kdf_naming(v, &b);
	}
	if (named && !b.failed) {
		*w = kdf_named_id(cname, clen, &b);
		kind = KDF_KIND_OBJ;
		if (e->emit)
			kdf_pend_named(e, *w, cname, clen, named, b.p, (Py_ssize_t)b.n);
	}
	PyMem_Free(cname);
	PyMem_Free(b.p);
	return kind;
}

/* ---------------------------------------------------------------------------
 * nested(): the kind of a value inside another one, its word in *w (one word, no
 * recursion).
 */
static unsigned kdf_nested(struct kdf_enc *e, PyObject *v, uint64_t *w)
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
	if (kdf_nameable(te, tp))
		return kdf_nested_named(e, v, te, w);
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
 * nested() of the exact builtins most fields hold (a one-digit int, an ASCII str, a
 * float, a bool, None), inline and calling nothing; -1 for any other value.
 */
static inline int kdf_nested_builtin(PyObject *v, uint64_t *w)
{
	PyTypeObject *tp = Py_TYPE(v);

	if (tp == &PyLong_Type) {
		long long x;

		if (kdf_long_compact(v, &x)) {
			*w = (uint64_t)x;
			return KDF_KIND_INT;
		}
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

static void kdf_put_nested(struct kdf_enc *e, PyObject *v)
{
	uint64_t w;
	unsigned kind = kdf_nested(e, v, &w);

	kdf_put(e, kind, w);
}

/*
 * _more(): the CHUNK words continuing a nested str or bytes v past the 7 bytes of its
 * STR7/BYTES7 word, up to KDF_NESTED_CHUNKS of them, into more; returns how many (0 for
 * any other value or a short one).
 */
static int kdf_more_words(PyObject *v, uint64_t *more)
{
	unsigned char buf[7 + 8 * KDF_NESTED_CHUNKS];
	Py_ssize_t nb, k, i;

	if (PyUnicode_Check(v)) {
		nb = kdf_utf8(v, buf, sizeof(buf), sizeof(buf));
		if (nb < 0)
			return 0;
	} else if (PyBytes_Check(v) || PyByteArray_Check(v)) {
		const char *p = PyBytes_Check(v) ? PyBytes_AS_STRING(v) : PyByteArray_AS_STRING(v);

		nb = PyBytes_Check(v) ? PyBytes_GET_SIZE(v) : PyByteArray_GET_SIZE(v);
		memcpy(buf, p, nb < (Py_ssize_t)sizeof(buf) ? nb : (Py_ssize_t)sizeof(buf));
	} else {
		return 0;
	}
	if (nb > (Py_ssize_t)sizeof(buf))
		nb = sizeof(buf);
	if (nb <= 7)
		return 0;
	k = (nb - 7 + 7) / 8;
	for (i = 0; i < k; i++) {
		Py_ssize_t left = nb - 7 - 8 * i;

		more[i] = kdf_load_le(buf + 7 + 8 * i, left < 8 ? (size_t)left : 8);
	}
	return (int)k;
}

/* Put the first of nmore continuation words, no more than *spare, the field words left. */
static void kdf_put_trailing(struct kdf_enc *e, const uint64_t *more, int nmore, int *spare)
{
	int i;

	if (nmore > *spare)
		nmore = *spare;
	for (i = 0; i < nmore; i++)
		kdf_put(e, KDF_KIND_CHUNK, more[i]);
	*spare -= nmore;
}

/* _run()'s continuation: after the STR7/BYTES7 word of a nested str or bytes, its CHUNK words. */
static void kdf_put_more(struct kdf_enc *e, PyObject *v, int *spare)
{
	uint64_t more[KDF_NESTED_CHUNKS];

	if (*spare > 0)
		kdf_put_trailing(e, more, kdf_more_words(v, more), spare);
}

/* ---------------------------------------------------------------------------
 * _slot_fields(): the __slots__ members of the classes in the MRO defined in Python.
 * The class side (which members) is the plan's; kdf_slot_fields reads an instance's.
 */
static int kdf_plan_slots(struct kdf_plan *p, PyTypeObject *tp)
{
	PyObject *mro = tp->tp_mro, *own, *k, *v;
	Py_ssize_t i, pos, cap = 0;

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
				return -1;
			p->slots[p->nslots].name = Py_NewRef(k);
			p->slots[p->nslots++].descr = v;
		}
	}
	return 0;
}

static void kdf_stored_add(struct kdf_enc *e, struct kdf_fields *f, PyObject *name,
			   PyObject *value);

static void kdf_slot_fields(struct kdf_enc *e, PyObject *obj, struct kdf_plan *p,
			    struct kdf_fields *f)
{
	Py_ssize_t i;

	for (i = 0; i < p->nslots; i++) {
		PyMemberDescrObject *md = (PyMemberDescrObject *)p->slots[i].descr;
		PyObject *val;

		/* another class's slot held as a class attribute does not apply to obj */
		if (!PyObject_TypeCheck(obj, PyDescr_TYPE(md)))
			continue;
		if (kdf_member_is_object(md->d_member)) {
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
}

/* ---------------------------------------------------------------------------
 * _instance_dict(): the first C-level __dict__ descriptor of the MRO (a class or
 * module dict is a namespace, not state). The class side is the plan's;
 * kdf_instance_dict reads an instance's attributes through it.
 */
static void kdf_plan_dict(struct kdf_plan *p, PyTypeObject *tp)
{
	PyObject *mro = tp->tp_mro, *own, *v;
	Py_ssize_t i;

	if (PyType_IsSubtype(tp, &PyType_Type) || PyType_IsSubtype(tp, &PyModule_Type))
		return;
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

/*
 * The instance dict through the plan's descriptor, which may create it (no collection
 * meanwhile): a new reference to a dict, or NULL.
 */
static __attribute__((noinline)) PyObject *kdf_dict_descr(PyObject *obj, PyTypeObject *tp,
							  struct kdf_plan *p)
{
	PyObject *d;
	int gc;

	gc = PyGC_Disable();
	d = Py_TYPE(p->dict_descr)->tp_descr_get(p->dict_descr, obj, (PyObject *)tp);
	if (gc)
		PyGC_Enable();
	if (!d) {
		PyErr_Clear();
		return NULL;
	}
	if (!PyDict_Check(d)) {
		Py_DECREF(d);
		return NULL;
	}
	return d;
}

/*
 * The instance attributes: read in place when the plan allows, else through the
 * descriptor. 1 found, 0 none, -1 none readable; kdf_attrs_done() ends the reading.
 * (a stays the caller's: nothing takes its address, so it can live in registers.)
 */
static inline __attribute__((always_inline)) int kdf_instance_dict(PyObject *obj, PyTypeObject *tp,
								   struct kdf_plan *p,
								   struct kdf_attrs *a)
{
	PyObject *d;
	int r;

	if (p->dict_peek && (r = kdf_attrs_of(obj, tp, a)) >= 0)
		return r;
	if (!(d = kdf_dict_descr(obj, tp, p)))
		return -1;
	kdf_attrs_init(a);
	kdf_attrs_dict(a, d);
	a->owned = d;
	return 1;
}

/* ---------------------------------------------------------------------------
 * _namedtuple_fields(): a tuple subclass whose own _fields is a tuple of exact strs.
 */
static void kdf_namedtuple_fields(struct kdf_plan *p, PyTypeObject *tp)
{
	PyObject *own, *v;
	Py_ssize_t i;

	if (!PyType_IsSubtype(tp, &PyTuple_Type))
		return;
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
}

/* ---------------------------------------------------------------------------
 * The plan (no twin: the encoder asks the class these questions at every value):
 * _namedtuple_fields, or _slot_fields, _instance_dict and _dataclass_fields.
 */

static void kdf_plan_free(struct kdf_plan *p)
{
	Py_ssize_t i;

	if (!p)
		return;
	Py_XDECREF(p->nt_fields);
	kdf_layout_clear(&p->layout);
	for (i = 0; i < p->nslots; i++)
		Py_DECREF(p->slots[i].name);
	for (i = 0; i < p->ndeclared; i++)
		Py_DECREF(p->declared[i]);
	PyMem_Free(p->slots);
	PyMem_Free(p->declared);
	PyMem_Free(p);
}

static int kdf_dataclass_fields(struct kdf_plan *p, PyTypeObject *tp);

static struct kdf_plan *kdf_plan_build(PyTypeObject *tp)
{
	struct kdf_plan *p = PyMem_Calloc(1, sizeof(*p));

	if (!p || !tp->tp_mro || !PyTuple_Check(tp->tp_mro))
		goto fail;
	p->layout.nkeys = -1;
	kdf_namedtuple_fields(p, tp);
	if (p->nt_fields)
		return p;
	if (kdf_plan_slots(p, tp) < 0)
		goto fail;
	kdf_plan_dict(p, tp);
	if (kdf_dataclass_fields(p, tp) < 0)
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
	unsigned int tag = heap ? kdf_type_version(tp) : 0;

	if (te->plan && (!heap || (tag && tag == te->plan_tag)))
		return te->plan;
	kdf_plan_free(te->plan);
	te->plan = kdf_plan_build(tp);
	/* read after building: the MRO lookup there assigns a tag to a fresh type */
	te->plan_tag = heap ? kdf_type_version(tp) : 0;
	return te->plan;
}

/* ---------------------------------------------------------------------------
 * encode_value(): the general encoder. Its str, set and dict branches are apart.
 */

static void kdf_items(struct kdf_enc *e, PyObject *const *items, Py_ssize_t n);
static void kdf_object(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
		       struct kdf_value *out);

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

/* set and frozenset through the set type's own C iterator (not an overridden __iter__). */
static void kdf_set(struct kdf_enc *e, PyObject *s)
{
	PyTypeObject *base = PyObject_TypeCheck(s, &PySet_Type) ? &PySet_Type : &PyFrozenSet_Type;
	PyObject *it, *x;
	int i, gc;

	Py_ssize_t size = PySet_GET_SIZE(s);
	int spare = KDF_MAX_FIELDS - 1 - (int)(size < KDF_SEQ_ITEMS ? size : KDF_SEQ_ITEMS);

	kdf_put(e, KDF_KIND_LEN, (uint64_t)size);
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
		kdf_put_nested(e, x);
		kdf_put_more(e, x, &spare);
		Py_DECREF(x);
	}
	PyErr_Clear();
	Py_DECREF(it);
}


/* ---------------------------------------------------------------------------
 * Redaction by name (kcovdf/instrument/redact.py is the reference): object fields,
 * namedtuple fields and the str keys of dicts whose name matches one of the patterns
 * set by set_redact() are written as the REDACTED kind. Globs match the whole name,
 * ASCII letters folded; ? and classes take one code point.
 */

static PyObject *kdf_redact_globs; /* tuple of bytes: the folded UTF-8 patterns, NULL: none */
static PyObject *kdf_redact_seen;  /* dict: exact str -> True/False */
#define KDF_REDACT_SEEN_MAX 4096

static Py_UCS4 kdf_cp_next(const unsigned char **s, const unsigned char *e)
{
	const unsigned char *p = *s;
	Py_UCS4 c = *p++;
	int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;

	if (more) {
		c &= 0x3F >> more;
		while (more-- && p < e)
			c = c << 6 | (*p++ & 0x3F);
	}
	*s = p;
	return c;
}

/* One pattern item (at *p) against one code point (at *s); both advance on a match. */
static int kdf_glob_one(const unsigned char **pp, const unsigned char *pe, Py_UCS4 c)
{
	const unsigned char *p = *pp, *j, *q;
	int neg, hit = 0;

	if (*p == '?') {
		*pp = p + 1;
		return 1;
	}
	if (*p == '[') {
		/* fnmatch.translate: a class closes at the first ] after an optional ! and a leading ] */
		j = p + 1;
		if (j < pe && *j == '!')
			j++;
		if (j < pe && *j == ']')
			j++;
		while (j < pe && *j != ']')
			j++;
		if (j < pe) {
			q = p + 1;
			neg = *q == '!';
			q += neg;
			while (q < j) {
				Py_UCS4 lo = kdf_cp_next(&q, j), hi = lo;

				if (q + 1 < j && *q == '-') {
					q++;
					hi = kdf_cp_next(&q, j);
				}
				if (lo <= c && c <= hi)
					hit = 1;
			}
			*pp = j + 1;
			return hit != neg;
		}
	}
	q = p;
	hit = kdf_cp_next(&q, pe) == c;
	*pp = q;
	return hit;
}

static int kdf_glob(const unsigned char *p, const unsigned char *pe, const unsigned char *s,
		    const unsigned char *se)
{
	const unsigned char *star_p = NULL, *star_s = NULL, *p2, *s2;

	while (s < se) {
		if (p < pe && *p == '*') {
			star_p = ++p;
			star_s = s;
			continue;
		}
		if (p < pe) {
			p2 = p;
			s2 = s;
			if (kdf_glob_one(&p2, pe, kdf_cp_next(&s2, se))) {
				p = p2;
				s = s2;
				continue;
			}
		}
		if (!star_p)
			return 0;
		p = star_p;
		kdf_cp_next(&star_s, se);
		s = star_s;
	}
	while (p < pe && *p == '*')
		p++;
	return p == pe;
}

static int kdf_redact_match(PyObject *name)
{
	unsigned char local[256], *buf = local;
	Py_ssize_t n = kdf_utf8(name, NULL, 0, PY_SSIZE_T_MAX), i;
	int hit = 0;

	if (n < 0)
		return 0;
	if (n > (Py_ssize_t)sizeof(local) && !(buf = PyMem_Malloc(n)))
		return 1; /* cannot tell: withhold */
	kdf_utf8(name, buf, n, n);
	for (i = 0; i < n; i++)
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] += 'a' - 'A';
	for (i = 0; !hit && i < PyTuple_GET_SIZE(kdf_redact_globs); i++) {
		PyObject *g = PyTuple_GET_ITEM(kdf_redact_globs, i);
		const unsigned char *gp = (const unsigned char *)PyBytes_AS_STRING(g);

		hit = kdf_glob(gp, gp + PyBytes_GET_SIZE(g), buf, buf + n);
	}
	if (buf != local)
		PyMem_Free(buf);
	return hit;
}

/* Whether a value named `name` (any object) is withheld. Runs no Python code. */
static int kdf_redacted_name(PyObject *name)
{
	PyObject *got;
	int hit;

	if (!kdf_redact_globs || !PyUnicode_Check(name))
		return 0;
	if (!PyUnicode_CheckExact(name))
		return kdf_redact_match(name); /* a subclass's hash and eq are its own code */
	got = PyDict_GetItemWithError(kdf_redact_seen, name);
	if (got)
		return got == Py_True;
	PyErr_Clear();
	hit = kdf_redact_match(name);
	if (PyDict_GET_SIZE(kdf_redact_seen) < KDF_REDACT_SEEN_MAX &&
	    PyDict_SetItem(kdf_redact_seen, name, hit ? Py_True : Py_False) < 0)
		PyErr_Clear();
	return hit;
}

/* Whether any of names is withheld: such a class is never served by the layout cache. */
static int kdf_redacts_any(PyObject *const *names, Py_ssize_t n)
{
	Py_ssize_t i;

	for (i = 0; kdf_redact_globs && i < n; i++)
		if (kdf_redacted_name(names[i]))
			return 1;
	return 0;
}

static void kdf_layouts_forget(void);

/* set_redact(patterns): the patterns of every later record; the layout cache starts over. */
static int kdf_set_redact(PyObject *patterns)
{
	PyObject *seq = PySequence_Fast(patterns, "set_redact(): patterns must be a sequence of str");
	PyObject *globs, *seen;
	Py_ssize_t i, n;

	if (!seq)
		return -1;
	n = PySequence_Fast_GET_SIZE(seq);
	globs = PyTuple_New(n);
	seen = PyDict_New();
	for (i = 0; globs && seen && i < n; i++) {
		PyObject *p = PySequence_Fast_GET_ITEM(seq, i), *u, *b;
		const char *from;
		char *s;
		Py_ssize_t j;

		if (!PyUnicode_Check(p)) {
			PyErr_Format(PyExc_TypeError, "set_redact(): pattern %zd is %.100s, not str", i,
				     Py_TYPE(p)->tp_name);
			goto fail;
		}
		u = PyUnicode_AsEncodedString(p, "utf-8", "surrogatepass");
		/* a fresh bytes object to fold: short ones from the codec may be shared singletons */
		b = u ? PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(u)) : NULL;
		if (!b) {
			Py_XDECREF(u);
			goto fail;
		}
		from = PyBytes_AS_STRING(u);
		s = PyBytes_AS_STRING(b);
		for (j = 0; j < PyBytes_GET_SIZE(b); j++)
			s[j] = from[j] >= 'A' && from[j] <= 'Z' ? from[j] + ('a' - 'A') : from[j];
		Py_DECREF(u);
		PyTuple_SET_ITEM(globs, i, b);
	}
	if (!globs || !seen)
		goto fail;
	Py_DECREF(seq);
	Py_XSETREF(kdf_redact_seen, seen);
	if (n)
		Py_XSETREF(kdf_redact_globs, globs);
	else {
		Py_CLEAR(kdf_redact_globs);
		Py_DECREF(globs);
	}
	kdf_layouts_forget();
	return 0;
fail:
	Py_DECREF(seq);
	Py_XDECREF(globs);
	Py_XDECREF(seen);
	return -1;
}

static void kdf_map(struct kdf_enc *e, PyObject *d)
{
	Py_ssize_t pos = 0, size = PyDict_GET_SIZE(d);
	PyObject *k, *v;
	int i, spare = KDF_MAX_FIELDS - 1 - 2 * (int)(size < KDF_MAP_PAIRS ? size : KDF_MAP_PAIRS);

	kdf_put(e, KDF_KIND_LEN, (uint64_t)size);
	for (i = 0; i < KDF_MAP_PAIRS && PyDict_Next(d, &pos, &k, &v); i++) {
		kdf_put_nested(e, k);
		kdf_put_more(e, k, &spare);
		if (kdf_redacted_name(k)) {
			kdf_put(e, KDF_KIND_REDACTED, KDF_REDACTED);
		} else {
			kdf_put_nested(e, v);
			kdf_put_more(e, v, &spare);
		}
	}
}

/* The NAMED form: no field words; the id names the value in the type table. te is pinned. */
static __attribute__((noinline)) void kdf_encode_named(struct kdf_enc *e, PyObject *obj,
						       struct kdf_type *te, struct kdf_value *out)
{
	struct kdf_buf b = {NULL, 0, 0, 0};
	const char *named = kdf_naming(obj, &b);
	uint64_t id;

	if (!named || b.failed) {
		/* out of memory: as an unreadable value */
		kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
		kdf_finish(e, te, te->cid, 1, KDF_FORM_OBJECT, out);
	} else {
		id = kdf_named_id(te->name, te->nlen, &b);
		if (e->emit)
			kdf_register_ex(id, te->name, te->nlen, NULL, 0, named, b.p, (Py_ssize_t)b.n);
		kdf_finish(e, te, id, 0, KDF_FORM_NAMED, out);
	}
	PyMem_Free(b.p);
}

/* encode_value()'s cases, in its order, for an object whose type entry is te. */
static void kdf_encode_form(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
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
	if (te->is_object && (!heap || (te->object_tag && te->object_tag == kdf_type_version(tp)))) {
		kdf_object(e, obj, te, out);
		return;
	}
	if (obj == Py_None || tp == &PyBool_Type || PyFloat_Check(obj)) {
		kdf_put_nested(e, obj);
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
	} else if (kdf_nameable(te, tp)) {
		kdf_encode_named(e, obj, te, out);
	} else {
		/* none of the builtin bases above: that depends on the MRO alone (tag) */
		te->is_object = 1;
		te->object_tag = heap ? kdf_type_version(tp) : 0;
		kdf_object(e, obj, te, out);
	}
}

/*
 * encode_value(): the value words of obj. Never fails: what cannot be read becomes a
 * FAULT word. cached: use and fill the layout cache (always, but for the test seam).
 */
static __attribute__((noinline)) void kdf_encode_value(PyObject *obj, int redacted, int emit,
						       int cached, struct kdf_value *out)
{
	struct kdf_enc e;
	struct kdf_type *te, *outer;

	kdf_enc_init(&e, emit, cached, out);
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
	outer = kdf_type_pin(te);
	kdf_encode_form(&e, obj, te, out);
	kdf_type_unpin(outer);
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
	long long x;

	if (tp == &PyLong_Type) {
		if (!kdf_long_compact(obj, &x))
			return 0;
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

/*
 * The value words of obj, for a record (emit) or encode(). One general encoder,
 * kdf_encode_value, with the layout cache inside it (kdf_object), and two fast paths in
 * front of it, kept because benchmarks/record_cost.py shows they pay their way (figures
 * in docs/core.md §1):
 *  - kdf_encode_common: an exact one-digit int or ASCII str, without the type cache;
 *  - kdf_encode_cached: an instance of a class the layout cache served before, straight
 *    to the cache, without the type lookup and the dispatch on its form.
 * Both must give the general encoder's words: tests/runtime/test_layout_cache.py checks.
 */
static inline __attribute__((always_inline)) void kdf_encode(PyObject *obj, int redacted, int emit,
							     struct kdf_value *out)
{
	if (!redacted && kdf_encode_common(obj, emit, out))
		return;
	if (!redacted && kdf_encode_cached(obj, emit, out))
		return;
	kdf_encode_value(obj, redacted, emit, 1, out);
}

/* _items(): a length, then the first items nested. */
static void kdf_items(struct kdf_enc *e, PyObject *const *items, Py_ssize_t n)
{
	Py_ssize_t i;
	int spare = KDF_MAX_FIELDS - 1 - (int)(n < KDF_SEQ_ITEMS ? n : KDF_SEQ_ITEMS);

	kdf_put(e, KDF_KIND_LEN, (uint64_t)n);
	for (i = 0; i < n && i < KDF_SEQ_ITEMS; i++) {
		kdf_put_nested(e, items[i]);
		kdf_put_more(e, items[i], &spare);
	}
}

/*
 * _is_descriptor() of the class attribute a declared field in no storage resolves to
 * (_class_lookup): FAULT if reading it through the class would run code, else UNSET.
 */
static unsigned kdf_missing_kind(PyTypeObject *tp, PyObject *name)
{
	PyObject *attr = _PyType_Lookup(tp, name);

	return attr && _PyType_Lookup(Py_TYPE(attr), s_get) ? KDF_KIND_FAULT : KDF_KIND_UNSET;
}

/* _dataclass_fields()' field_type: the member descriptor of dataclasses.Field's `_field_type` slot. */
static PyMemberDef *kdf_field_type_member(PyObject *field_cls)
{
	PyObject *own, *d;
	PyMemberDef *m = NULL;

	own = kdf_type_dict((PyTypeObject *)field_cls);
	d = kdf_dict_get(own, s_field_type);
	if (d && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
	    kdf_member_is_object(((PyMemberDescrObject *)d)->d_member))
		m = ((PyMemberDescrObject *)d)->d_member;
	Py_XDECREF(own);
	return m;
}

/* _dataclass_fields(): the declared fields, in order (docs/abi.md §2.2); never imports dataclasses. */
static int kdf_dataclass_fields(struct kdf_plan *p, PyTypeObject *tp)
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

/* ---------------------------------------------------------------------------
 * _encode_object(): the full walk. Fields stored in slots, then in the instance
 * dict (first name wins); the declared dataclass fields first, in their order, then
 * the others as met.
 */

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

/* stored.setdefault(name, nested(value)): value NULL is an empty slot (UNSET). */
static void kdf_stored_add(struct kdf_enc *e, struct kdf_fields *f, PyObject *name,
			   PyObject *value)
{
	/* encoded even when the name repeats: the reference registers its class too */
	uint64_t word = 0;
	unsigned kind = value ? kdf_nested(e, value, &word) : KDF_KIND_UNSET;

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
	f->v[f->n].used = 0;
	/* read now: a slot's value may be gone by the time the fields are placed */
	f->v[f->n++].nmore = (kind == KDF_KIND_STR7 || kind == KDF_KIND_BYTES7) && word >> 59
				     ? kdf_more_words(value, f->v[f->n].more) : 0;
}

/* One recorded field (order.append), src saying where it came from for the layout cache. */
static void kdf_field(struct kdf_enc *e, struct kdf_fields *f, PyObject *name, unsigned kind,
		      uint64_t word, Py_ssize_t src)
{
	f->total++;
	if (f->nnames == KDF_MAX_FIELDS)
		return;
	f->src[f->nnames] = (signed char)(src < KDF_LAYOUT_KEYS ? src : KDF_LAYOUT_KEYS);
	f->at[f->nnames] = src;
	f->names[f->nnames++] = name;
	if (kdf_redacted_name(name))
		kdf_put(e, KDF_KIND_REDACTED, KDF_REDACTED);
	else
		kdf_put(e, kind, word);
}

/*
 * After the recorded fields, the CHUNK words continuing their long strs and bytes, in
 * field order while spare words remain (_object_more). A withheld field has none.
 */
static void kdf_object_more(struct kdf_enc *e, const struct kdf_fields *f)
{
	int j, spare = KDF_MAX_FIELDS - f->nnames;

	for (j = 0; j < f->nnames && spare > 0; j++) {
		const struct kdf_stored *st;

		if (f->at[j] < 0)
			continue;
		st = &f->v[f->at[j]];
		if (st->nmore && ((e->kinds >> (4 * j)) & 0xF) == st->kind)
			kdf_put_trailing(e, st->more, st->nmore, &spare);
	}
}

static uint64_t kdf_shape(struct kdf_enc *e, struct kdf_type *te, PyObject *const *names, int n);

/* The full walk; apart from kdf_object, so the cached path does not set up its large frame. */
static __attribute__((noinline)) void kdf_encode_object(struct kdf_enc *e, PyObject *obj,
							struct kdf_type *te, struct kdf_plan *p,
							struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_fields f;
	struct kdf_attrs a;
	PyObject *k, *v;
	Py_ssize_t i;
	uint64_t sid;
	int gc;

	if (!p) {
		kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
		kdf_finish(e, te, te->cid, 1, KDF_FORM_OBJECT, out);
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
	kdf_slot_fields(e, obj, p, &f);
	if (p->dict_descr && kdf_instance_dict(obj, tp, p, &a) >= 0) {
		f.dict_n = a.used;
		while (kdf_attrs_next(&a, &k, &v))
			if (PyUnicode_CheckExact(k))
				kdf_stored_add(e, &f, k, v);
		kdf_attrs_done(&a);
	}
	for (i = 0; i < p->ndeclared; i++) {
		Py_ssize_t at = kdf_stored_find(&f, p->declared[i], f.n, i);

		if (at >= 0) {
			f.v[at].used = 1;
			kdf_field(e, &f, f.v[at].name, f.v[at].kind, f.v[at].word, at);
		} else {
			unsigned kind = kdf_missing_kind(tp, p->declared[i]);

			kdf_field(e, &f, p->declared[i], kind, kind == KDF_KIND_FAULT ? KDF_FAULT : 0,
				  kind == KDF_KIND_FAULT ? KDF_SRC_FAULT : KDF_SRC_UNSET);
		}
	}
	for (i = 0; i < f.n; i++)
		if (!f.v[i].used)
			kdf_field(e, &f, f.v[i].name, f.v[i].kind, f.v[i].word, i);
	kdf_object_more(e, &f);
	if (gc)
		PyGC_Enable();
	sid = kdf_shape(e, te, f.names, f.nnames);
	if (e->cached && (p->dict_descr || p->nslots) && !kdf_redacts_any(f.names, f.nnames))
		kdf_layout_fill(p, &f, sid);
	kdf_finish(e, te, sid, f.total, KDF_FORM_OBJECT, out);
	for (i = 0; i < f.n; i++)
		Py_DECREF(f.v[i].name);
	if (f.v != f.local)
		PyMem_Free(f.v);
}

/* encode_value()'s namedtuple case: its items under the class's _fields. */
static __attribute__((noinline)) void kdf_encode_namedtuple(struct kdf_enc *e, PyObject *obj,
							    struct kdf_type *te, struct kdf_plan *p,
							    struct kdf_value *out)
{
	PyObject *names[KDF_MAX_FIELDS];
	Py_ssize_t i, n = PyTuple_GET_SIZE(obj);
	uint64_t sid;
	int spare;

	if (n > PyTuple_GET_SIZE(p->nt_fields))
		n = PyTuple_GET_SIZE(p->nt_fields);
	if (n > KDF_MAX_FIELDS)
		n = KDF_MAX_FIELDS;
	for (i = 0; i < n; i++) {
		uint64_t w;
		/* encoded first (its class registered), as the reference does, then maybe withheld */
		unsigned kind = kdf_nested(e, PyTuple_GET_ITEM(obj, i), &w);

		names[i] = PyTuple_GET_ITEM(p->nt_fields, i);
		if (kdf_redacted_name(names[i]))
			kdf_put(e, KDF_KIND_REDACTED, KDF_REDACTED);
		else
			kdf_put(e, kind, w);
	}
	/* then the continuations of its long strs and bytes, as kdf_object_more */
	for (i = 0, spare = KDF_MAX_FIELDS - (int)n; i < n && spare > 0; i++) {
		unsigned k = (unsigned)(e->kinds >> (4 * i)) & 0xF;

		if (k == KDF_KIND_STR7 || k == KDF_KIND_BYTES7)
			kdf_put_more(e, PyTuple_GET_ITEM(obj, i), &spare);
	}
	sid = kdf_shape(e, te, names, (int)n);
	if (e->cached && n == PyTuple_GET_SIZE(obj) && !kdf_redacts_any(names, n))
		kdf_layout_fill_tuple(p, names, n, sid);
	kdf_finish(e, te, sid, PyTuple_GET_SIZE(p->nt_fields), KDF_FORM_OBJECT, out);
}

/* An OBJECT-form value (or a namedtuple): from the layout cache when it serves, else the walk. */
static void kdf_object(struct kdf_enc *e, PyObject *obj, struct kdf_type *te,
		       struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_plan *p = kdf_plan_of(te, tp);
	int cached = e->cached && p && p->layout.nkeys >= 0;
	unsigned int tag;

	if (!cached || !kdf_layout_encode(e, e->emit, obj, te, p, out)) {
		if (p && p->nt_fields)
			kdf_encode_namedtuple(e, obj, te, p, out);
		else
			kdf_encode_object(e, obj, te, p, out);
	}
	/*
	 * The next instance may go straight to the layout cache (kdf_encode_cached) while
	 * the class keeps this tag and qualname: its form is OBJECT (or a namedtuple's) as
	 * long as the tag holds, and a dict layout is read in place only.
	 */
	if (e->cached && p && p->layout.nkeys >= 0 &&
	    (p->layout.at != KDF_AT_DICT || (p->dict_peek && !p->nslots && !p->nt_fields)) &&
	    PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) && (tag = kdf_type_version(tp)) &&
	    tag == te->plan_tag &&
	    (te->is_object ? tag == te->object_tag : p->layout.at == KDF_AT_TUPLE) &&
	    tag == te->name_tag && te->qualname == ((PyHeapTypeObject *)tp)->ht_qualname)
		te->fast_tag = tag;
}

/* ---------------------------------------------------------------------------
 * _finish(): the shape id (abi.shape_id, through te's one-shape cache), the table
 * lines owed, and the shape and layout words in front of the fields.
 */

static uint64_t kdf_shape(struct kdf_enc *e, struct kdf_type *te, PyObject *const *names, int n)
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
				kdf_register_ex(e->pend[i].id, e->pend[i].name, e->pend[i].nlen, NULL, 0,
						e->pend[i].named, e->pend[i].label, e->pend[i].llen);
			PyMem_Free(e->pend[i].name);
			PyMem_Free(e->pend[i].label);
		}
		PyMem_Free(e->pend);
		e->pend = NULL;
	}
}

static inline void kdf_finish(struct kdf_enc *e, struct kdf_type *te, uint64_t sid,
			      Py_ssize_t total, unsigned form, struct kdf_value *out)
{
	/* sid == te->cid only for a value without fields: a class whose line may be owed */
	if (e->pend || (te && sid == te->cid && e->emit && !te->registered))
		kdf_finish_table(e, te, sid);
	out->w[0] = sid;
	out->w[1] = kdf_total_bits(total) | (uint64_t)form << 52 | e->kinds;
	out->n = 2 + e->n;
}

/* Names and ids the encoder needs, at module init. */
static int kdf_encode_init(void)
{
	if (kdf_intern(&s_module, "__module__") < 0 || kdf_intern(&s_slots, "__slots__") < 0 ||
	    kdf_intern(&s_dict, "__dict__") < 0 || kdf_intern(&s_fields, "_fields") < 0 ||
	    kdf_intern(&s_dc_fields, "__dataclass_fields__") < 0 ||
	    kdf_intern(&s_get, "__get__") < 0 || kdf_intern(&s_field_type, "_field_type") < 0 ||
	    kdf_intern(&s_Field, "Field") < 0 || kdf_intern(&s_FIELD, "_FIELD") < 0 ||
	    kdf_intern(&s_dataclasses, "dataclasses") < 0 || kdf_intern(&s_name, "__name__") < 0)
		return -1;
	kdf_int_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)"builtins.int", 12);
	kdf_str_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)"builtins.str", 12);
	kdf_redacted_cid = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)KDF_REDACTED_CLASS,
				   (Py_ssize_t)strlen(KDF_REDACTED_CLASS));
	return 0;
}
