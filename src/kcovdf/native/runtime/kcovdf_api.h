/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The table through which instrumented code reaches a recorder: the C core's
 * (_core/native.c, inside Python) or the user-space device's (device.c, LD_PRELOAD for a
 * program without Python). Both export it as kcovdf_native_api; runtime.c, linked into
 * every instrumented object, looks it up and calls through it. One definition for the
 * three: a field added here is a new version.
 */
#ifndef KCOVDF_API_H
#define KCOVDF_API_H

#include <stddef.h>
#include <stdint.h>

#define KCOVDF_API_VERSION 1

struct kcovdf_api {
	uint32_t version, size;
	long *active; /* nonzero while some thread of the process records */
	void (*args)(uint64_t pc, uint32_t arg_idx, uint32_t arg_size, const void *arg_ptr,
		     const uint64_t *offsets, uint32_t num_fields);
	void (*ret)(uint64_t pc, uint32_t ret_size, const void *ret_ptr, const uint64_t *offsets,
		    uint32_t num_fields);
	void (*emit)(const char *line, size_t len); /* a type or symbol line of a library */
	int (*nofault)(void *dst, uintptr_t src, size_t len); /* 0, or -1 where unreadable */
};

#endif
