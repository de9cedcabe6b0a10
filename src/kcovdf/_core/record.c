// SPDX-License-Identifier: GPL-2.0
/*
 * The record writers of KCOV-Dataflow for Python: per-thread state, the hot path, the
 * task lifecycle and the control entry points, in kernel/kcov.c's order. Part of
 * kdf.h's unity build; the encoder they call is encode.c.
 *
 * One struct kdf_task per OS thread (_Thread_local). State transitions of a thread,
 * as of a kcov task:
 *  - initial state: disabled (area == NULL), and so is a fork child;
 *  - enable(mapping, table_fd): CAS the header's owner word 0 -> tid; area, size and
 *    hdr point into the mapping, seq = 0, and a kdf_holder in the thread's state dict
 *    keeps the mapping exported;
 *  - then entry/ret/yld/exc append whole records, or count a drop when one does not fit;
 *  - disable(mapping): owner word back to 0, the holder dropped, disabled again;
 *  - or the thread ends while enabled: CPython clears the thread's state dict and the
 *    holder's dealloc does what disable() would (the owner word is cleared only if it
 *    still names this thread of this process), then the exit hook hears of it. A
 *    holder inherited through fork belongs to the parent: the child only lets go of
 *    its export.
 * enable/disable can be repeated; a buffer has one owner at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kdf.h"

struct kdf_task {
	/* the enabled buffer (area[0] counts the words after it); NULL: disabled (the mode check) */
	uint64_t *area;
	uint64_t size;	  /* its length in words */
	uint64_t *hdr;	  /* the .kdf header page in front of it: the drops and owner words */
	uint32_t seq;	  /* 24-bit sequence: reset to 0 by enable(), pre-incremented per record */
	/*
	 * Re-entrancy guard: set while a record is being made, so that finalizers, signal
	 * handlers, the runtime itself or the record hook (an "interrupt" mid-record)
	 * record nothing.
	 */
	int busy;
	PyObject *holder; /* the kdf_holder keeping the mapping exported; borrowed (the thread dict owns it) */
};

/*
 * Only its own thread touches a kdf_task. Shared words: buf[0] and the header's drops
 * and owner words may be written by several threads and by processes sharing a
 * MAP_SHARED mapping after fork; they change only through atomic compare-and-swap or
 * fetch-add. Every other static (the type cache, seen ids, table fds, remembered
 * lines, the active count, the hooks) is protected by the GIL: nothing in the
 * recorder releases it.
 *
 * initial-exec: the module is loaded by dlopen, whose default (general dynamic) model
 * calls __tls_get_addr on every access; a few dozen bytes fit glibc's static TLS surplus.
 */
static _Thread_local struct kdf_task kdf_task __attribute__((tls_model("initial-exec")));

/* Threads of this process enabled right now. */
static long kdf_active;
/* The REDACTED sentinel. */
static PyObject *kdf_redacted;
static PyObject *s_task_key;

/* OSError(err, message), as the kernel's errno for the same misuse. */
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

/* ---------------------------------------------------------------------------
 * The hot path: mode check, encode, bounded append, drop counter.
 */

/*
 * Reserve n words after buf[0]. A record that does not fit whole is dropped and
 * counted (unless `batch`: the caller then reserves its records one by one);
 * buf[0] therefore never exceeds size - 1.
 */
static int kdf_next_buffer(struct kdf_task *t);
static PyObject *kdf_full_hook;

static inline uint64_t *kdf_reserve(struct kdf_task *t, uint64_t n, int batch)
{
	uint64_t pos = __atomic_load_n(&t->area[0], __ATOMIC_RELAXED);
	int asked = 0;

	for (;;) {
		if (pos >= t->size - 1 || n > t->size - 1 - pos) {
			if (batch)
				return NULL;
			/* the slow path: a full hook may move the thread to a fresh buffer, once */
			if (kdf_full_hook && !asked) {
				int moved = kdf_next_buffer(t);

				asked = 1;
				if (moved < 0)
					return NULL; /* the hook disabled the thread: nothing to count on */
				if (moved) {
					pos = __atomic_load_n(&t->area[0], __ATOMIC_RELAXED);
					continue;
				}
			}
			__atomic_fetch_add(&t->hdr[KDF_HDR_DROPS / 8], 1, __ATOMIC_RELAXED);
			return NULL;
		}
		if (__atomic_compare_exchange_n(&t->area[0], &pos, pos + n, 1, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return &t->area[1 + pos];
	}
}

/*
 * Test seam (set_record_hook): a callable run in the middle of every record, after
 * its words are reserved and before its values are written, with the guard held: it
 * stands for the kernel's interrupt arriving mid-record. NULL in production, so the
 * hot path pays one load and test.
 */
static PyObject *kdf_hook;

/* Call hook() inside a record, holding a reference meanwhile; what it raises is dropped. */
static void kdf_run_hook(PyObject *hook)
{
	PyObject *r;

	Py_INCREF(hook);
	r = PyObject_CallNoArgs(hook);
	Py_DECREF(hook);
	if (r)
		Py_DECREF(r);
	else
		PyErr_Clear();
}

/*
 * Run the hook. Returns -1 if it left this thread on another buffer (it disabled
 * it): the reserved words must not be written through the old pointer. What the
 * hook raises is dropped, as nothing an interrupt does can fail the record.
 */
static __attribute__((noinline, cold)) int kdf_call_hook(struct kdf_task *t)
{
	uint64_t *area = t->area;

	kdf_run_hook(kdf_hook);
	return t->area == area ? 0 : -1;
}

/*
 * The buffer is full (set_full_hook): run the hook, with the guard held, so that it may
 * move this thread to a fresh buffer (resegment); what it raises is dropped. 1: the
 * thread is on another buffer now, 0: still on this one, -1: disabled.
 */
static __attribute__((noinline, cold)) int kdf_next_buffer(struct kdf_task *t)
{
	uint64_t *area = t->area;

	kdf_run_hook(kdf_full_hook);
	if (!t->area)
		return -1;
	return t->area != area;
}

/* The three header words of a record whose value takes nv words; meta's pointer is the call id. */
static inline void kdf_header(uint64_t *w, unsigned rtype, uint32_t seq, int nv, uint64_t pc,
			      unsigned arg_idx, uint64_t call_id)
{
	w[0] = (uint64_t)rtype << 28 | (uint64_t)(nv & 0xF) << 24 | seq;
	w[1] = pc;
	w[2] = (uint64_t)arg_idx << 56 | (uint64_t)KDF_PY_VALUE_SIZE << 48 | (call_id & KDF_PTR_MASK);
}

/*
 * Append one encoded record (its own reservation); -1 if the thread's buffer changed
 * under it (only the hook can do that).
 */
static inline int kdf_append(struct kdf_task *t, unsigned rtype, uint64_t pc, unsigned arg_idx,
			     uint64_t call_id, const struct kdf_value *v)
{
	uint64_t *w;

	if (!t->area)
		return -1; /* a record hook disabled this thread: never write through a stale pointer */
	t->seq = (t->seq + 1) & KDF_SEQ_MASK;
	w = kdf_reserve(t, KDF_HEADER_WORDS + v->n, 0);
	if (!w)
		return 0;
	kdf_header(w, rtype, t->seq, v->n, pc, arg_idx, call_id);
	if (kdf_hook && kdf_call_hook(t) < 0)
		return -1;
	memcpy(&w[3], v->w, sizeof(uint64_t) * v->n);
	return 0;
}

/* One record; -1 if the thread's buffer changed under it (only the hook can do that). */
static int kdf_write(struct kdf_task *t, unsigned rtype, uint64_t pc, unsigned arg_idx,
		     uint64_t call_id, PyObject *value)
{
	struct kdf_value v;

	kdf_encode(value, value == kdf_redacted, 1, &v);
	return kdf_append(t, rtype, pc, arg_idx, call_id, &v);
}

/* A record of one value word that is not an encoded value: an event, an ARG_NONE entry. */
static int kdf_write_word(struct kdf_task *t, unsigned rtype, uint64_t pc, unsigned arg_idx,
			  uint64_t call_id, uint64_t word)
{
	struct kdf_value v;

	v.n = 1;
	v.w[0] = word;
	return kdf_append(t, rtype, pc, arg_idx, call_id, &v);
}

/*
 * The entry records of args[0..n), 1 < n <= KDF_BATCH, with one reservation when they
 * fit together: the same words and drops as one kdf_write each, as no code can run
 * in between (no hook). What does not fit is appended record by record, so that
 * drops stay counted per record.
 */
#define KDF_BATCH 6

static __attribute__((noinline)) void kdf_write_batch(struct kdf_task *t, uint64_t pc,
						      uint64_t call_id, PyObject *const *args,
						      Py_ssize_t n)
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
			if (kdf_append(t, KDF_TYPE_ENTRY, pc, (unsigned)i, call_id, &v[i]) < 0)
				return;
		return;
	}
	for (i = 0; i < n; i++) {
		t->seq = (t->seq + 1) & KDF_SEQ_MASK;
		kdf_header(w, KDF_TYPE_ENTRY, t->seq, v[i].n, pc, (unsigned)i, call_id);
		memcpy(&w[3], v[i].w, sizeof(uint64_t) * v[i].n);
		w += KDF_HEADER_WORDS + v[i].n;
	}
}

/*
 * The last pc object and its value: instrumented code passes the same constant each
 * time, and an int never changes, so identity is enough. The strong reference keeps
 * the address from being reused by another int.
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

/* ---------------------------------------------------------------------------
 * Calls: the shadow stack (docs/core.md §1.1, the twin's _sync).
 *
 * Each enabled thread keeps the calls running on it, innermost last, named by the frame
 * of the instrumented function (compat.h). A generator-like call that leaves the stack
 * without finishing waits in kdf_suspended (frame -> (call id, pc)) until it runs again,
 * on any thread. The common paths compare one pointer; the rest is the slow kdf_sync.
 */

struct kdf_call {
	void *frame;	  /* NULL when frames are not read (kdf_frames_ok 0): pairing by position */
	uint64_t id, pc;
	PyObject *held;	  /* the pending return (hold/done), or NULL */
	int gen;	  /* generator, coroutine or async generator: it can be suspended */
};

struct kdf_calls {
	struct kdf_call *c;
	uint32_t depth, cap;
};

static _Thread_local struct kdf_calls kdf_calls __attribute__((tls_model("initial-exec")));
static uint64_t kdf_next_id;	/* call ids of this process: 1, 2, ... (GIL) */
static PyObject *kdf_suspended; /* dict: int(frame) -> (call id, pc[, held value]) */
static int kdf_frames_ok;	/* set by kdf_frames_check() */
#define KDF_MAX_CALLS (1u << 22)
#define KDF_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR)

static inline void *kdf_here(void)
{
#ifdef KDF_FRAMES
	if (kdf_frames_ok)
		return kdf_frame_current();
#endif
	return NULL;
}

static inline void *kdf_back(void *f)
{
#ifdef KDF_FRAMES
	return f ? kdf_frame_back(f) : NULL;
#else
	return NULL;
#endif
}

static inline int kdf_is_gen(void *f)
{
#ifdef KDF_FRAMES
	PyObject *code = f ? kdf_frame_code(f) : NULL;

	return code && (((PyCodeObject *)code)->co_flags & KDF_GEN_FLAGS);
#else
	return 0;
#endif
}

static inline int kdf_any_suspended(void)
{
	return kdf_suspended && PyDict_GET_SIZE(kdf_suspended) > 0;
}

/* The map's operations allocate: a failure only loses the pairing of one call. */
static void kdf_map_put(const struct kdf_call *c)
{
	PyObject *key, *val;

	if (!c->frame || (!kdf_suspended && !(kdf_suspended = PyDict_New()))) {
		PyErr_Clear();
		return;
	}
	key = PyLong_FromVoidPtr(c->frame);
	/* a held return waits with its call: `return` in `async with` suspends in __aexit__ */
	val = c->held ? Py_BuildValue("(KKO)", (unsigned long long)c->id, (unsigned long long)c->pc,
				      c->held)
		      : Py_BuildValue("(KK)", (unsigned long long)c->id, (unsigned long long)c->pc);
	if (!key || !val || PyDict_SetItem(kdf_suspended, key, val) < 0)
		PyErr_Clear();
	Py_XDECREF(key);
	Py_XDECREF(val);
}

/* Take frame's entry out of the map: 1 and its id, pc and held value (new, or NULL) if it was there. */
static int kdf_map_take(void *frame, uint64_t *id, uint64_t *pc, PyObject **held)
{
	PyObject *key = PyLong_FromVoidPtr(frame), *val;
	int found = 0;

	if (!key) {
		PyErr_Clear();
		return 0;
	}
	val = PyDict_GetItemWithError(kdf_suspended, key);
	if (val) {
		*id = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(val, 0));
		*pc = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(val, 1));
		*held = PyTuple_GET_SIZE(val) > 2 ? Py_NewRef(PyTuple_GET_ITEM(val, 2)) : NULL;
		found = 1;
		if (PyDict_DelItem(kdf_suspended, key) < 0)
			PyErr_Clear();
	}
	PyErr_Clear();
	Py_DECREF(key);
	return found;
}

static void kdf_map_clear(void)
{
	if (kdf_suspended)
		PyDict_Clear(kdf_suspended);
}

/* Push a call; NULL if the stack cannot grow (the call then goes untracked). */
static struct kdf_call *kdf_push(void *frame, uint64_t id, uint64_t pc, int gen)
{
	struct kdf_calls *s = &kdf_calls;
	struct kdf_call *c;

	if (s->depth == s->cap) {
		uint32_t cap = s->cap ? 2 * s->cap : 64;
		struct kdf_call *grown;

		if (cap > KDF_MAX_CALLS)
			return NULL;
		grown = PyMem_RawRealloc(s->c, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		s->c = grown;
		s->cap = cap;
	}
	c = &s->c[s->depth++];
	c->frame = frame;
	c->id = id;
	c->pc = pc;
	c->held = NULL;
	c->gen = gen;
	return c;
}

/* Forget every call of this thread (its task ends); their held values are released. */
static void kdf_calls_clear(void)
{
	struct kdf_calls *s = &kdf_calls;

	while (s->depth) {
		s->depth--;
		Py_CLEAR(s->c[s->depth].held);
	}
}

static inline struct kdf_call *kdf_top(void)
{
	struct kdf_calls *s = &kdf_calls;

	return s->depth ? &s->c[s->depth - 1] : NULL;
}

/*
 * Make the stack hold exactly the recorded calls on frame's chain (from frame itself if
 * self_too, else from its caller). Calls above the innermost one on the chain are stale:
 * a generator-like one is suspended (SUSPEND, then the map), a plain one lost its exit.
 * Then each suspended call on the chain runs again (RESUME), outermost first.
 */
static __attribute__((noinline)) void kdf_sync(struct kdf_task *t, void *frame, int self_too)
{
	struct kdf_calls *s = &kdf_calls;
	void *start = self_too ? frame : kdf_back(frame), *f, *top, *few[64], **chain;
	uint64_t id, pc, resumer;
	PyObject *held;
	struct kdf_call *c;
	Py_ssize_t n, i;

	if (!frame)
		return;
	while (s->depth) {
		top = s->c[s->depth - 1].frame;
		for (f = start; f && f != top; f = kdf_back(f))
			;
		if (f)
			break;
		struct kdf_call c = s->c[--s->depth];

		if (c.gen) {
			kdf_write_word(t, KDF_TYPE_EVENT, c.pc, KDF_EVENT_SUSPEND, c.id, 0);
			kdf_map_put(&c);
		}
		Py_CLEAR(c.held);
	}
	if (!kdf_any_suspended())
		return;
	top = s->depth ? s->c[s->depth - 1].frame : NULL;
	for (n = 0, f = start; f && f != top; f = kdf_back(f))
		n++;
	if (!n)
		return;
	chain = n <= 64 ? few : PyMem_RawMalloc(n * sizeof(void *));
	if (!chain)
		return;
	for (i = 0, f = start; i < n; i++, f = kdf_back(f))
		chain[i] = f;
	for (i = n - 1; i >= 0; i--) {
		if (!kdf_is_gen(chain[i]) || !kdf_map_take(chain[i], &id, &pc, &held))
			continue;
		resumer = s->depth ? s->c[s->depth - 1].id : 0;
		if (!(c = kdf_push(chain[i], id, pc, 1))) {
			Py_XDECREF(held);
			break;
		}
		c->held = held;
		kdf_write_word(t, KDF_TYPE_EVENT, pc, KDF_EVENT_RESUME, id, resumer);
	}
	if (chain != few)
		PyMem_RawFree(chain);
}

/* The call of frame, on top of the stack after kdf_sync if needed; NULL: unknown. */
static inline struct kdf_call *kdf_current(struct kdf_task *t, void *frame)
{
	struct kdf_call *c = kdf_top();

	if (c && c->frame == frame)
		return c;
	kdf_sync(t, frame, 1);
	c = kdf_top();
	return c && c->frame == frame && frame ? c : NULL;
}

/* The exit record of c (NULL: an orphan, call id 0), popping it; value is borrowed. */
static void kdf_exit(struct kdf_task *t, struct kdf_call *c, uint64_t pc, unsigned arg_idx,
		       PyObject *value)
{
	PyObject *held = NULL;
	uint64_t id = 0;

	if (c) {
		id = c->id;
		held = c->held;
		kdf_calls.depth--;
	}
	kdf_write(t, KDF_TYPE_RETURN, pc, arg_idx, id, value);
	Py_XDECREF(held);
}

static PyObject *kdf_entry(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_call *top;
	uint64_t pc, id;
	Py_ssize_t i, n;
	void *frame;
	int gen = 0;

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
	frame = kdf_here();
	if (frame) {
		top = kdf_top();
		if (!top || top->frame != kdf_back(frame))
			kdf_sync(t, frame, 0);
		gen = kdf_is_gen(frame);
		if (gen && kdf_any_suspended()) {
			uint64_t stale_id, stale_pc; /* a frame address used again */
			PyObject *stale_held = NULL;

			kdf_map_take(frame, &stale_id, &stale_pc, &stale_held);
			Py_XDECREF(stale_held);
		}
	}
	id = ++kdf_next_id;
	kdf_push(frame, id, pc, gen);
	if (n == 0) {
		kdf_write_word(t, KDF_TYPE_ENTRY, pc, KDF_ARG_NONE, id, 0);
	} else if (n > 1 && n <= KDF_BATCH && !kdf_hook) {
		kdf_write_batch(t, pc, id, args + 1, n);
	} else {
		for (i = 0; i < n; i++)
			if (kdf_write(t, KDF_TYPE_ENTRY, pc, (unsigned)i, id, args[1 + i]) < 0)
				break;
	}
	t->busy = 0;
	Py_RETURN_NONE;
}

/* Checks the (pc, value) arguments; 1: record (the guard is then taken), 0: don't, -1: error. */
static inline int kdf_begin(struct kdf_task *t, const char *call, PyObject *const *args,
			    Py_ssize_t nargs, Py_ssize_t want, uint64_t *pc)
{
	if (nargs != want) {
		PyErr_Format(PyExc_TypeError, "%s() takes %zd argument%s (pc%s), got %zd", call, want,
			     want == 1 ? "" : "s", want == 1 ? "" : ", value", nargs);
		return -1;
	}
	if (!t->area || t->busy)
		return 0;
	if (kdf_pc(call, args[0], pc) < 0)
		return -1;
	t->busy = 1;
	return 1;
}

static PyObject *kdf_ret(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	uint64_t pc;
	int on = kdf_begin(t, "ret", args, nargs, 2, &pc);

	if (on < 0)
		return NULL;
	if (on) {
		kdf_exit(t, kdf_current(t, kdf_here()), pc, KDF_ARG_RETURN, args[1]);
		t->busy = 0;
	}
	return Py_NewRef(args[1]);
}

static PyObject *kdf_yld(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_call *c;
	uint64_t pc;
	int on = kdf_begin(t, "yld", args, nargs, 2, &pc);

	if (on < 0)
		return NULL;
	if (on) {
		c = kdf_current(t, kdf_here());
		kdf_write(t, KDF_TYPE_RETURN, pc, KDF_ARG_YIELD, c ? c->id : 0, args[1]);
		if (c && c == kdf_top()) {
			/* the call leaves this thread's stack until it runs again */
			kdf_map_put(c);
			Py_CLEAR(c->held);
			kdf_calls.depth--;
		}
		t->busy = 0;
	}
	return Py_NewRef(args[1]);
}

static PyObject *kdf_resumed(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_call *top;
	uint64_t pc;
	void *frame;
	int on = kdf_begin(t, "resumed", args, nargs, 2, &pc);

	if (on < 0)
		return NULL;
	if (on) {
		/* nothing to write when the call never left the top of this thread's stack */
		frame = kdf_here();
		top = kdf_top();
		if (!top || top->frame != frame)
			kdf_sync(t, frame, 1);
		t->busy = 0;
	}
	return Py_NewRef(args[1]);
}

static PyObject *kdf_hold(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_call *c;
	uint64_t pc;
	int on = kdf_begin(t, "hold", args, nargs, 2, &pc);

	if (on < 0)
		return NULL;
	if (on) {
		c = kdf_current(t, kdf_here());
		if (c)
			Py_XSETREF(c->held, Py_NewRef(args[1]));
		t->busy = 0;
	}
	return Py_NewRef(args[1]);
}

static PyObject *kdf_done(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_calls *s = &kdf_calls;
	struct kdf_call *c;
	uint64_t pc;
	uint32_t i;
	void *frame;
	int on = kdf_begin(t, "done", args, nargs, 1, &pc);

	if (on < 0)
		return NULL;
	if (on) {
		frame = kdf_here();
		c = kdf_top();
		if (c && c->frame != frame && frame) {
			/* a generator resumed in a finally may sit above: only if frame is below */
			for (i = 0; i + 1 < s->depth && s->c[i].frame != frame; i++)
				;
			if (i + 1 < s->depth)
				kdf_sync(t, frame, 1);
			c = kdf_top();
		}
		if (c && c->frame == frame && c->held) {
			PyObject *value = c->held;

			c->held = NULL;
			kdf_exit(t, c, pc, KDF_ARG_RETURN, value);
			Py_DECREF(value);
		}
		t->busy = 0;
	}
	Py_RETURN_NONE;
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
		value = kdf_handled_exception();
		if (!value)
			value = Py_NewRef(Py_None);
	}
	t->busy = 1;
	kdf_exit(t, kdf_current(t, kdf_here()), pc, KDF_ARG_EXCEPTION, value);
	/* the handled exception (or the caller's argument) keeps it alive: no finalizer here */
	Py_DECREF(value);
	t->busy = 0;
	Py_RETURN_NONE;
}

/*
 * Whether compat.h's frame mirrors hold here: the current frame's code, read through
 * them, is the code of the frame the C API gives (once, at import; it materializes it).
 */
static void kdf_frames_check(void)
{
#ifdef KDF_FRAMES
	PyFrameObject *f = PyEval_GetFrame();
	PyCodeObject *code;
	void *mine = kdf_frame_current(), *p;
	int steps = 0;

	if (!f || !mine)
		return;
	code = PyFrame_GetCode(f);
	for (p = mine; p && steps < 100000; p = kdf_frame_back(p))
		steps++;
	kdf_frames_ok = kdf_frame_code(mine) == (PyObject *)code && !p;
	Py_DECREF(code);
#endif
}

/* ---------------------------------------------------------------------------
 * The task lifecycle: enable, disable, a thread's end, fork.
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
		kdf_calls_clear();
	}
	if (clear_owner) {
		__atomic_compare_exchange_n(&h->hdr[KDF_HDR_OWNER / 8], &want, 0, 0, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
		kdf_active--;
		if (!kdf_active)
			kdf_map_clear();
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

/*
 * A live holder of mapping, its header checked and its owner word taken for the calling
 * thread (call names the entry point in errors); NULL with an error set.
 */
static kdf_holder *kdf_holder_open(const char *call, PyObject *mapping)
{
	kdf_holder *h;
	uint64_t words, owner = 0;
	Py_buffer *view;

	if (!PyObject_CheckBuffer(mapping)) {
		PyErr_Format(PyExc_TypeError,
			     "%s(): mapping must be a writable buffer (an mmap), not %.100s", call,
			     Py_TYPE(mapping)->tp_name);
		return NULL;
	}
	h = PyObject_New(kdf_holder, &kdf_holder_type);
	if (!h)
		return NULL;
	h->live = 0;
	view = &h->view;
	if (PyObject_GetBuffer(mapping, view, PyBUF_WRITABLE) < 0) {
		Py_DECREF(h);
		PyErr_Format(PyExc_TypeError, "%s(): mapping must be writable", call);
		return NULL;
	}
	h->live = 1;
	h->hdr = view->buf;
	h->pid = getpid();
	h->tid = kdf_gettid();
	if (view->len < KDF_FILE_HEADER_SIZE || h->hdr[0] != KDF_FILE_MAGIC_LE64) {
		PyErr_Format(PyExc_ValueError, "%s(): mapping does not start with a kcovdf header page",
			     call);
		goto fail;
	}
	words = h->hdr[KDF_HDR_WORDS / 8];
	if (words < KDF_MIN_WORDS || words > (uint64_t)(view->len - KDF_FILE_HEADER_SIZE) / 8) {
		PyErr_Format(PyExc_ValueError, "%s(): header says %llu words, mapping holds %lld", call,
			     (unsigned long long)words,
			     (long long)((view->len - KDF_FILE_HEADER_SIZE) / 8));
		goto fail;
	}
	if ((uintptr_t)view->buf & 7) {
		PyErr_Format(PyExc_ValueError, "%s(): mapping is not 8-byte aligned", call);
		goto fail;
	}
	if (!__atomic_compare_exchange_n(&h->hdr[KDF_HDR_OWNER / 8], &owner, h->tid, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		kdf_oserror(EBUSY, "%s(): device already enabled by task %llu", call,
			    (unsigned long long)owner);
		goto fail;
	}
	return h;
fail:
	h->live = 0;
	PyBuffer_Release(view);
	Py_DECREF(h);
	return NULL;
}

/* Point the calling thread's task at h's buffer (seq, calls and guard are the caller's). */
static void kdf_task_use(kdf_holder *h)
{
	kdf_task.area = (uint64_t *)((char *)h->view.buf + KDF_FILE_HEADER_SIZE);
	kdf_task.size = h->hdr[KDF_HDR_WORDS / 8];
	kdf_task.hdr = h->hdr;
	kdf_task.holder = (PyObject *)h;
}

static PyObject *kdf_enable(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *tdict;
	kdf_holder *h;

	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "enable() takes 2 arguments (mapping, table_fd), got %zd",
			     nargs);
		return NULL;
	}
	/* table_fd is the twin's lock file; the C core needs none (CAS on buf[0]) */
	if (!PyLong_Check(args[1])) {
		PyErr_Format(PyExc_TypeError, "enable(): table_fd must be an int, not %.100s",
			     Py_TYPE(args[1])->tp_name);
		return NULL;
	}
	if (kdf_task.area)
		return kdf_oserror(EBUSY, "enable(): this thread is already enabled on a device");
	tdict = PyThreadState_GetDict();
	if (!tdict) {
		PyErr_SetString(PyExc_RuntimeError, "enable(): no thread state dict");
		return NULL;
	}
	if (!(h = kdf_holder_open("enable", args[0])))
		return NULL;
	kdf_active++;
	if (PyDict_SetItem(tdict, s_task_key, (PyObject *)h) < 0) {
		kdf_holder_release(h, 1);
		Py_DECREF(h);
		return NULL;
	}
	kdf_task_use(h);
	kdf_task.seq = 0;
	Py_DECREF(h); /* the thread dict holds it */
	Py_RETURN_NONE;
}

/*
 * Move the enabled calling thread to the buffer of mapping, as one task: its sequence,
 * its calls and the guard go on, the old buffer's owner word goes back to 0. For the
 * full hook, which gives a task its next segment (docs/abi.md §3.2).
 */
static PyObject *kdf_resegment(PyObject *mod, PyObject *mapping)
{
	kdf_holder *old = (kdf_holder *)kdf_task.holder, *h;
	PyObject *tdict = PyThreadState_GetDict();
	uint64_t want;

	if (!kdf_task.area || !old || !tdict)
		return kdf_oserror(EINVAL, "resegment(): this thread is not enabled on a device");
	if (old->view.obj == mapping)
		return kdf_oserror(EINVAL, "resegment(): the thread is already on this mapping");
	if (!(h = kdf_holder_open("resegment", mapping)))
		return NULL;
	/* let go of the old buffer as disable() would, but keep the task */
	want = old->tid;
	__atomic_compare_exchange_n(&old->hdr[KDF_HDR_OWNER / 8], &want, 0, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_RELAXED);
	old->live = 0;
	PyBuffer_Release(&old->view);
	kdf_task_use(h);
	if (PyDict_SetItem(tdict, s_task_key, (PyObject *)h) < 0) {
		/* cannot keep the holder: the thread ends up disabled, as after disable() */
		kdf_holder_release(h, 1);
		Py_DECREF(h);
		return NULL;
	}
	Py_DECREF(h);
	Py_RETURN_NONE;
}

/*
 * set_*_hook(hook): *slot = hook, a callable, or NULL for None. A running hook holds its
 * own reference (kdf_call_hook, kdf_next_buffer, kdf_run_exit_hook).
 */
static PyObject *kdf_set_hook(const char *call, PyObject **slot, PyObject *hook)
{
	if (hook != Py_None && !PyCallable_Check(hook)) {
		PyErr_Format(PyExc_TypeError, "%s(): expected a callable or None, not %.100s", call,
			     Py_TYPE(hook)->tp_name);
		return NULL;
	}
	Py_XSETREF(*slot, hook == Py_None ? NULL : Py_NewRef(hook));
	Py_RETURN_NONE;
}

static PyObject *kdf_set_full_hook(PyObject *mod, PyObject *hook)
{
	return kdf_set_hook("set_full_hook", &kdf_full_hook, hook);
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
	kdf_calls_clear();
	kdf_map_clear();
	kdf_active = 0; /* only the forking thread exists in the child */
	Py_RETURN_NONE;
}

static PyObject *kdf_set_exit_hook(PyObject *mod, PyObject *hook)
{
	return kdf_set_hook("set_exit_hook", &kdf_exit_hook, hook);
}

/* ---------------------------------------------------------------------------
 * The control entry points: state, values, the type table, the hooks.
 */

static PyObject *kdf_active_py(PyObject *mod, PyObject *unused)
{
	return PyLong_FromLong(kdf_active);
}

static PyObject *kdf_in_record(PyObject *mod, PyObject *unused)
{
	return PyBool_FromLong(kdf_task.busy);
}

static PyObject *kdf_words_list(const struct kdf_value *v)
{
	PyObject *list = PyList_New(v->n);
	int i;

	for (i = 0; list && i < v->n; i++) {
		PyObject *w = PyLong_FromUnsignedLongLong(v->w[i]);

		if (!w) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, w);
	}
	return list;
}

static PyObject *kdf_encode_py(PyObject *mod, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"obj", "redacted", NULL};
	struct kdf_value v;
	PyObject *obj;
	int redacted = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:encode", kwlist, &obj, &redacted))
		return NULL;
	kdf_encode(obj, redacted, 0, &v);
	return kdf_words_list(&v);
}

/* Test seam: the general encoder alone, the layout cache neither used nor filled. */
static PyObject *kdf_encode_general_py(PyObject *mod, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"obj", "redacted", NULL};
	struct kdf_value v;
	PyObject *obj;
	int redacted = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:_encode_general", kwlist, &obj, &redacted))
		return NULL;
	kdf_encode_value(obj, redacted, 0, 0, &v);
	return kdf_words_list(&v);
}

/* Test seam: the layout cache alone; None when it does not serve obj. */
static PyObject *kdf_encode_cached_py(PyObject *mod, PyObject *obj)
{
	struct kdf_value v;

	if (!kdf_encode_from_layout(obj, &v))
		Py_RETURN_NONE;
	return kdf_words_list(&v);
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

static PyObject *kdf_add_table(PyObject *mod, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {"fd", "replay", NULL};
	PyObject *arg;
	int fd, replay = 1;

	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:add_table", kwlist, &arg, &replay))
		return NULL;
	if (kdf_fd_arg("add_table", arg, &fd) < 0)
		return NULL;
	if (fcntl(fd, F_GETFL) < 0)
		return kdf_oserror(errno, "add_table(): fd %d is not open", fd);
	if (kdf_table_add(fd, replay) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *kdf_remove_table(PyObject *mod, PyObject *arg)
{
	int fd;

	if (kdf_fd_arg("remove_table", arg, &fd) < 0)
		return NULL;
	kdf_table_remove(fd);
	Py_RETURN_NONE;
}

static PyObject *kdf_set_record_hook(PyObject *mod, PyObject *hook)
{
	return kdf_set_hook("set_record_hook", &kdf_hook, hook);
}

/*
 * func.__code__ = code, for the Switch's patching (kcovdf/instrument/switch.py).
 * Through the setter, so audit hooks and function watchers see it; then the function
 * keeps a version its call sites can specialize for (kdf_function_keep_version).
 */
static PyObject *kdf_set_code(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2 || !PyFunction_Check(args[0]) || !PyCode_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "set_code() takes a function and a code object");
		return NULL;
	}
	if (PyObject_SetAttrString(args[0], "__code__", args[1]) < 0)
		return NULL;
	kdf_function_keep_version(args[0], args[1]);
	Py_RETURN_NONE;
}

static PyObject *kdf_set_redact_py(PyObject *mod, PyObject *patterns)
{
	if (kdf_set_redact(patterns) < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* Test seam: whether calls are named by their frames (compat.h's frame mirrors hold). */
static PyObject *kdf_frames_py(PyObject *mod, PyObject *unused)
{
	return PyBool_FromLong(kdf_frames_ok);
}

/* Test seam: whether instance attributes and dicts are read in place (layout.c). */
static PyObject *kdf_layout_py(PyObject *mod, PyObject *unused)
{
	return PyBool_FromLong(kdf_mirrors_in_use());
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
	 "entry(pc, *args)\n--\n\nStart a call: one entry record per argument, arg_idx = its "
	 "position (one ARG_NONE record without arguments), all with the new call id."},
	{"ret", (PyCFunction)(void (*)(void))kdf_ret, METH_FASTCALL,
	 "ret(pc, value)\n--\n\nThe return record (arg_idx 0) of the calling frame's call; "
	 "returns value."},
	{"exc", (PyCFunction)(void (*)(void))kdf_exc, METH_FASTCALL,
	 "exc(pc[, exc])\n--\n\nOne return record (arg_idx 0xFF) for exc, by default the "
	 "exception being handled."},
	{"yld", (PyCFunction)(void (*)(void))kdf_yld, METH_FASTCALL,
	 "yld(pc, value)\n--\n\nOne return record (arg_idx 0xFE) for a yielded value; returns value."},
	{"resumed", (PyCFunction)(void (*)(void))kdf_resumed, METH_FASTCALL,
	 "resumed(pc, value)\n--\n\nThe calling frame runs again after a yield or await; returns "
	 "value."},
	{"hold", (PyCFunction)(void (*)(void))kdf_hold, METH_FASTCALL,
	 "hold(pc, value)\n--\n\nKeep value as the pending return of the calling frame's call; "
	 "returns value."},
	{"done", (PyCFunction)(void (*)(void))kdf_done, METH_FASTCALL,
	 "done(pc)\n--\n\nWrite the held return of the calling frame's call (no-op without one)."},
	{"enable", (PyCFunction)(void (*)(void))kdf_enable, METH_FASTCALL,
	 "enable(mapping, table_fd)\n--\n\nBind the calling thread to the buffer of mapping."},
	{"disable", kdf_disable, METH_O,
	 "disable(mapping)\n--\n\nUnbind the calling thread from mapping."},
	{"after_fork_child", kdf_after_fork_child, METH_NOARGS,
	 "after_fork_child()\n--\n\nIn a fork child: clear the calling thread's state."},
	{"set_exit_hook", kdf_set_exit_hook, METH_O,
	 "set_exit_hook(hook)\n--\n\nCall hook() from the main thread after a thread that ended "
	 "while enabled is released (None: stop)."},
	{"active", kdf_active_py, METH_NOARGS,
	 "active()\n--\n\nNumber of threads of this process currently enabled."},
	{"in_record", kdf_in_record, METH_NOARGS,
	 "in_record()\n--\n\nWhether a record is being made on the calling thread (the "
	 "re-entrancy guard is held)."},
	{"encode", (PyCFunction)(void (*)(void))kdf_encode_py, METH_VARARGS | METH_KEYWORDS,
	 "encode(obj, redacted=False)\n--\n\nThe value words of obj (shape, layout, fields)."},
	{"emit", (PyCFunction)(void (*)(void))kdf_emit, METH_VARARGS | METH_KEYWORDS,
	 "emit(line, remember=True)\n--\n\nAppend line and a newline to every table fd."},
	{"add_table", (PyCFunction)(void (*)(void))kdf_add_table, METH_VARARGS | METH_KEYWORDS,
	 "add_table(fd, replay=True)\n--\n\nRegister a table fd and (replay) write every "
	 "remembered line into it."},
	{"resegment", kdf_resegment, METH_O,
	 "resegment(mapping)\n--\n\nMove the enabled calling thread to the buffer of mapping, "
	 "keeping its sequence and calls (a task's next segment)."},
	{"set_full_hook", kdf_set_full_hook, METH_O,
	 "set_full_hook(hook)\n--\n\nCall hook() when a record does not fit the calling "
	 "thread's buffer, with the guard held; it may resegment() (None: stop)."},
	{"remove_table", kdf_remove_table, METH_O,
	 "remove_table(fd)\n--\n\nForget a table fd (no error if it was not registered)."},
	{"set_record_hook", kdf_set_record_hook, METH_O,
	 "set_record_hook(hook)\n--\n\nTest seam: call hook() in the middle of every record, "
	 "with the re-entrancy guard held (None: stop)."},
	{"set_redact", kdf_set_redact_py, METH_O,
	 "set_redact(patterns)\n--\n\nWithhold, at every depth, the values whose names (object "
	 "fields, namedtuple fields, str dict keys) match one of the fnmatch patterns."},
	{"set_code", (PyCFunction)(void (*)(void))kdf_set_code, METH_FASTCALL,
	 "set_code(func, code)\n--\n\nfunc.__code__ = code, keeping the function's call sites "
	 "specializable (3.13)."},
	{"_encode_general", (PyCFunction)(void (*)(void))kdf_encode_general_py,
	 METH_VARARGS | METH_KEYWORDS,
	 "_encode_general(obj, redacted=False)\n--\n\nTest seam: encode() through the general "
	 "encoder alone, without the layout cache."},
	{"_encode_cached", kdf_encode_cached_py, METH_O,
	 "_encode_cached(obj)\n--\n\nTest seam: encode() through the layout cache alone (no type "
	 "table lines); None when the cache does not serve obj."},
	{"_frames", kdf_frames_py, METH_NOARGS,
	 "_frames()\n--\n\nTest seam: whether calls are named by their frames (else paired by "
	 "stack position alone)."},
	{"_layout", kdf_layout_py, METH_NOARGS,
	 "_layout()\n--\n\nTest seam: whether instance attributes are read where CPython keeps "
	 "them, by key index or entry (else through the C API)."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef kdf_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "kcovdf._core._recorder",
	.m_doc = "The C record writers of kcovdf (docs/core.md §1).",
	.m_size = -1,
	.m_methods = kdf_methods,
};

PyMODINIT_FUNC PyInit__recorder(void)
{
	PyObject *m;

	if (kdf_encode_init() < 0 || kdf_types_init() < 0 || kdf_layout_init() < 0 ||
	    kdf_intern(&s_task_key, "kcovdf._core._recorder.task") < 0)
		return NULL;
	if (PyType_Ready(&kdf_holder_type) < 0 || PyType_Ready(&kdf_redacted_type) < 0)
		return NULL;
	if (!kdf_redacted && !(kdf_redacted = PyObject_New(PyObject, &kdf_redacted_type)))
		return NULL;
	kdf_frames_check();
	kdf_native_init();
	m = PyModule_Create(&kdf_module);
	if (!m)
		return NULL;
	if (PyModule_AddObjectRef(m, "REDACTED", kdf_redacted) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
