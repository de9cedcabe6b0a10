/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcovdf._core._fuzz: the fuzzer's hot path (kcovdf.fuzz.engine uses it when it imports).
 *
 * A Feedback object holds what the fuzzer has seen: the branch counters covered (one
 * byte per ID of the shared coverage map) and a hash set of the other features
 * (per-site value profile of compared operands; (pc, arg_idx, bucket) of the records).
 * Three entry points:
 *   collect()  the new features of the last execution, read from the coverage map,
 *              the tracer's notes and the recorder's buffer (clears the map only);
 *   havoc()    libFuzzer-style stacked byte mutations of one input;
 *   loop()     mutate, run TestOneInput, collect, up to N times, returning early with an
 *              input that brought new features or one that raised.
 * The same features and mutations as the engine's Python path (kcovdf/fuzz/feedback.py,
 * mutate.py), with their own hash and random generator: each path is deterministic for
 * a seed. Standard C and the stable C API only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAP_SIZE (1 << 16)	/* kcovdf.instrument.coverage.MAP_SIZE */
#define MAX_RECORDS 4096	/* kcovdf.fuzz.engine.MAX_RECORDS */
#define MAX_OPS 8

enum { OP_BIT, OP_BYTE, OP_INSERT, OP_REPEAT, OP_ERASE, OP_COPY, OP_BININT, OP_ASCIIINT, OP_SHUFFLE,
       OP_DICT, OP_CROSS, N_OPS };
static const char *const op_names[N_OPS] = {
	"ChangeBit", "ChangeByte", "InsertByte", "InsertRepeatedBytes", "EraseBytes", "CopyPart",
	"ChangeBinInt", "ChangeASCIIInt", "ShuffleBytes", "DictWord", "CrossOver" };
static const int64_t interesting[] = { 0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
				       0x7FFFFFFF, 0x80000000LL, 0xFFFFFFFFLL, -1, -128, -32768 };

/* Progress of the loop, for the engine's watchdog thread (a timeout is no progress). */
static unsigned long long executions;
static int in_target;
static PyObject *current;	/* the input being run (a strong reference), or NULL */

typedef struct {
	PyObject_HEAD
	uint64_t *slots;	/* open addressing, 0 = empty; every feature has a high bit set */
	size_t cap, count;
	uint8_t covered[MAP_SIZE];
	Py_ssize_t ncovered;
	uint64_t rng;
	int ops[MAX_OPS];
	int nops;
	int queued;	/* the last input came from the queue (input-to-state), not from havoc */
} Feedback;

/* --- the feature set ----------------------------------------------------------------- */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int grow(Feedback *f)
{
	size_t cap = f->cap ? f->cap * 2 : 1024;
	uint64_t *slots = PyMem_Calloc(cap, sizeof(uint64_t));
	if (!slots) {
		PyErr_NoMemory();
		return -1;
	}
	for (size_t i = 0; i < f->cap; i++) {
		uint64_t key = f->slots[i];
		if (!key)
			continue;
		size_t j = mix(key) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = key;
	}
	PyMem_Free(f->slots);
	f->slots = slots;
	f->cap = cap;
	return 0;
}

/* 1 if ``key`` is new (and now added), 0 if known, -1 on memory error. */
static int add(Feedback *f, uint64_t key)
{
	if (2 * (f->count + 1) > f->cap && grow(f) < 0)
		return -1;
	size_t j = mix(key) & (f->cap - 1);
	while (f->slots[j]) {
		if (f->slots[j] == key)
			return 0;
		j = (j + 1) & (f->cap - 1);
	}
	f->slots[j] = key;
	f->count++;
	return 1;
}

/* --- features of one execution --------------------------------------------------------- */
static int bitlen(uint64_t x)
{
	return x ? 64 - __builtin_clzll(x) : 0;
}

/* A small number for a recorded value: the buckets of feedback.bucket(), from its words. */
static uint64_t bucket(const uint64_t *v, int n)
{
	if (n < 2)
		return 0;
	uint64_t layout = v[1];
	int form = (layout >> 52) & 0xF;
	if (form == 0 && n > 2) {
		int kind = layout & 0xF;
		uint64_t w = v[2];
		if (kind == 1) {
			int neg = (int64_t)w < 0;
			uint64_t mag = neg ? (uint64_t)0 - w : w;
			return 4 + neg * 128 + bitlen(mag) * 2 + (w & 1);
		}
		if (kind == 3)
			return 1 + (w != 0);
		if (kind == 4) {
			double d;
			memcpy(&d, &w, 8);
			if (d != d)
				return 299;
			double a = fabs(d);
			return 300 + (d < 0) + 2 * (a >= 1.8e19 ? 64 : bitlen((uint64_t)a));
		}
		return 1;
	}
	if (form == 1 && n > 2)
		return 400 + (v[2] & 0xF);
	if (form == 2 || form == 3) {
		uint64_t len = form == 2 ? (n > 3 ? v[3] : 0) : v[2];
		uint64_t first = form == 2 ? (n > 4 ? v[4] & 0xFF : 0) : (n > 3 ? v[3] & 0xFF : 0);
		return 512 + (uint64_t)bitlen(len < 255 ? len : 255) * 8 + (first & 7);
	}
	return (v[0] & 0xFFFF) << 16 | (layout >> 56);
}

static int records(Feedback *f, Py_buffer *buf)
{
	const uint64_t *w = buf->buf;
	Py_ssize_t size = buf->len / 8;
	if (size < 1)
		return 0;
	uint64_t end = w[0] + 1;
	if (end > (uint64_t)size)
		end = size;
	int fresh = 0, seen = 0;
	for (uint64_t i = 1; i + 3 <= end && seen < MAX_RECORDS;) {
		uint64_t head = w[i];
		int type = (head >> 28) & 0xF;
		if ((head >> 32) || (type != 0xD && type != 0xE && type != 0xF)) {
			i++;
			continue;
		}
		int n = (head >> 24) & 0xF;
		if (!n)
			n = 1;
		int avail = (int)(end - (i + 3) < (uint64_t)n ? end - (i + 3) : (uint64_t)n);
		uint64_t key = mix(w[i + 1] ^ (w[i + 2] >> 56) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)type << 40) ^
			       bucket(&w[i + 3], avail) * 0xD6E8FEB86659FD93ULL;
		int r = add(f, (key & ((1ULL << 60) - 1)) | 1ULL << 62);
		if (r < 0)
			return -1;
		fresh += r;
		seen++;
		i += 3 + n;
	}
	return fresh;
}

/* feedback.distance() of two compared operands. */
static int distance(PyObject *a, PyObject *b)
{
	if (PyLong_CheckExact(a) && PyLong_CheckExact(b)) {
		unsigned long long x = PyLong_AsUnsignedLongLongMask(a) ^ PyLong_AsUnsignedLongLongMask(b);
		if (PyErr_Occurred()) {
			PyErr_Clear();
			return 63;
		}
		int d = __builtin_popcountll(x);
		return d > 63 ? 63 : d;
	}
	if (PyFloat_Check(a) || PyFloat_Check(b)) {
		double x = PyFloat_AsDouble(a), y = PyFloat_AsDouble(b);
		if (PyErr_Occurred()) {
			PyErr_Clear();
			return 63;
		}
		double d = fabs(x - y);
		if (d != d || d >= 1.8e19)
			return 63;
		int bits = bitlen((uint64_t)d);
		return bits > 63 ? 63 : bits;
	}
	Py_ssize_t la, lb, same = 0;
	if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
		la = PyUnicode_GET_LENGTH(a);
		lb = PyUnicode_GET_LENGTH(b);
		while (same < la && same < lb && same < 24 && PyUnicode_READ_CHAR(a, same) == PyUnicode_READ_CHAR(b, same))
			same++;
	} else if (PyBytes_CheckExact(a) && PyBytes_CheckExact(b)) {
		la = PyBytes_GET_SIZE(a);
		lb = PyBytes_GET_SIZE(b);
		const char *x = PyBytes_AS_STRING(a), *y = PyBytes_AS_STRING(b);
		while (same < la && same < lb && same < 24 && x[same] == y[same])
			same++;
	} else {
		return 63;
	}
	int d = 63 - 2 * (int)same - (la == lb);
	return d < 1 ? 1 : d;
}

static int value_profile(Feedback *f, PyObject *notes)
{
	int fresh = 0;
	Py_ssize_t n = PyList_GET_SIZE(notes);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *note = PyList_GET_ITEM(notes, i);
		if (!PyTuple_Check(note) || PyTuple_GET_SIZE(note) != 4)
			continue;
		uint64_t site = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(note, 0));
		uint64_t kind = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(note, 1));
		if (PyErr_Occurred())
			return -1;
		int d = distance(PyTuple_GET_ITEM(note, 2), PyTuple_GET_ITEM(note, 3));
		int r = add(f, 2ULL << 60 | (site & ((1ULL << 50) - 1)) << 8 | (kind & 3) << 6 | (uint64_t)d);
		if (r < 0)
			return -1;
		fresh += r;
	}
	return fresh;
}

static int coverage(Feedback *f, Py_buffer *map, Py_ssize_t nblocks)
{
	uint8_t *m = map->buf;
	if (nblocks > map->len)
		nblocks = map->len;
	if (nblocks > MAP_SIZE)
		nblocks = MAP_SIZE;
	int fresh = 0;
	for (Py_ssize_t i = 0; i < nblocks; i++) {
		if (!m[i])
			continue;
		m[i] = 0;
		if (!f->covered[i]) {
			f->covered[i] = 1;
			f->ncovered++;
			fresh++;
		}
	}
	return fresh;
}

/* New features of the last execution; -1 with an exception set on error. */
static int collect_into(Feedback *f, Py_buffer *map, Py_ssize_t nblocks, PyObject *notes, Py_buffer *recs)
{
	int fresh = coverage(f, map, nblocks);
	if (notes && PyList_GET_SIZE(notes)) {
		int r = value_profile(f, notes);
		if (r < 0)
			return -1;
		fresh += r;
	}
	if (recs && recs->buf && recs->len >= 8 && ((uint64_t *)recs->buf)[0]) {
		int r = records(f, recs);
		if (r < 0)
			return -1;
		fresh += r;
	}
	return fresh;
}

/* --- mutations ------------------------------------------------------------------------- */
static uint64_t rnd(Feedback *f)
{
	/* xorshift64* */
	uint64_t x = f->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static Py_ssize_t below(Feedback *f, Py_ssize_t n)
{
	return n > 0 ? (Py_ssize_t)(rnd(f) % (uint64_t)n) : 0;
}

typedef struct {
	uint8_t *p;
	Py_ssize_t len, cap;
} Buf;

static int reserve(Buf *b, Py_ssize_t need)
{
	if (need <= b->cap)
		return 0;
	Py_ssize_t cap = need * 2 + 64;
	uint8_t *p = PyMem_Realloc(b->p, cap);
	if (!p) {
		PyErr_NoMemory();
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Replace [at, at+drop) with ``n`` bytes of ``src`` (src may point into b). */
static int splice(Buf *b, Py_ssize_t at, Py_ssize_t drop, const uint8_t *src, Py_ssize_t n)
{
	if (at > b->len)
		at = b->len;
	if (at + drop > b->len)
		drop = b->len - at;
	uint8_t tmp[256];
	uint8_t *copy = NULL;
	if (n > (Py_ssize_t)sizeof(tmp)) {
		copy = PyMem_Malloc(n);
		if (!copy) {
			PyErr_NoMemory();
			return -1;
		}
	}
	uint8_t *hold = copy ? copy : tmp;
	memcpy(hold, src, n);
	if (reserve(b, b->len - drop + n) < 0) {
		PyMem_Free(copy);
		return -1;
	}
	memmove(b->p + at + n, b->p + at + drop, b->len - at - drop);
	memcpy(b->p + at, hold, n);
	b->len += n - drop;
	PyMem_Free(copy);
	return 0;
}

static int apply(Feedback *f, Buf *b, int op, PyObject *words, PyObject *other)
{
	Py_ssize_t n = b->len;
	if (n == 0 && op != OP_INSERT && op != OP_REPEAT && op != OP_DICT && op != OP_CROSS)
		op = OP_INSERT;
	if (op == OP_DICT && (!words || PyList_GET_SIZE(words) == 0))
		op = OP_INSERT;
	if (op == OP_CROSS && (!other || !PyBytes_Check(other) || PyBytes_GET_SIZE(other) == 0))
		op = n ? OP_BYTE : OP_INSERT;
	f->ops[f->nops < MAX_OPS ? f->nops++ : MAX_OPS - 1] = op;
	switch (op) {
	case OP_BIT:
		b->p[below(f, n)] ^= 1 << below(f, 8);
		return 0;
	case OP_BYTE:
		b->p[below(f, n)] = (uint8_t)rnd(f);
		return 0;
	case OP_INSERT: {
		uint8_t c = (uint8_t)rnd(f);
		return splice(b, below(f, n + 1), 0, &c, 1);
	}
	case OP_REPEAT: {
		uint8_t fill[32];
		int k = 3 + (int)below(f, 30);
		int choice = (int)below(f, 3);
		uint8_t c = choice == 0 ? 0 : choice == 1 ? 0xFF : (uint8_t)rnd(f);
		memset(fill, c, sizeof(fill));
		return splice(b, below(f, n + 1), 0, fill, k);
	}
	case OP_ERASE: {
		Py_ssize_t at = below(f, n);
		Py_ssize_t most = n - at < 16 ? n - at : 16;
		return splice(b, at, 1 + below(f, most), NULL, 0);
	}
	case OP_COPY: {
		Py_ssize_t src = below(f, n), size = 1 + below(f, n - src), dst = below(f, n + 1);
		return splice(b, dst, (rnd(f) & 1) ? size : 0, b->p + src, size);
	}
	case OP_BININT: {
		static const int sizes[] = { 1, 2, 4, 8 };
		int size = sizes[below(f, 4)];
		Py_ssize_t at = below(f, n);
		uint64_t value;
		if (rnd(f) & 1) {
			value = (uint64_t)interesting[below(f, sizeof(interesting) / sizeof(interesting[0]))];
		} else {
			value = 0;
			for (int i = 0; i < size && at + i < n; i++)
				value |= (uint64_t)b->p[at + i] << (8 * i);
			value += (uint64_t)(below(f, 33) - 16);
		}
		uint8_t out[8];
		int big = rnd(f) & 1;
		for (int i = 0; i < size; i++)
			out[big ? size - 1 - i : i] = (uint8_t)(value >> (8 * i));
		return splice(b, at, size, out, size);
	}
	case OP_ASCIIINT: {
		char digits[32];
		int choice = (int)below(f, 3);
		int len = choice == 0 ? snprintf(digits, sizeof(digits), "%d", (int)below(f, 2001) - 1000)
			: choice == 1 ? snprintf(digits, sizeof(digits), "%u", (unsigned)rnd(f))
			: snprintf(digits, sizeof(digits), "%llu", (unsigned long long)rnd(f));
		return splice(b, below(f, n), 1 + below(f, 4), (uint8_t *)digits, len);
	}
	case OP_SHUFFLE: {
		Py_ssize_t at = below(f, n), k = n - at < 8 ? n - at : 8;
		for (Py_ssize_t i = k - 1; i > 0; i--) {
			Py_ssize_t j = below(f, i + 1);
			uint8_t t = b->p[at + i];
			b->p[at + i] = b->p[at + j];
			b->p[at + j] = t;
		}
		return 0;
	}
	case OP_DICT: {
		PyObject *word = PyList_GET_ITEM(words, below(f, PyList_GET_SIZE(words)));
		if (!PyBytes_Check(word))
			return 0;
		Py_ssize_t k = PyBytes_GET_SIZE(word);
		return splice(b, below(f, n + 1), (rnd(f) & 1) ? k : 0, (uint8_t *)PyBytes_AS_STRING(word), k);
	}
	case OP_CROSS: {
		Py_ssize_t on = PyBytes_GET_SIZE(other);
		Py_ssize_t at = below(f, on), k = 1 + below(f, on - at);
		return splice(b, below(f, n + 1), (rnd(f) & 1) ? k : 0, (uint8_t *)PyBytes_AS_STRING(other) + at, k);
	}
	}
	return 0;
}

static PyObject *mutate(Feedback *f, PyObject *base, Py_ssize_t max_len, PyObject *words, PyObject *other,
			int ascii)
{
	Buf b = { NULL, 0, 0 };
	Py_ssize_t n = PyBytes_GET_SIZE(base);
	if (reserve(&b, n + 64) < 0)
		return NULL;
	memcpy(b.p, PyBytes_AS_STRING(base), n);
	b.len = n;
	f->nops = 0;
	int stack = 1 << below(f, 4);
	for (int i = 0; i < stack; i++) {
		if (apply(f, &b, (int)below(f, N_OPS), words, other) < 0) {
			PyMem_Free(b.p);
			return NULL;
		}
	}
	if (max_len >= 0 && b.len > max_len)
		b.len = max_len;
	if (ascii)
		for (Py_ssize_t i = 0; i < b.len; i++)
			b.p[i] &= 0x7F;
	PyObject *out = PyBytes_FromStringAndSize((char *)b.p, b.len);
	PyMem_Free(b.p);
	return out;
}

static PyObject *pick(Feedback *f, PyObject *corpus, int recent)
{
	Py_ssize_t n = PyList_GET_SIZE(corpus);
	if (n == 0)
		return NULL;
	if (recent && (rnd(f) & 1))
		return PyList_GET_ITEM(corpus, n - 1 - below(f, n < 16 ? n : 16));
	return PyList_GET_ITEM(corpus, below(f, n));
}

/* --- the type ---------------------------------------------------------------------------- */
static int get_buffers(PyObject *map, Py_buffer *mb, PyObject *recs, Py_buffer *rb)
{
	if (PyObject_GetBuffer(map, mb, PyBUF_WRITABLE) < 0)
		return -1;
	rb->buf = NULL;
	if (recs != Py_None && PyObject_GetBuffer(recs, rb, PyBUF_WRITABLE) < 0) {
		PyBuffer_Release(mb);
		return -1;
	}
	return 0;
}

static void release(Py_buffer *mb, Py_buffer *rb)
{
	PyBuffer_Release(mb);
	if (rb->buf)
		PyBuffer_Release(rb);
}

static PyObject *Feedback_collect(Feedback *f, PyObject *args)
{
	PyObject *map, *notes, *recs;
	Py_ssize_t nblocks;
	if (!PyArg_ParseTuple(args, "OnO!O:collect", &map, &nblocks, &PyList_Type, &notes, &recs))
		return NULL;
	Py_buffer mb, rb;
	if (get_buffers(map, &mb, recs, &rb) < 0)
		return NULL;
	int fresh = collect_into(f, &mb, nblocks, notes, rb.buf ? &rb : NULL);
	release(&mb, &rb);
	return fresh < 0 ? NULL : PyLong_FromLong(fresh);
}

static PyObject *Feedback_havoc(Feedback *f, PyObject *args)
{
	PyObject *base, *words, *other;
	Py_ssize_t max_len;
	int ascii = 0;
	if (!PyArg_ParseTuple(args, "SnO!O|p:havoc", &base, &max_len, &PyList_Type, &words, &other, &ascii))
		return NULL;
	return mutate(f, base, max_len, words, other == Py_None ? NULL : other, ascii);
}

static void clear_list(PyObject *list)
{
	if (list && PyList_GET_SIZE(list))
		PyList_SetSlice(list, 0, PyList_GET_SIZE(list), NULL);
}

/* loop(target, corpus, words, max_len, map, nblocks, notes, provenance, recs, limit, ascii[, log, queue])
 * -> (status, input, exception, runs): status 0 ran ``limit`` inputs, 1 ``input`` brought new
 * features (its notes, provenance and records are left in place), 2 ``input`` raised ``exception``.
 * ``log``: a list that gets every input run (tests); ``queue``: inputs to run before any mutation,
 * taken from its end. */
static PyObject *Feedback_loop(Feedback *f, PyObject *args)
{
	PyObject *target, *corpus, *words, *map, *notes, *prov, *recs;
	Py_ssize_t max_len, nblocks, limit;
	int ascii;
	PyObject *log = Py_None, *queue = Py_None;
	if (!PyArg_ParseTuple(args, "OO!O!nOnO!OOnp|OO:loop", &target, &PyList_Type, &corpus, &PyList_Type,
			      &words, &max_len, &map, &nblocks, &PyList_Type, &notes, &prov, &recs, &limit, &ascii,
			      &log, &queue))
		return NULL;
	if (queue != Py_None && !PyList_Check(queue)) {
		PyErr_SetString(PyExc_TypeError, "loop(): queue must be a list or None");
		return NULL;
	}
	if (log != Py_None && !PyList_Check(log)) {
		PyErr_SetString(PyExc_TypeError, "loop(): log must be a list or None");
		return NULL;
	}
	if (prov != Py_None && !PyList_Check(prov)) {
		PyErr_SetString(PyExc_TypeError, "loop(): provenance must be a list or None");
		return NULL;
	}
	Py_buffer mb, rb;
	if (get_buffers(map, &mb, recs, &rb) < 0)
		return NULL;
	static PyObject *empty;
	if (!empty && !(empty = PyBytes_FromStringAndSize("", 0))) {
		release(&mb, &rb);
		return NULL;
	}
	uint64_t *words0 = rb.buf;
	PyObject *result = NULL;
	Py_ssize_t runs = 0;
	for (Py_ssize_t i = 0; i < limit; i++) {
		clear_list(notes);
		clear_list(prov == Py_None ? NULL : prov);
		if (words0)
			words0[0] = 0;
		PyObject *data;
		Py_ssize_t waiting = queue != Py_None ? PyList_GET_SIZE(queue) : 0;
		if (waiting) {
			/* the candidates of new inputs first, last queued first */
			data = Py_NewRef(PyList_GET_ITEM(queue, waiting - 1));
			if (PyList_SetSlice(queue, waiting - 1, waiting, NULL) < 0) {
				Py_DECREF(data);
				goto done;
			}
			f->queued = 1;
			if (!PyBytes_Check(data)) {
				Py_DECREF(data);
				PyErr_SetString(PyExc_TypeError, "loop(): the queue holds bytes only");
				goto done;
			}
		} else {
			PyObject *base = pick(f, corpus, 1);
			PyObject *other = pick(f, corpus, 0);
			f->queued = 0;
			data = mutate(f, base && PyBytes_Check(base) ? base : empty, max_len, words,
				      other && PyBytes_Check(other) ? other : NULL, ascii);
			if (!data)
				goto done;
		}
		if (log != Py_None && PyList_Append(log, data) < 0) {
			Py_DECREF(data);
			goto done;
		}
		Py_XSETREF(current, Py_NewRef(data));
		in_target = 1;
		PyObject *res = PyObject_CallOneArg(target, data);
		in_target = 0;
		executions++;
		if (!res) {
			if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
				Py_DECREF(data);
				goto done;
			}
			PyObject *type, *value, *tb;
			PyErr_Fetch(&type, &value, &tb);
			PyErr_NormalizeException(&type, &value, &tb);
			if (tb)
				PyException_SetTraceback(value, tb);
			result = Py_BuildValue("iNOn", 2, data, value ? value : Py_None, runs);
			Py_XDECREF(type);
			Py_XDECREF(value);
			Py_XDECREF(tb);
			goto done;
		}
		Py_DECREF(res);
		runs++;
		int fresh = collect_into(f, &mb, nblocks, notes, rb.buf ? &rb : NULL);
		if (fresh < 0) {
			Py_DECREF(data);
			goto done;
		}
		if (fresh) {
			result = Py_BuildValue("iNOn", 1, data, Py_None, runs);
			goto done;
		}
		Py_DECREF(data);
	}
	result = Py_BuildValue("iOOn", 0, Py_None, Py_None, runs);
done:
	release(&mb, &rb);
	return result;
}

static PyObject *Feedback_mutations(Feedback *f, PyObject *unused)
{
	char text[256];
	size_t at = 0;
	text[0] = 0;
	if (f->queued)
		return PyUnicode_FromString("I2S");
	for (int i = 0; i < f->nops && at < sizeof(text) - 32; i++)
		at += snprintf(text + at, sizeof(text) - at, "%s-", op_names[f->ops[i]]);
	return PyUnicode_FromString(text);
}

static PyObject *Feedback_counts(Feedback *f, PyObject *unused)
{
	return Py_BuildValue("nn", f->ncovered, (Py_ssize_t)f->count);
}

static int Feedback_init(Feedback *f, PyObject *args, PyObject *kwds)
{
	unsigned long long seed = 1;
	if (!PyArg_ParseTuple(args, "|K:Feedback", &seed))
		return -1;
	f->rng = mix(seed ^ 0x9E3779B97F4A7C15ULL) | 1;
	return 0;
}

static void Feedback_dealloc(Feedback *f)
{
	PyMem_Free(f->slots);
	Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyMethodDef Feedback_methods[] = {
	{ "collect", (PyCFunction)Feedback_collect, METH_VARARGS,
	  "collect(map, nblocks, notes, recs) -> new features of the last execution (clears the map)" },
	{ "havoc", (PyCFunction)Feedback_havoc, METH_VARARGS,
	  "havoc(data, max_len, words, other, ascii=False) -> data with 1 to 8 stacked mutations" },
	{ "loop", (PyCFunction)Feedback_loop, METH_VARARGS,
	  "loop(target, corpus, words, max_len, map, nblocks, notes, provenance, recs, limit, ascii)"
	  " -> (status, input, exception, runs)" },
	{ "mutations", (PyCFunction)Feedback_mutations, METH_NOARGS, "the names of the last input's mutations" },
	{ "counts", (PyCFunction)Feedback_counts, METH_NOARGS, "(branches covered, other features)" },
	{ NULL }
};

static PyTypeObject FeedbackType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "kcovdf._core._fuzz.Feedback",
	.tp_basicsize = sizeof(Feedback),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "What the fuzzer has seen: covered branches and a set of features; mutates and loops.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Feedback_init,
	.tp_dealloc = (destructor)Feedback_dealloc,
	.tp_methods = Feedback_methods,
};

static PyObject *progress(PyObject *self, PyObject *unused)
{
	return Py_BuildValue("KiO", executions, in_target, current ? current : Py_None);
}

static PyMethodDef module_methods[] = {
	{ "progress", progress, METH_NOARGS, "(executions, running the target now, the current input)" },
	{ NULL }
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "kcovdf._core._fuzz", "The fuzzer's hot path (see fuzz.c).", -1, module_methods
};

PyMODINIT_FUNC PyInit__fuzz(void)
{
	if (PyType_Ready(&FeedbackType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&module);
	if (!m)
		return NULL;
	if (PyModule_AddObjectRef(m, "Feedback", (PyObject *)&FeedbackType) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
