// SPDX-License-Identifier: GPL-2.0
/*
 * kcovdf's user-space /sys/kernel/debug/kcov_dataflow for native programs without Python:
 * an LD_PRELOAD shim (libkcovdf_device.so, built by kcovdf.native.toolchain.device_shim).
 *
 * A C program built with kcovdf cc and run with LD_PRELOAD=libkcovdf_device.so opens the
 * device path, INIT_TRACEs, mmaps, ENABLEs and DISABLEs exactly as against the kernel (the
 * seed's data-collection example, unmodified but for its trigger), and the instrumented
 * functions it calls while enabled write records in the kernel's own format: raw value
 * words (one scalar, or one word per struct field, 0xBADADD85 where unreadable), meta's
 * pointer the argument's address, no entry for a function without parameters and no
 * return for a void one. The runtime linked into the program finds this file's
 * kcovdf_native_api (the recorder's table, same layout) in the global scope.
 *
 * State machine of a device, as the kernel's: open -> INIT_TRACE(words) -> mmap ->
 * ENABLE (binds the calling thread) -> DISABLE (by that thread) -> close. Errors: INIT twice
 * EBUSY, size < 2 or > 16M words EINVAL, ENABLE without buffer EINVAL, ENABLE of a device
 * bound to another thread or by a thread enabled elsewhere EBUSY, DISABLE by another thread
 * EINVAL, an unknown request ENOTTY. The buffer is a memfd: the program's mmap of the fd
 * maps it as the kernel's vmalloc'd area would be, shared across fork.
 *
 * With KCOVDF_DEVICE_DUMP=PATH, DISABLE also writes the buffer's words to PATH (a raw
 * dump, 0600) and the instrumented functions' addresses to PATH.kallsyms, so that
 * `kcovdf view PATH --kallsyms PATH.kallsyms` names them as trigger-view does.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kcovdf_api.h"

#define DEVICE_PATH "/sys/kernel/debug/kcov_dataflow"
#define KCOV_DF_INIT_TRACE 0x80086401ul
#define KCOV_DF_ENABLE 0x6464ul
#define KCOV_DF_DISABLE 0x6465ul
#define MAX_DEVICES 64
#define MAX_WORDS (16ul << 20)
#define FAULT 0xBADADD85ull
#define ARG_NONE 0xFD

struct device {
	int fd;		 /* -1: free slot */
	uint64_t words;	 /* 0: no buffer yet */
	uint64_t *area;	 /* the shim's own mapping of the buffer */
	pid_t owner;	 /* the thread enabled on it, 0 if none */
};

static struct device devices[MAX_DEVICES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* protects devices[] and syms */
static long active;					  /* threads enabled (the pass's guard) */
static char *syms;					  /* kallsyms lines of the registered functions */
static size_t nsyms, capsyms;

static __thread struct device *current;
static __thread uint32_t seq;
static __thread int busy;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);

__attribute__((constructor)) static void init(void)
{
	int i;

	*(void **)&real_open = dlsym(RTLD_NEXT, "open");
	*(void **)&real_openat = dlsym(RTLD_NEXT, "openat");
	*(void **)&real_ioctl = dlsym(RTLD_NEXT, "ioctl");
	*(void **)&real_close = dlsym(RTLD_NEXT, "close");
	for (i = 0; i < MAX_DEVICES; i++)
		devices[i].fd = -1;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static struct device *find(int fd)
{
	int i;

	for (i = 0; fd >= 0 && i < MAX_DEVICES; i++)
		if (devices[i].fd == fd)
			return &devices[i];
	return NULL;
}

static int open_device(void)
{
	int fd = memfd_create("kcov_dataflow", 0), i;

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_DEVICES && devices[i].fd != -1; i++)
		;
	if (i == MAX_DEVICES) {
		pthread_mutex_unlock(&lock);
		real_close(fd);
		errno = EMFILE;
		return -1;
	}
	devices[i] = (struct device){fd, 0, NULL, 0};
	pthread_mutex_unlock(&lock);
	return fd;
}

static int is_device(const char *path)
{
	return path && !strcmp(path, DEVICE_PATH) && !getenv("KCOVDF_REAL_DEVICE");
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	if (is_device(path))
		return open_device();
	va_start(ap, flags);
	mode = va_arg(ap, int);
	va_end(ap);
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	if (is_device(path))
		return open_device();
	va_start(ap, flags);
	mode = va_arg(ap, int);
	va_end(ap);
	return real_openat(dirfd, path, flags, mode);
}

int close(int fd)
{
	struct device *d;

	pthread_mutex_lock(&lock);
	d = find(fd);
	if (d) {
		if (d->area)
			munmap(d->area, d->words * 8);
		if (d->owner) {
			active--;
			if (current == d)
				current = NULL;
		}
		d->fd = -1;
	}
	pthread_mutex_unlock(&lock);
	return real_close(fd);
}

/* Write the buffer (raw words) and the symbols to $KCOVDF_DEVICE_DUMP (0600). */
static void dump(struct device *d)
{
	const char *path = getenv("KCOVDF_DEVICE_DUMP");
	char ks[4096];
	uint64_t n;
	int fd;

	if (!path || !*path)
		return;
	n = __atomic_load_n(&d->area[0], __ATOMIC_ACQUIRE);
	if (n > d->words - 1)
		n = d->words - 1;
	fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (write(fd, d->area, (n + 1) * 8) < 0)
			perror("kcovdf device: dump");
		real_close(fd);
	}
	snprintf(ks, sizeof(ks), "%s.kallsyms", path);
	fd = real_open(ks, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (nsyms && write(fd, syms, nsyms) < 0)
			perror("kcovdf device: kallsyms");
		real_close(fd);
	}
}

static int device_ioctl(struct device *d, unsigned long req, unsigned long arg)
{
	pid_t me = gettid_();

	switch (req) {
	case KCOV_DF_INIT_TRACE:
		if (d->words)
			return errno = EBUSY, -1;
		if (arg < 2 || arg > MAX_WORDS)
			return errno = EINVAL, -1;
		if (ftruncate(d->fd, (off_t)(arg * 8)) < 0)
			return errno = ENOMEM, -1;
		d->area = mmap(NULL, arg * 8, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
		if (d->area == MAP_FAILED) {
			d->area = NULL;
			return errno = ENOMEM, -1;
		}
		d->words = arg;
		return 0;
	case KCOV_DF_ENABLE:
		if (!d->words)
			return errno = EINVAL, -1;
		if ((d->owner && d->owner != me) || (current && current != d))
			return errno = EBUSY, -1;
		if (!d->owner) {
			d->owner = me;
			active++;
		}
		current = d;
		seq = 0;
		return 0;
	case KCOV_DF_DISABLE:
		if (d->owner != me)
			return errno = EINVAL, -1;
		d->owner = 0;
		active--;
		current = NULL;
		dump(d);
		return 0;
	default:
		return errno = ENOTTY, -1;
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	struct device *d;
	unsigned long arg;
	va_list ap;
	int r;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	pthread_mutex_lock(&lock);
	d = find(fd);
	r = d ? device_ioctl(d, req, arg) : -2;
	pthread_mutex_unlock(&lock);
	return r == -2 ? real_ioctl(fd, req, arg) : r;
}

/* ---- the records: the kernel's format ------------------------------------------- */

static int nofault(void *dst, uintptr_t src, size_t n)
{
	struct iovec local = {dst, n}, remote = {(void *)src, n};

	if (src < 4096 || src > UINTPTR_MAX - 4095 - n)
		return -1;
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

static uint64_t field(const unsigned char *p, uint64_t f)
{
	unsigned size = f & 0xFFF;
	uint64_t v = 0;

	memcpy(&v, p, size > 8 ? 8 : size);
	if (f & (1ull << 26)) {
		unsigned shift = (f >> 20) & 63, width = (f >> 12) & 127;

		v = (v >> shift) & (width >= 64 ? ~0ull : (1ull << width) - 1);
	}
	return v;
}

static void append(unsigned type, uint64_t pc, unsigned arg_idx, uint32_t size, const void *ptr,
		   const uint64_t *desc, uint32_t nf)
{
	struct device *d = current;
	uint64_t v[15], pos, need;
	unsigned j, nv = 1;

	if (!d || busy || !d->area)
		return;
	busy = 1;
	if (nf && desc) {
		const uint64_t *fd = &desc[3];

		nv = nf > 15 ? 15 : nf;
		for (j = 0; j < nv; j++) {
			unsigned char one[8];
			uint64_t n = (fd[j] & 0xFFF) > 8 ? 8 : (fd[j] & 0xFFF);
			uintptr_t at = (uintptr_t)ptr + (fd[j] >> 32);

			if (desc[2] & 1)
				v[j] = nofault(one, at, n) == 0 ? field(one, fd[j]) : FAULT;
			else
				v[j] = field((const unsigned char *)at, fd[j]);
		}
	} else {
		v[0] = 0;
		if (ptr)
			memcpy(&v[0], ptr, size > 8 ? 8 : size);
		else
			v[0] = FAULT;
	}
	need = 3 + nv;
	pos = __atomic_load_n(&d->area[0], __ATOMIC_RELAXED);
	seq = (seq + 1) & 0xFFFFFF;
	do {
		if (pos + need > d->words - 1) {
			busy = 0;
			return; /* full: the kernel drops the record */
		}
	} while (!__atomic_compare_exchange_n(&d->area[0], &pos, pos + need, 1, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	d->area[1 + pos] = (uint64_t)type << 28 | (uint64_t)(nv & 0xF) << 24 | seq;
	d->area[2 + pos] = pc;
	d->area[3 + pos] = (uint64_t)(arg_idx & 0xFF) << 56 | (uint64_t)(size & 0xFF) << 48 |
			   ((uintptr_t)ptr & 0xFFFFFFFFFFFFull);
	memcpy(&d->area[4 + pos], v, nv * 8);
	busy = 0;
}

static void args(uint64_t pc, uint32_t arg_idx, uint32_t size, const void *ptr, const uint64_t *desc,
		 uint32_t nf)
{
	if (arg_idx != ARG_NONE) /* the kernel writes no entry for a function without parameters */
		append(0xE, pc, arg_idx, size, ptr, desc, nf);
}

static void ret(uint64_t pc, uint32_t size, const void *ptr, const uint64_t *desc, uint32_t nf)
{
	if (size || ptr) /* nor a return for a void one */
		append(0xF, pc, 0, size, ptr, desc, nf);
}

/* The sym lines of the registered modules, as kallsyms lines: "addr t name [module]". */
static const char *json_str(const char *line, const char *key, char *out, size_t cap)
{
	const char *p = strstr(line, key);
	size_t n = 0;

	if (!p)
		return NULL;
	for (p += strlen(key); *p && *p != '"' && n + 1 < cap; p++)
		out[n++] = *p == ' ' ? '_' : *p;
	out[n] = 0;
	return out;
}

static void emit(const char *line, size_t len)
{
	char pc[32], module[128], name[512], buf[800], copy[4096];
	int n;

	if (len >= sizeof(copy))
		return;
	memcpy(copy, line, len);
	copy[len] = 0;
	if (!strstr(copy, "\"t\":\"sym\"") || !json_str(copy, "\"pc\":\"0x", pc, sizeof(pc)) ||
	    !json_str(copy, "\"module\":\"", module, sizeof(module)) ||
	    !json_str(copy, "\"qualname\":\"", name, sizeof(name)))
		return;
	n = snprintf(buf, sizeof(buf), "%016llx t %s\t[%s]\n", strtoull(pc, NULL, 16), name, module);
	pthread_mutex_lock(&lock);
	if (nsyms + (size_t)n + 1 > capsyms) {
		size_t cap = capsyms ? 2 * capsyms : 4096;
		char *grown;

		while (cap < nsyms + (size_t)n + 1)
			cap *= 2;
		grown = realloc(syms, cap);
		if (!grown) {
			pthread_mutex_unlock(&lock);
			return;
		}
		syms = grown;
		capsyms = cap;
	}
	memcpy(syms + nsyms, buf, (size_t)n);
	nsyms += (size_t)n;
	pthread_mutex_unlock(&lock);
}

/* The table the runtime looks up (kcovdf_api.h). */

const struct kcovdf_api kcovdf_native_api = {
	KCOVDF_API_VERSION, sizeof(struct kcovdf_api), &active, args, ret, emit, nofault,
};
