// SPDX-License-Identifier: GPL-2.0
/*
 * Native records: the kernel's callbacks from C and Rust code instrumented by kcovdf's
 * LLVM pass (kcovdf/native/), written into the calling thread's task like the records of
 * Python calls, so that both interleave in one stream, in seq order. Part of kdf.h's
 * unity build, after record.c, whose task, reservation and guard it uses.
 *
 * Instrumented code links kcovdf/native/runtime.c, which finds this file's API table
 * (kcovdf_native_api, the one symbol of the recorder meant to be looked up) and calls
 * kdf_native_args / kdf_native_ret for every callback while a thread records.
 *
 * The GIL: ctypes releases it around a foreign call, so these callbacks run without it
 * and touch no Python object. They use only the calling thread's own state (kdf_task,
 * kdf_native) and the shared words record.c changes atomically (buf[0], drops). Two
 * paths need the GIL and take it (PyGILState_Ensure): a record that does not fit while a
 * full hook is set (the hook moves the task to its next segment), and emit (type and
 * symbol lines of a library, once, when it is loaded).
 *
 * Records (docs/native.md, "Records"): format 2 framing, meta's pointer the call id.
 * Native call ids have bit 47 set (Python's count from 1 under the GIL), taken by each
 * thread in blocks, so no two calls of a process share one. Value words are kcovdf's
 * encoding (docs/abi.md §2): a scalar is SCALAR with its native class ("native.u64"), a
 * decomposed struct OBJECT with its fields; the pass computes the shape and layout words.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/uio.h>

#include "../native/runtime/kcovdf_api.h"

#define KDF_NATIVE_ID_BIT (1ull << 47)
#define KDF_NATIVE_ID_BLOCK 4096
#define KDF_NATIVE_INDIRECT 1ull /* desc[2]: the argument points to the value */
#define KDF_NATIVE_MAX_DEPTH (1u << 20)

/* One thread's native calls: the ids of the calls running, innermost last. */
struct kdf_native_calls {
	uint64_t *ids;
	uint32_t depth, cap;
	uint64_t next, end; /* the thread's block of call ids */
	uintptr_t stack_top; /* the end of this thread's stack (0: not known yet, 1: unknown) */
};

static _Thread_local struct kdf_native_calls kdf_native __attribute__((tls_model("initial-exec")));
static uint64_t kdf_native_ids; /* the next block (atomic) */
static pid_t kdf_native_pid;	/* this process, for process_vm_readv (set again in a fork child) */

/* The shape ids of the classes the runtime names without a table (docs/native.md). */
static uint64_t kdf_native_shape_u[9], kdf_native_shape_void;

static __attribute__((noinline, cold)) uint64_t kdf_native_id_block(struct kdf_native_calls *c)
{
	c->next = __atomic_fetch_add(&kdf_native_ids, KDF_NATIVE_ID_BLOCK, __ATOMIC_RELAXED);
	c->end = c->next + KDF_NATIVE_ID_BLOCK;
	return KDF_NATIVE_ID_BIT | (c->next++ & (KDF_NATIVE_ID_BIT - 1));
}

static __attribute__((noinline, cold)) void kdf_native_grow(struct kdf_native_calls *c, uint64_t id)
{
	uint32_t cap = c->cap ? 2 * c->cap : 64;
	uint64_t *ids;

	if (cap > KDF_NATIVE_MAX_DEPTH || !(ids = realloc(c->ids, cap * sizeof(*ids))))
		return; /* too deep (or no memory): the call goes untracked, its exit is an orphan */
	c->ids = ids;
	c->cap = cap;
	c->ids[c->depth++] = id;
}

static inline uint64_t kdf_native_push(void)
{
	struct kdf_native_calls *c = &kdf_native;
	uint64_t id = c->next < c->end ? KDF_NATIVE_ID_BIT | (c->next++ & (KDF_NATIVE_ID_BIT - 1))
				       : kdf_native_id_block(c);

	if (c->depth < c->cap)
		c->ids[c->depth++] = id;
	else
		kdf_native_grow(c, id);
	return id;
}

/*
 * Reserve n words without the GIL. Full: with a full hook set, take the GIL and let
 * kdf_reserve run it (it may move the task to its next segment); else count the drop.
 */
static __attribute__((noinline, cold)) uint64_t *kdf_native_full(struct kdf_task *t, uint64_t n)
{
	PyGILState_STATE g;
	uint64_t *w;

	if (!kdf_full_hook || !Py_IsInitialized()) {
		__atomic_fetch_add(&t->hdr[KDF_HDR_DROPS / 8], 1, __ATOMIC_RELAXED);
		return NULL;
	}
	g = PyGILState_Ensure();
	w = t->area ? kdf_reserve(t, n, 0) : NULL;
	PyGILState_Release(g);
	return w;
}

static __attribute__((noinline, cold)) uintptr_t kdf_native_stack_top(struct kdf_native_calls *c)
{
	pthread_attr_t attr;
	void *lo;
	size_t size;

	c->stack_top = 1;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &lo, &size) == 0)
			c->stack_top = (uintptr_t)lo + size;
		pthread_attr_destroy(&attr);
	}
	return c->stack_top;
}

/*
 * Copy n bytes at the program's address src without faulting: 0, or -1 if unreadable.
 * Between this frame and the top of the thread's stack every byte is mapped: a plain copy.
 * Anywhere else the kernel copies it (process_vm_readv on this process), which fails
 * instead of faulting; it costs a system call (benchmarks/native.py measures it).
 */
static int kdf_nofault(void *dst, uintptr_t src, size_t n)
{
	struct iovec local = {dst, n}, remote = {(void *)src, n};
	struct kdf_native_calls *c = &kdf_native;
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t top = c->stack_top ? c->stack_top : kdf_native_stack_top(c);

	/* NULL, the first page, and the kernel's ERR_PTR range (the last 4095 addresses) */
	if (src < 4096 || src > UINTPTR_MAX - 4095 - n)
		return -1;
	if (src >= sp && top > 1 && src + n <= top) {
		memcpy(dst, (const void *)src, n);
		return 0;
	}
	return process_vm_readv(kdf_native_pid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* One field word from the bytes at p, as the field descriptor f says (the pass's layout). */
static inline uint64_t kdf_native_field(const unsigned char *p, uint64_t f)
{
	unsigned size = f & 0xFFF, kind = (f >> 28) & 0xF;
	uint64_t v = 0;

	memcpy(&v, p, size > 8 ? 8 : size);
	if (f & (1ull << 26)) { /* a bitfield: shift and width */
		unsigned shift = (f >> 20) & 63, width = (f >> 12) & 127;

		v = (v >> shift) & (width >= 64 ? ~0ull : (1ull << width) - 1);
		if ((f & (1ull << 27)) && width < 64 && (v >> (width - 1)) & 1)
			v |= ~0ull << width;
		return v;
	}
	if (kind == KDF_KIND_FLOAT && size == 4) {
		float x;
		double d;

		memcpy(&x, p, 4);
		d = x;
		memcpy(&v, &d, 8);
	} else if ((f & (1ull << 27)) && size < 8 && (v >> (8 * size - 1)) & 1) {
		v |= ~0ull << (8 * size);
	}
	return v;
}

/*
 * The value words of one argument or return value into w (2 + fields): shape, layout,
 * then the scalar or the struct's fields. desc: the pass's table (NULL: a raw scalar).
 */
static inline int kdf_native_value(uint32_t size, const void *ptr, const uint64_t *desc,
				   uint32_t nf, uint64_t *w)
{
	const uint64_t *fd;
	uint64_t lay;
	uint32_t j;

	if (!desc) {
		w[0] = kdf_native_shape_u[size > 8 ? 8 : size];
		w[1] = 1ull << 56 | KDF_KIND_INT;
		w[2] = 0;
		if (!ptr) {
			w[1] = 1ull << 56 | KDF_KIND_FAULT;
			w[2] = KDF_FAULT;
		} else {
			memcpy(&w[2], ptr, size > 8 ? 8 : size);
		}
		return 3;
	}
	w[0] = desc[0];
	lay = desc[1];
	fd = &desc[3];
	if (nf == 0) { /* a scalar, spilled by the pass: its address is always readable */
		w[2] = ptr ? kdf_native_field(ptr, fd[0]) : KDF_FAULT;
		if (!ptr)
			lay = (lay & ~0xFull) | KDF_KIND_FAULT;
		w[1] = lay;
		return 3;
	}
	if (nf > KDF_MAX_FIELDS)
		nf = KDF_MAX_FIELDS;
	if (!(desc[2] & KDF_NATIVE_INDIRECT)) { /* a struct spilled by the pass */
		for (j = 0; j < nf; j++)
			w[2 + j] = kdf_native_field((const unsigned char *)ptr + (fd[j] >> 32), fd[j]);
		w[1] = lay;
		return 2 + (int)nf;
	}
	/* behind a pointer of the program: read it without faulting, whole if it is small */
	{
		unsigned char buf[256];
		uint64_t lo = UINT64_MAX, hi = 0, f;
		int whole;

		for (j = 0; j < nf; j++) {
			f = fd[j];
			lo = (f >> 32) < lo ? (f >> 32) : lo;
			hi = (f >> 32) + (f & 0xFFF) > hi ? (f >> 32) + (f & 0xFFF) : hi;
		}
		whole = hi - lo <= sizeof(buf) && kdf_nofault(buf, (uintptr_t)ptr + lo, hi - lo) == 0;
		for (j = 0; j < nf; j++) {
			unsigned char one[8];
			uint64_t off = fd[j] >> 32, n = fd[j] & 0xFFF;

			f = fd[j];
			if (whole) {
				w[2 + j] = kdf_native_field(buf + (off - lo), f);
			} else if (kdf_nofault(one, (uintptr_t)ptr + off, n > 8 ? 8 : n) == 0) {
				w[2 + j] = kdf_native_field(one, f);
			} else {
				w[2 + j] = KDF_FAULT;
				lay = (lay & ~(0xFull << (4 * j))) | (uint64_t)KDF_KIND_FAULT << (4 * j);
			}
		}
		w[1] = lay;
		return 2 + (int)nf;
	}
}

/* Append one record of nv value words (the guard is held by the caller). */
static inline void kdf_native_append(struct kdf_task *t, unsigned rtype, uint64_t pc,
				     unsigned arg_idx, uint64_t id, const uint64_t *v, int nv)
{
	uint64_t *w;

	t->seq = (t->seq + 1) & KDF_SEQ_MASK;
	w = kdf_reserve(t, KDF_HEADER_WORDS + nv, 1);
	if (!w && !(w = kdf_native_full(t, KDF_HEADER_WORDS + nv)))
		return;
	kdf_header(w, rtype, t->seq, nv, pc, arg_idx, id);
	memcpy(&w[3], v, sizeof(uint64_t) * nv);
}

/* __sanitizer_cov_trace_args: one entry record; arg 0 (or ARG_NONE) starts the call. */
static void kdf_native_args(uint64_t pc, uint32_t arg_idx, uint32_t size, const void *ptr,
			    const uint64_t *desc, uint32_t nf)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_native_calls *c = &kdf_native;
	uint64_t v[KDF_MAX_VALUES], id;
	int nv;

	if (!t->area || t->busy)
		return;
	t->busy = 1;
	if (arg_idx == 0 || arg_idx == KDF_ARG_NONE)
		id = kdf_native_push();
	else
		id = c->depth ? c->ids[c->depth - 1] : 0;
	if (arg_idx == KDF_ARG_NONE) {
		v[0] = 0;
		nv = 1;
	} else {
		nv = kdf_native_value(size, ptr, desc, nf, v);
	}
	kdf_native_append(t, KDF_TYPE_ENTRY, pc, arg_idx > KDF_ARG_MAX_PARAM && arg_idx != KDF_ARG_NONE
						     ? KDF_ARG_MAX_PARAM : arg_idx, id, v, nv);
	t->busy = 0;
}

/* __sanitizer_cov_trace_ret: the return record of the innermost native call; size 0: void. */
static void kdf_native_ret(uint64_t pc, uint32_t size, const void *ptr, const uint64_t *desc,
			   uint32_t nf)
{
	struct kdf_task *t = &kdf_task;
	struct kdf_native_calls *c = &kdf_native;
	uint64_t v[KDF_MAX_VALUES], id;
	int nv;

	if (!t->area || t->busy)
		return;
	t->busy = 1;
	id = c->depth ? c->ids[--c->depth] : 0;
	if (size == 0 && !ptr) {
		v[0] = kdf_native_shape_void;
		v[1] = 1ull << 56 | KDF_KIND_NONE;
		v[2] = 0;
		nv = 3;
	} else {
		nv = kdf_native_value(size, ptr, desc, nf, v);
	}
	kdf_native_append(t, KDF_TYPE_RETURN, pc, KDF_ARG_RETURN, id, v, nv);
	t->busy = 0;
}

/* A table line (type, sym, info) for every trace of this process, remembered for later ones. */
static void kdf_native_emit(const char *line, size_t n)
{
	PyGILState_STATE g;

	if (!Py_IsInitialized())
		return;
	g = PyGILState_Ensure();
	if (kdf_emit_line(line, n, 1) < 0)
		PyErr_Clear();
	PyGILState_Release(g);
}

/* The table runtime.c looks up (native/runtime/kcovdf_api.h). */
__attribute__((visibility("default"))) const struct kcovdf_api kcovdf_native_api = {
	KCOVDF_API_VERSION, sizeof(struct kcovdf_api), &kdf_active, kdf_native_args, kdf_native_ret,
	kdf_native_emit, kdf_nofault,
};

/* Hand the API to an instrumented object loaded before the recorder (its __kcovdf_attach). */
static int kdf_native_attach_one(struct dl_phdr_info *info, size_t sz, void *unused)
{
	void *h, (*attach)(const struct kcovdf_api *);

	if (!info->dlpi_name || !info->dlpi_name[0])
		h = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
	else
		h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	*(void **)&attach = dlsym(h, "__kcovdf_attach");
	if (attach)
		attach(&kcovdf_native_api);
	dlclose(h);
	return 0;
}

static void kdf_native_forked(void)
{
	kdf_native_pid = getpid();
}

static void kdf_native_init(void)
{
	char name[32];
	unsigned i;

	for (i = 0; i <= 8; i++) {
		snprintf(name, sizeof(name), "native.u%u", i * 8);
		kdf_native_shape_u[i] = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)name, strlen(name));
	}
	kdf_native_shape_void = kdf_fnv(KDF_FNV_OFFSET, (const unsigned char *)"native.void", 11);
	kdf_native_pid = getpid();
	pthread_atfork(NULL, NULL, kdf_native_forked);
	dl_iterate_phdr(kdf_native_attach_one, NULL);
}
