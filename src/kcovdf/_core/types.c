// SPDX-License-Identifier: GPL-2.0
/*
 * The type cache and the type table.
 *
 * The type cache: one entry per class met, in a fixed table indexed by the type's
 * address: its qualified name and class id, how its instances are decomposed (the
 * plan, with its layout cache) and the last shape seen. Types are mutable, so an entry
 * is keyed as follows. The name is reused while the type pointer and its __qualname__
 * object are the same and, for heap types, either the type's version tag is unchanged
 * (setting any class attribute, __module__ included, or __bases__ changes it) or its
 * __module__ object is the same; the entry keeps strong references to both strs, so
 * identity is safe. The plan holds borrowed pointers into the class dicts of the MRO
 * and is reused only while the version tag is unchanged (static types cannot change);
 * so are the plan's layout cache and the "takes the OBJECT form" verdict.
 * Not noticed: in-place changes that bypass type attribute assignment, such as
 * mutating a __dataclass_fields__ dict or a Field after the class was created, or
 * giving __get__ to the class of an object that shadows a missing declared field.
 * The cache never keeps a class alive.
 *
 * The type table (docs/abi.md §2.3): JSON lines appended to every registered table fd,
 * one per class or shape id the first time this process produces it, and remembered
 * for replay when a table is added later. Part of kdf.h's unity build.
 */
#include <errno.h>
#include <unistd.h>

#include "kdf.h"

/* ---------------------------------------------------------------------------
 * The type cache.
 */

#define KDF_TYPE_SLOTS 1024
static struct kdf_type kdf_types[KDF_TYPE_SLOTS];
/* The entry of the object being decomposed must survive nested lookups. */
static struct kdf_type *kdf_pinned;
static struct kdf_type kdf_scratch;

static PyObject *kdf_heap_module(PyTypeObject *tp)
{
	return kdf_dict_get(tp->tp_dict, s_module);
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

/* Every class's layout cache starts over (the redaction patterns changed). */
static void kdf_layouts_forget(void)
{
	size_t i;

	for (i = 0; i < KDF_TYPE_SLOTS; i++) {
		kdf_types[i].fast_tag = 0;
		if (kdf_types[i].plan)
			kdf_layout_clear(&kdf_types[i].plan->layout);
	}
}

static inline size_t kdf_type_hash(PyTypeObject *tp)
{
	uintptr_t p = (uintptr_t)tp;

	return (size_t)((p >> 4) ^ (p >> 14)) & (KDF_TYPE_SLOTS - 1);
}

/* The slot of tp, whatever it holds. */
static inline struct kdf_type *kdf_type_peek(PyTypeObject *tp)
{
	return &kdf_types[kdf_type_hash(tp)];
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
			tag = kdf_type_version(tp);
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
	te->tp = tp;
	if (PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)) {
		te->qualname = Py_NewRef(((PyHeapTypeObject *)tp)->ht_qualname);
		te->module = Py_XNewRef(kdf_heap_module(tp));
		te->name_tag = kdf_type_version(tp);
	}
	if (kdf_qualified_name(te, tp) < 0) {
		kdf_type_clear(te);
		PyErr_Clear();
		return NULL;
	}
	return te;
}

/* Keep te from being reused while its object is decomposed; returns the outer pin. */
static struct kdf_type *kdf_type_pin(struct kdf_type *te)
{
	struct kdf_type *outer = kdf_pinned;

	kdf_pinned = te;
	return outer;
}

static void kdf_type_unpin(struct kdf_type *outer)
{
	kdf_pinned = outer;
}

/* ---------------------------------------------------------------------------
 * The type table.
 */

static uint64_t *kdf_seen;	/* ids already in the table; open addressing, 0 marks a free slot */
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

/*
 * Remember a line (bytes without the newline) and write it to every table: 0, the
 * first errno of a failed write, or -1 with a Python error set.
 */
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
 * not seen; for a named value (named: its KDF_NAMED_* kind) ,"named":…,"name":label follow. The bytes equal json.dumps(entry, separators=(",", ":"),
 * ensure_ascii=False) in UTF-8, or with ensure_ascii=True when a name holds a
 * lone surrogate (kcovdf.runtime.twin._type_line).
 */
static void kdf_register_ex(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			    int nfields, const char *named, const char *label, Py_ssize_t llen)
{
	struct kdf_buf b = {NULL, 0, 0, 0};
	unsigned char fbuf[KDF_MAX_FIELDS][64], *fp[KDF_MAX_FIELDS];
	Py_ssize_t flen[KDF_MAX_FIELDS];
	char head[64];
	int i, ascii, n;

	if (kdf_seen_contains(id) || kdf_seen_add(id) < 0)
		return;
	ascii = kdf_has_surrogate((const unsigned char *)name, nlen) ||
		(named && kdf_has_surrogate((const unsigned char *)label, llen));
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
	kdf_buf_put(&b, "]", 1);
	if (named) {
		kdf_buf_put(&b, ",\"named\":\"", 10);
		kdf_buf_put(&b, named, strlen(named));
		kdf_buf_put(&b, "\",\"name\":", 9);
		kdf_json_str(&b, (const unsigned char *)label, llen, ascii);
	}
	kdf_buf_put(&b, "}", 1);
	if (!b.failed && kdf_emit_line(b.p, b.n, 1) < 0)
		PyErr_Clear();
	/* a table that cannot be written must not change what the program does */
	for (i = 0; i < nfields; i++)
		if (fp[i] != fbuf[i])
			PyMem_Free(fp[i]);
	PyMem_Free(b.p);
}

/* The entry of a class or shape id: kdf_register_ex without a name. */
static void kdf_register(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			 int nfields)
{
	kdf_register_ex(id, name, nlen, fields, nfields, NULL, NULL, 0);
}

/* Register a table fd, replaying every remembered line into it (replay); -1 with an error set. */
static int kdf_table_add(int fd, int replay)
{
	Py_ssize_t i;

	for (i = 0; i < kdf_ntables; i++)
		if (kdf_tables[i] == fd)
			return 0;
	for (i = 0; replay && i < PyList_GET_SIZE(kdf_remembered); i++) {
		PyObject *b = PyList_GET_ITEM(kdf_remembered, i);
		Py_ssize_t n = PyBytes_GET_SIZE(b);
		char *data = PyMem_Malloc((size_t)n + 1);
		ssize_t w;

		if (!data) {
			PyErr_NoMemory();
			return -1;
		}
		memcpy(data, PyBytes_AS_STRING(b), (size_t)n);
		data[n] = '\n';
		do
			w = write(fd, data, (size_t)n + 1);
		while (w < 0 && errno == EINTR);
		PyMem_Free(data);
		if (w < 0) {
			PyErr_SetFromErrno(PyExc_OSError);
			return -1;
		}
	}
	if (kdf_grow((void **)&kdf_tables, &kdf_cap_tables, kdf_ntables + 1, sizeof(int)) < 0) {
		PyErr_NoMemory();
		return -1;
	}
	kdf_tables[kdf_ntables++] = fd;
	return 0;
}

/* Forget a table fd (nothing if it was not registered). */
static void kdf_table_remove(int fd)
{
	Py_ssize_t i;

	for (i = 0; i < kdf_ntables; i++) {
		if (kdf_tables[i] == fd) {
			memmove(&kdf_tables[i], &kdf_tables[i + 1],
				sizeof(int) * (size_t)(kdf_ntables - i - 1));
			kdf_ntables--;
			break;
		}
	}
}

static int kdf_types_init(void)
{
	if (!kdf_remembered && !(kdf_remembered = PyList_New(0)))
		return -1;
	return 0;
}
