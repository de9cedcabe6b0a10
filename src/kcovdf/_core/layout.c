// SPDX-License-Identifier: GPL-2.0
/*
 * Where an instance's attributes are, and the per-class layout cache.
 *
 * Instance attributes are read where CPython keeps them, without making the dict.
 * Since 3.11 an instance of a plain class keeps its values inline, keyed by the
 * class's shared keys, until someone asks for __dict__; asking
 * (PyObject_GenericGetDict) allocates a dict and changes what later code sees, so
 * the recorder reads the values in place. On 3.10 the dict always exists, most
 * often a split table over the shared keys. Dicts, split or combined, are read
 * by key index or entry rather than through PyDict_Next (a call per attribute).
 * compat.h mirrors the layouts; kdf_mirrors_check() tries them on probe instances
 * and dicts at import and turns them off if they do not hold.
 *
 * The layout cache (struct kdf_layout, kdf.h) remembers where the fields of a
 * class's last instance were. kdf_layout_encode() serves an instance with the same
 * layout from its values alone, inside the general encoder (kdf_object) or straight
 * from kdf_encode (kdf_encode_cached, the fast path), and must give the words the full
 * walk (kdf_encode_object) gives: tests/runtime/test_layout_cache.py checks that
 * against the _encode_general test seam, which never uses the cache, with the
 * _encode_cached seam (the cache alone). Part of kdf.h's unity build.
 */
#include "kdf.h"

#ifdef KDF_MIRRORS
static int kdf_mirrors_ok; /* set by kdf_mirrors_check() */
#endif

/* The getter of type_new's __dict__ descriptor (subtype_dict), found at module init. */
static getter kdf_subtype_dict;

/* ---------------------------------------------------------------------------
 * Instance attributes.
 */

static inline void kdf_attrs_init(struct kdf_attrs *a)
{
	a->dict = a->owned = NULL;
	a->used = a->pos = 0;
#ifdef KDF_MIRRORS
	a->keys = NULL;
	a->values = NULL;
	a->order = NULL;
	a->ent = NULL;
	a->nent = 0;
	a->stride = 0;
#endif
}

#ifdef KDF_MIRRORS
static inline int kdf_attrs_split(struct kdf_attrs *a, const struct kdf_dk *dk, void *dv,
				  Py_ssize_t used)
{
	if (!kdf_keys_splittable(dk))
		return -1;
	a->values = kdf_split_values(dv);
	a->order = kdf_split_order(dv);
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
#ifdef KDF_MIRRORS
	a->values = NULL;
	a->ent = NULL;
	if (!kdf_mirrors_ok)
		return 1;
	if (kdf_dict_values(d)) {
		/* a split table is read by key index; if its keys are not as expected, PyDict_Next */
		kdf_attrs_split(a, kdf_dict_keys(d), kdf_dict_values(d), a->used);
	} else {
		const struct kdf_dk *dk = kdf_dict_keys(d);

		a->stride = kdf_keys_entry_words(dk);
		a->nent = kdf_keys_nentries(dk);
		a->ent = kdf_keys_first_key(dk);
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
	PyObject *d = NULL;

	kdf_attrs_init(a);
	if (kdf_free_threaded())
		return -1; /* another thread may be replacing them */
#ifdef KDF_MIRRORS
	if (kdf_has_inline_values() && !kdf_mirrors_ok)
		return -1; /* where the values are depends on the layout */
#endif
	if (kdf_type_managed_dict(tp)) {
		void *dv = NULL;
		Py_ssize_t used = 0;
		int r = kdf_inline_values(obj, tp, &d, &dv, &used);

		if (r < 0)
			return -1;
#ifdef KDF_MIRRORS
		if (r > 0)
			return kdf_attrs_split(a, kdf_split_keys(tp), dv, used);
#endif
	} else if (tp->tp_dictoffset > 0) {
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
#ifdef KDF_MIRRORS
	if (a->values) {
		const struct kdf_uentry *ents = kdf_keys_entries(a->keys);
		Py_ssize_t nent = kdf_keys_nentries(a->keys), walk = kdf_split_walk(a->used, nent);

		while (a->pos < walk) {
			size_t ix = kdf_split_index(a->order, a->pos++);

			if (ix >= (size_t)nent)
				return 0;
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
	if (a->dict) {
		/* through a copy of pos, so that nothing takes the address of a */
		Py_ssize_t pos = a->pos;
		int r = PyDict_Next(a->dict, &pos, k, v);

		a->pos = pos;
		return r;
	}
	return 0;
}

static inline void kdf_attrs_done(struct kdf_attrs *a)
{
	Py_XDECREF(a->owned);
}

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
	if (kdf_type_managed_dict(tp))
		return 1;
	return tp->tp_dictoffset > 0;
}

/* ---------------------------------------------------------------------------
 * The layout cache.
 */

static void kdf_layout_clear(struct kdf_layout *lc)
{
	Py_ssize_t i;

	for (i = 0; i < lc->nkeys; i++)
		Py_DECREF(lc->keys[i]);
	lc->nkeys = -1;
}

/* Remember the layout the full walk found in f, when the cache can serve it next time. */
static void kdf_layout_fill(struct kdf_plan *p, const struct kdf_fields *f, uint64_t sid)
{
	struct kdf_layout *lc = &p->layout;
	enum kdf_at at = p->nslots ? KDF_AT_SLOTS : KDF_AT_DICT;
	Py_ssize_t i;

	if (f->n > KDF_LAYOUT_KEYS || sid == KDF_FAULT)
		return; /* many fields: the full walk each time */
	if (at == KDF_AT_DICT && (p->nslots || f->dict_n != f->n))
		return; /* slots and a dict, non-str keys */
	if (at == KDF_AT_SLOTS) {
		/*
		 * Every slot stored, in plan order (no name repeated, none of another
		 * class), each an object member read in place: then where the values are
		 * depends on the class alone.
		 */
		if (p->dict_descr || f->n != p->nslots)
			return;
		for (i = 0; i < p->nslots; i++)
			if (!kdf_member_is_object(((PyMemberDescrObject *)p->slots[i].descr)->d_member) ||
			    f->v[i].name != p->slots[i].name)
				return;
	}
	kdf_layout_clear(lc);
	lc->at = at;
	for (i = 0; i < f->n; i++) {
		lc->keys[i] = Py_NewRef(f->v[i].name);
		if (at == KDF_AT_SLOTS)
			lc->off[i] = ((PyMemberDescrObject *)p->slots[i].descr)->d_member->offset;
	}
	lc->nkeys = f->n;
	for (i = 0; i < f->nnames; i++) {
		lc->src[i] = f->src[i];
		lc->names[i] = f->src[i] >= 0 ? lc->keys[f->src[i]] : f->names[i];
	}
	lc->nout = f->nnames;
	lc->direct = lc->nout == lc->nkeys;
	for (i = 0; i < lc->nout; i++)
		lc->direct &= lc->src[i] == i;
	lc->total = f->total;
	lc->sid = sid;
	/* its shape line is checked once against the seen ids at the next record; a layout
	 * without fields has none (its class line is kdf_finish's) */
	lc->registered = !lc->nout;
}

/* The same for a namedtuple's n items (all of them, all recorded). */
static void kdf_layout_fill_tuple(struct kdf_plan *p, PyObject *const *names, Py_ssize_t n,
				  uint64_t sid)
{
	struct kdf_layout *lc = &p->layout;
	Py_ssize_t i;

	if (n > KDF_LAYOUT_KEYS || n > KDF_MAX_FIELDS || sid == KDF_FAULT)
		return;
	kdf_layout_clear(lc);
	lc->at = KDF_AT_TUPLE;
	for (i = 0; i < n; i++) {
		lc->keys[i] = Py_NewRef(names[i]);
		lc->src[i] = (signed char)i;
		lc->names[i] = lc->keys[i];
	}
	lc->nkeys = lc->nout = (int)n;
	lc->direct = 1;
	lc->total = PyTuple_GET_SIZE(p->nt_fields);
	lc->sid = sid;
	lc->registered = !n;
}

/* nested() of one cached field (NULL: an empty slot). */
static inline unsigned kdf_layout_kind(struct kdf_enc *e, PyObject *v, uint64_t *w)
{
	int kind;

	if (!v) {
		*w = 0;
		return KDF_KIND_UNSET;
	}
	kind = kdf_nested_builtin(v, w);
	return kind >= 0 ? (unsigned)kind : kdf_nested(e, v, w);
}

/*
 * The encoder's state for the fields from here on: only a value that is not a builtin
 * needs it (its class may be owed a table line), so an instance of builtins alone
 * never sets it up. e is the caller's, unused so far; te stays pinned meanwhile.
 */
#define KDF_LAYOUT_STATE()                                                              \
	do {                                                                            \
		if (!state) {                                                           \
			kdf_enc_init(e, emit, 1, out);                                  \
			outer = kdf_type_pin(te);                                       \
			state = 1;                                                      \
		}                                                                       \
	} while (0)

/*
 * Encode the fields i = 0..nk-1, `read` setting v to field i (or jumping to miss): the
 * builtin values first, in a loop that calls nothing, then from the first other value
 * on through kdf_layout_kind, with the encoder's state.
 */
#define KDF_LAYOUT_FIELDS(read)                                                          \
	do {                                                                               \
		for (i = 0; i < nk; i++) {                                                 \
			int kind_;                                                         \
			read;                                                              \
			if (!v || (kind_ = kdf_nested_builtin(v, &dst[i])) < 0)            \
				break;                                                     \
			kinds |= (uint64_t)kind_ << (4 * i);                               \
			if (kind_ == KDF_KIND_STR7 && dst[i] >> 59)                        \
				KDF_LAYOUT_LONG(i, v);                                     \
		}                                                                          \
		if (i < nk)                                                                \
			KDF_LAYOUT_STATE();                                                \
		for (; i < nk; i++) {                                                      \
			read;                                                              \
			KDF_LAYOUT_PUT(i, v);                                              \
		}                                                                          \
	} while (0)

/* A str or bytes field longer than its STR7/BYTES7 word: its continuation, read now. */
#define KDF_LAYOUT_LONG(i, v)                                                            \
	do {                                                                               \
		nmore[i] = kdf_more_words(v, more[i]);                                     \
		longs |= 1u << (i);                                                        \
	} while (0)

/* Field i from value v, through kdf_layout_kind (the encoder's state is set up). */
#define KDF_LAYOUT_PUT(i, v)                                                             \
	do {                                                                               \
		unsigned k_ = kdf_layout_kind(e, v, &dst[i]);                              \
		kinds |= (uint64_t)k_ << (4 * (i));                                        \
		if ((k_ == KDF_KIND_STR7 || k_ == KDF_KIND_BYTES7) && dst[i] >> 59)        \
			KDF_LAYOUT_LONG(i, v);                                             \
	} while (0)

/*
 * Encode obj (a record's value when emit) from the layout cache of its plan: its values
 * read at the cached places and encoded in key (slot, item) order, as the full walk
 * meets them, so OBJ classes are met in the same order; then placed as the cache says.
 * e: the encoder's state, set up here if needed (the caller's, nothing put yet). 1 if
 * done; 0 when obj's layout is another one: the caller then takes the full walk with e,
 * as fresh as it gave it.
 */
static inline __attribute__((always_inline)) int kdf_layout_encode(struct kdf_enc *e, int emit,
								   PyObject *obj, struct kdf_type *te,
								   struct kdf_plan *p,
								   struct kdf_value *out)
{
	struct kdf_layout *lc = &p->layout;
	PyObject *const *keys = lc->keys;
	Py_ssize_t i, nk = lc->nkeys;
	/* kinds: 4 bits each, as in the layout word; fields in key order go straight to the output */
	uint64_t words[KDF_LAYOUT_KEYS], kinds = 0, *dst = lc->direct ? &out->w[2] : words;
	/* the continuations of long strs and bytes (bit i of longs: key i has some) */
	uint64_t more[KDF_LAYOUT_KEYS][KDF_NESTED_CHUNKS];
	int nmore[KDF_LAYOUT_KEYS];
	unsigned longs = 0;
	struct kdf_type *outer = NULL;
	struct kdf_attrs a;
	PyObject *k, *v;
	int j, state = 0;

	kdf_attrs_init(&a);
	if (lc->at == KDF_AT_DICT) {
		if (kdf_instance_dict(obj, Py_TYPE(obj), p, &a) < 0)
			return 0;
		if (a.used != nk)
			goto miss;
#ifdef KDF_MIRRORS
		if (a.values) {
			/* a split table: each cached key must sit at the index its order names */
			const struct kdf_uentry *ents = kdf_keys_entries(a.keys);
			size_t nent = (size_t)kdf_keys_nentries(a.keys), ix;

			KDF_LAYOUT_FIELDS(ix = kdf_split_index(a.order, i);
					  if (ix >= nent || ents[ix].me_key != keys[i] || !(v = a.values[ix]))
						  goto miss);
		} else if (a.ent) {
			/* a combined table: the i-th entry with a value must hold the i-th cached key */
			PyObject *const *ent = a.ent;
			Py_ssize_t pos = 0, nent = a.nent, stride = a.stride;

			KDF_LAYOUT_STATE();
			for (i = 0; i < nk; i++, pos++) {
				while (pos < nent && !ent[pos * stride + 1])
					pos++;
				if (pos == nent || ent[pos * stride] != keys[i])
					goto miss;
				v = ent[pos * stride + 1];
				KDF_LAYOUT_PUT(i, v);
			}
			/* used == nk: no value after these */
		} else
#endif
		{
			KDF_LAYOUT_STATE();
			for (i = 0; kdf_attrs_next(&a, &k, &v); i++) {
				if (i == nk || k != keys[i])
					goto miss;
				KDF_LAYOUT_PUT(i, v);
			}
			if (i != nk)
				goto miss;
		}
		kdf_attrs_done(&a);
	} else if (lc->at == KDF_AT_TUPLE) {
		/* only a tuple's length can differ between instances */
		if (PyTuple_GET_SIZE(obj) != nk)
			return 0;
		KDF_LAYOUT_FIELDS(v = PyTuple_GET_ITEM(obj, i));
	} else { /* KDF_AT_SLOTS */
		KDF_LAYOUT_FIELDS(v = *(PyObject **)((char *)obj + lc->off[i]));
	}
	if (!lc->registered && emit) {
		/* as kdf_shape does when it computes the id; no fields: kdf_finish does it */
		kdf_register(lc->sid, te->name, te->nlen, lc->names, lc->nout);
		lc->registered = 1;
	}
	if (!state && lc->direct && nk && !longs) {
		/* builtins only, in key order: the fields are in place, no class is owed a line */
		out->w[0] = lc->sid;
		out->w[1] = kdf_total_bits(lc->total) | (uint64_t)KDF_FORM_OBJECT << 52 | kinds;
		out->n = 2 + (int)nk;
		return 1;
	}
	KDF_LAYOUT_STATE();
	if (lc->direct) {
		e->kinds = kinds;
		e->n = (int)nk;
	} else {
		for (j = 0; j < lc->nout; j++) {
			int src = lc->src[j];

			if (src >= 0)
				kdf_put(e, (unsigned)(kinds >> (4 * src)) & 0xF, words[src]);
			else if (src == KDF_SRC_FAULT)
				kdf_put(e, KDF_KIND_FAULT, KDF_FAULT);
			else
				kdf_put(e, KDF_KIND_UNSET, 0);
		}
	}
	if (longs) {
		/* after the fields, their continuations in field order (kdf_object_more) */
		int spare = KDF_MAX_FIELDS - e->n;

		for (j = 0; j < lc->nout && spare > 0; j++) {
			int src = lc->direct ? j : lc->src[j];

			if (src >= 0 && (longs >> src & 1))
				kdf_put_trailing(e, more[src], nmore[src], &spare);
		}
	}
	kdf_finish(e, te, lc->sid, lc->total, KDF_FORM_OBJECT, out);
	kdf_type_unpin(outer);
	return 1;
miss:
	kdf_attrs_done(&a);
	if (state) {
		kdf_type_unpin(outer);
		kdf_pend_free(e);
		e->kinds = 0;
		e->n = 0;
	}
	return 0;
}

#undef KDF_LAYOUT_FIELDS
#undef KDF_LAYOUT_LONG
#undef KDF_LAYOUT_PUT
#undef KDF_LAYOUT_STATE

/*
 * An instance of a class kdf_object found served by its layout cache (fast_tag),
 * while the class keeps that tag and qualname: straight to the cache. 1 if done.
 */
static inline __attribute__((always_inline)) int kdf_encode_cached(PyObject *obj, int emit,
								   struct kdf_value *out)
{
	PyTypeObject *tp = Py_TYPE(obj);
	struct kdf_type *te = kdf_type_peek(tp);
	struct kdf_enc e;

	if (te->tp != tp || !te->fast_tag || te->fast_tag != kdf_type_version(tp) ||
	    !PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE) ||
	    te->qualname != ((PyHeapTypeObject *)tp)->ht_qualname)
		return 0;
	return kdf_layout_encode(&e, emit, obj, te, te->plan, out);
}

/*
 * The _encode_cached test seam: obj through its class's layout cache alone, as the
 * encoder would serve it (the plan current, the layout filled by an earlier value).
 * 1 if done; 0 when the cache does not serve obj.
 */
static int kdf_encode_from_layout(PyObject *obj, struct kdf_value *out)
{
	struct kdf_type *te = kdf_type_of(Py_TYPE(obj));
	struct kdf_plan *p;
	struct kdf_enc e;

	if (!te || !te->plan || !(p = kdf_plan_of(te, Py_TYPE(obj))) || p->layout.nkeys < 0)
		return 0;
	return kdf_layout_encode(&e, 0, obj, te, p, out);
}

/* ---------------------------------------------------------------------------
 * The mirrors, tried at import.
 */

#ifdef KDF_MIRRORS
/* Whether kdf_attrs_of reads obj's attributes as names/vals, in order, in place. */
static int kdf_mirrors_read(PyObject *obj, PyObject *const *names, PyObject *const *vals, int n)
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
static int kdf_mirrors_read_dict(PyObject *d)
{
	struct kdf_attrs a;
	Py_ssize_t pos = 0;
	PyObject *k, *v, *ka, *va;

	kdf_attrs_init(&a);
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
 * str keys only and not. Any mismatch leaves kdf_mirrors_ok 0: every dict is then
 * read through PyDict_Next, on 3.11+ asked for.
 */
static int kdf_mirrors_check(PyObject *cls)
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
	kdf_mirrors_ok = 1;
	ok = kdf_mirrors_read(obj, k, v, 3);
	if (PyObject_DelAttr(obj, k[1]) < 0 || PyObject_SetAttr(obj, k[1], v[1]) < 0)
		goto done;
	order_k[0] = k[0], order_k[1] = k[2], order_k[2] = k[1];
	order_v[0] = v[0], order_v[1] = v[2], order_v[2] = v[1];
	ok = ok && kdf_mirrors_read(obj, order_k, order_v, 3);
	if (!(d = PyObject_GenericGetDict(obj, NULL)))
		goto done;
	ok = ok && PyDict_GET_SIZE(d) == 3 && kdf_mirrors_read(obj, order_k, order_v, 3) &&
	     kdf_mirrors_read_dict(d);
	/* a combined table of str keys, then one with another key (3.11+: general entries) */
	if (!(plain = PyDict_New()))
		goto done;
	for (i = 0; i < 3; i++)
		if (PyDict_SetItem(plain, k[i], v[i]) < 0)
			goto done;
	if (PyDict_DelItem(plain, k[1]) < 0)
		goto done;
	ok = ok && kdf_mirrors_read_dict(plain);
	if (PyDict_SetItem(plain, v[0], v[1]) < 0 || PyDict_DelItem(plain, k[0]) < 0)
		goto done;
	ok = ok && kdf_mirrors_read_dict(plain);
	rc = 0;
done:
	kdf_mirrors_ok = ok && rc == 0;
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

/* Whether instance attributes and dicts are read in place (the _layout test seam). */
static int kdf_mirrors_in_use(void)
{
#ifdef KDF_MIRRORS
	return kdf_mirrors_ok;
#else
	return 0;
#endif
}

/*
 * At module init, on a fresh class: subtype_dict (static in typeobject.c) from its
 * __dict__, and the mirrored layouts tried.
 */
static int kdf_layout_init(void)
{
	PyObject *cls, *d;
	int rc = 0;

	if (kdf_subtype_dict)
		return 0;
	cls = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O){}", "_kdf_probe",
				    (PyObject *)&PyBaseObject_Type);
	if (!cls)
		return -1;
	d = kdf_dict_get(((PyTypeObject *)cls)->tp_dict, s_dict);
	if (d && Py_IS_TYPE(d, &PyGetSetDescr_Type))
		kdf_subtype_dict = ((PyGetSetDescrObject *)d)->d_getset->get;
#ifdef KDF_MIRRORS
	rc = kdf_mirrors_check(cls);
#endif
	Py_DECREF(cls);
	return rc;
}
