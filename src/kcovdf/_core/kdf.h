/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations shared by the files of the recorder (kcovdf._core._recorder).
 *
 * The recorder is one translation unit: _recorder.c includes types.c, layout.c,
 * encode.c and record.c, so every function stays static and the compiler inlines the
 * encoder into the hot path across files without LTO. This header holds what those
 * files share: the structures, the few shared statics, and forward declarations of the
 * functions one file calls in another.
 *
 *   types.c   the type cache (one entry per class: name, class id, plan, shape) and
 *             the type table (the JSON lines written to every table fd);
 *   layout.c  where an instance's attributes are (read in place through compat.h's
 *             mirrors), the per-class layout cache and the fast path straight to it;
 *   encode.c  the value encoder, function for function the twin of runtime/encode.py;
 *   record.c  per-thread state, the hot path, the lifecycle, the control entry points
 *             and the module table;
 *   native.c  the records of native code (the kernel's callbacks, from kcovdf's LLVM
 *             pass), into the same tasks, without the GIL.
 *
 * Threading: every static of these files is protected by the GIL (nothing here
 * releases it); record.c's comment says which words are shared without it.
 */
#ifndef KCOVDF_KDF_H
#define KCOVDF_KDF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "abi.h"
#include "compat.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kcovdf buffers hold little-endian words updated in place: big-endian hosts are not supported"
#endif

/* One encoded value: shape word, layout word, field words. */
struct kdf_value {
	uint64_t w[KDF_MAX_VALUES];
	int n;
};

/* --- the plan and the layout cache of a class (encode.c, layout.c) -------------- */

struct kdf_slot {
	PyObject *name;  /* strong */
	PyObject *descr; /* borrowed member descriptor (valid while the tag holds) */
};

/*
 * The field layout last seen for instances of a class (layout.c): the keys of their
 * dict, pointer for pointer in order (strong references, so no other str can take an
 * address), and what was derived from them. An instance whose dict holds exactly these
 * keys is encoded from its values alone. Instances of a class with only __slots__
 * (object members) or a namedtuple have one layout, the plan's: their slots at fixed
 * offsets, their items (for one tuple length). Everything else the layout depends on
 * (the declared fields, whether a missing one is FAULT) belongs to the plan, and the
 * cache lives and dies with it.
 */
#define KDF_LAYOUT_KEYS 16
#define KDF_SRC_FAULT (-1) /* a declared field in no storage, behind a descriptor */
#define KDF_SRC_UNSET (-2) /* a declared field in no storage */

enum kdf_at {
	KDF_AT_DICT,  /* the instance dict (or inline values), under keys[] in order */
	KDF_AT_SLOTS, /* object slots at off[] */
	KDF_AT_TUPLE, /* the items of a tuple of nkeys items */
};

struct kdf_layout {
	Py_ssize_t nkeys; /* -1: empty */
	enum kdf_at at;
	PyObject *keys[KDF_LAYOUT_KEYS]; /* dict keys, slot names, or namedtuple _fields */
	Py_ssize_t off[KDF_LAYOUT_KEYS]; /* KDF_AT_SLOTS: the slots' offsets in the instance */
	int nout;
	signed char src[KDF_MAX_FIELDS]; /* per recorded field: index into keys, or KDF_SRC_* */
	PyObject *names[KDF_MAX_FIELDS]; /* borrowed from keys or the plan's declared names */
	Py_ssize_t total;
	uint64_t sid;
	int registered; /* the shape's table line was emitted */
	int direct;	/* the fields are the keys, in order (src[i] == i for all) */
};

/* How instances of a class (OBJECT form, or a tuple subclass) are decomposed (encode.c). */
struct kdf_plan {
	PyObject *nt_fields; /* namedtuple _fields (strong), or NULL */
	Py_ssize_t nslots;
	struct kdf_slot *slots;
	PyObject *dict_descr; /* borrowed C-level __dict__ descriptor, or NULL */
	int dict_peek;	      /* dict_descr is type_new's own: an existing dict is read in place */
	Py_ssize_t ndeclared;
	PyObject **declared; /* dataclass field names in order (strong) */
	struct kdf_layout layout;
};

/* --- the type cache (types.c) ---------------------------------------------------- */

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
	int is_object; /* instances take the OBJECT form (kdf_encode_form's last case) */
	unsigned int object_tag;
	/*
	 * Nonzero: the tag at which name, form and plan (with a layout read in place) were
	 * all found valid; kdf_encode goes straight to the layout cache while the type
	 * still has this tag and qualname (kdf_encode_cached).
	 */
	unsigned int fast_tag;
	int nameable; /* instances take the NAMED form: 0 not known yet, 1 no, 2 yes */
};

static struct kdf_type *kdf_type_of(PyTypeObject *tp);
static inline struct kdf_type *kdf_type_peek(PyTypeObject *tp);
static struct kdf_type *kdf_type_pin(struct kdf_type *te);
static void kdf_type_unpin(struct kdf_type *outer);
static int kdf_seen_contains(uint64_t id);
static void kdf_register(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			 int nfields);
static void kdf_register_ex(uint64_t id, const char *name, Py_ssize_t nlen, PyObject *const *fields,
			    int nfields, const char *named, const char *label, Py_ssize_t llen);
static int kdf_emit_line(const char *line, size_t n, int remember);
static int kdf_table_add(int fd, int replay);
static void kdf_table_remove(int fd);
static int kdf_types_init(void);

/* --- instance attributes (layout.c) ------------------------------------------------ */

/*
 * Where an instance's attributes are. A split table (values != NULL) holds the
 * value of key index ix at values[ix], the i-th attribute at kdf_split_index(order, i);
 * a combined one (ent != NULL) holds key and value in its entries, in order, with
 * holes; any other dict is read through PyDict_Next.
 */
struct kdf_attrs {
	PyObject *dict;	 /* read with PyDict_Next (unless values or ent), or NULL */
	PyObject *owned; /* a dict the descriptor returned: dropped by kdf_attrs_done */
	Py_ssize_t used; /* number of attributes */
	Py_ssize_t pos;
#ifdef KDF_MIRRORS
	const struct kdf_dk *keys;
	PyObject **values;
	const uint8_t *order; /* 3.11+ */
	PyObject *const *ent; /* the first entry's key; the value follows it */
	Py_ssize_t nent;
	int stride; /* words per entry */
#endif
};

static inline void kdf_attrs_init(struct kdf_attrs *a);
static inline int kdf_attrs_of(PyObject *obj, PyTypeObject *tp, struct kdf_attrs *a);
static inline int kdf_attrs_dict(struct kdf_attrs *a, PyObject *d);
static inline int kdf_attrs_next(struct kdf_attrs *a, PyObject **k, PyObject **v);
static inline void kdf_attrs_done(struct kdf_attrs *a);
static int kdf_dict_in_place(PyTypeObject *tp, PyObject *descr);
static int kdf_layout_init(void);
static int kdf_mirrors_in_use(void);

/* --- the encoder (encode.c) and the layout cache it keeps (layout.c) --------------- */

struct kdf_pending {
	uint64_t id;
	char *name;
	Py_ssize_t nlen;
	const char *named; /* a named value's kind, its qualified name in label; NULL: a class */
	char *label;
	Py_ssize_t llen;
};

struct kdf_enc {
	int emit;   /* register type-table entries (records), or not (encode()) */
	int cached; /* use and fill the layout cache (all but the _encode_general test seam) */
	uint64_t kinds;
	uint64_t *words; /* the field words of the output value: no copy at the end */
	int n;
	/* class entries of OBJ words not yet in the table, in first-seen order */
	struct kdf_pending *pend;
	Py_ssize_t npend, cappend;
};

/* One field found in C-level storage (slots, then the instance dict), by the full walk. */
struct kdf_stored {
	PyObject *name; /* strong */
	unsigned kind;	/* the value, encoded when read (UNSET for an empty slot) */
	uint64_t word;
	int used; /* already placed as a declared dataclass field */
	int nmore; /* a long str/bytes: the CHUNK words continuing it (kdf_more_words) */
	uint64_t more[KDF_NESTED_CHUNKS];
};

/* What the full walk (kdf_encode_object) found; the layout cache is filled from it. */
struct kdf_fields {
	struct kdf_stored local[32];
	struct kdf_stored *v;
	Py_ssize_t n, cap;
	Py_ssize_t nslot;		 /* the first nslot came from __slots__ */
	PyObject *names[KDF_MAX_FIELDS]; /* recorded field names (borrowed from v) */
	signed char src[KDF_MAX_FIELDS]; /* where each came from: index into v, or KDF_SRC_* */
	Py_ssize_t at[KDF_MAX_FIELDS];	 /* the same, uncapped by KDF_LAYOUT_KEYS */
	int nnames;
	Py_ssize_t total;
	Py_ssize_t dict_n; /* size of the instance dict read, -1 if none */
};

static inline void kdf_encode(PyObject *obj, int redacted, int emit, struct kdf_value *out);
static void kdf_encode_value(PyObject *obj, int redacted, int emit, int cached,
			     struct kdf_value *out);
static int kdf_qualified_name(struct kdf_type *te, PyTypeObject *tp);
static Py_ssize_t kdf_utf8(PyObject *s, unsigned char *out, Py_ssize_t cap, Py_ssize_t stop);
static inline int kdf_str_eq(PyObject *a, PyObject *b);
static unsigned kdf_nested(struct kdf_enc *e, PyObject *v, uint64_t *w);
static inline int kdf_nested_builtin(PyObject *v, uint64_t *w);
static inline void kdf_put(struct kdf_enc *e, unsigned kind, uint64_t word);
static int kdf_more_words(PyObject *v, uint64_t *more);
static void kdf_put_trailing(struct kdf_enc *e, const uint64_t *more, int nmore, int *spare);
static inline int kdf_instance_dict(PyObject *obj, PyTypeObject *tp, struct kdf_plan *p,
				    struct kdf_attrs *a);
static inline void kdf_finish(struct kdf_enc *e, struct kdf_type *te, uint64_t sid,
			      Py_ssize_t total, unsigned form, struct kdf_value *out);
static struct kdf_plan *kdf_plan_of(struct kdf_type *te, PyTypeObject *tp);
static void kdf_plan_free(struct kdf_plan *p);
static int kdf_encode_init(void);

static void kdf_layout_clear(struct kdf_layout *lc);
static void kdf_layout_fill(struct kdf_plan *p, const struct kdf_fields *f, uint64_t sid);
static void kdf_layout_fill_tuple(struct kdf_plan *p, PyObject *const *names, Py_ssize_t n,
				  uint64_t sid);
static inline int kdf_layout_encode(struct kdf_enc *e, int emit, PyObject *obj,
				    struct kdf_type *te, struct kdf_plan *p, struct kdf_value *out);
static inline int kdf_encode_cached(PyObject *obj, int emit, struct kdf_value *out);
static int kdf_encode_from_layout(PyObject *obj, struct kdf_value *out);
static inline void kdf_enc_init(struct kdf_enc *e, int emit, int cached, struct kdf_value *out);
static void kdf_pend_free(struct kdf_enc *e);
static inline uint64_t kdf_total_bits(Py_ssize_t n);

/* --- native records (native.c): the API instrumented C and Rust code calls ------- */

static void kdf_native_init(void);

/* --- small helpers shared by all ----------------------------------------------------- */

static inline uint64_t kdf_fnv(uint64_t h, const unsigned char *p, Py_ssize_t n)
{
	Py_ssize_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * KDF_FNV_PRIME;
	return h;
}

/* Borrowed item of a dict, NULL (no error set) if absent or unreadable. */
static inline PyObject *kdf_dict_get(PyObject *d, PyObject *key)
{
	PyObject *v = d ? PyDict_GetItemWithError(d, key) : NULL;

	if (!v)
		PyErr_Clear();
	return v;
}

/* Grow *arr (of *cap items of `item` bytes) to hold need; -1 when memory runs out. */
static inline int kdf_grow(void **arr, Py_ssize_t *cap, Py_ssize_t need, size_t item)
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

/* Names looked up on classes, interned at module init (kdf_encode_init, kdf_types_init). */
static PyObject *s_module, *s_slots, *s_dict, *s_fields, *s_dc_fields, *s_get, *s_field_type,
	*s_Field, *s_FIELD, *s_dataclasses, *s_name;

static inline int kdf_intern(PyObject **slot, const char *s)
{
	*slot = PyUnicode_InternFromString(s);
	return *slot ? 0 : -1;
}

#endif /* KCOVDF_KDF_H */
