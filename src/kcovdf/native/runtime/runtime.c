// SPDX-License-Identifier: GPL-2.0
/*
 * The runtime linked into code instrumented by kcovdf's LLVM pass (kcovdf cc, kcovdf rustc):
 * the kernel's two callbacks, and the registration of each instrumented module.
 *
 * It records nothing itself. It finds the kcovdf recorder loaded in this process (the
 * C core, kcovdf/_core/_recorder*.so, loaded RTLD_LOCAL by Python: found with
 * dl_iterate_phdr, then dlsym of its kcovdf_native_api) and forwards every callback to
 * it, which writes into the calling thread's task buffer (_core/native.c). A recorder
 * loaded later finds this object instead (its __kcovdf_attach). Without Python, the same
 * table of kcovdf's user-space device (device.c, LD_PRELOAD) is taken. Until one is found,
 * __kcovdf_active points to a zero, so the pass's guard skips every callback.
 *
 * Every definition is weak and hidden: the pass's output, linked with this file's bitcode
 * into each object (kcovdf cc -c), gives one copy per shared object or executable, and
 * none is seen from outside but __kcovdf_attach.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kcovdf_api.h"

#define KCOVDF_LOCAL __attribute__((weak, visibility("hidden")))


/* What the pass puts in every module (KcovdfDataflow.cpp, registerModule). */
struct kcovdf_func {
	const void *fn;
	const char *sym; /* the sym line after its pc */
};

struct kcovdf_module {
	uint32_t version, nfuncs;
	const struct kcovdf_func *funcs;
	const char *types; /* type lines, each ending in \n */
};

#define KCOVDF_MAX_MODULES 256

KCOVDF_LOCAL long __kcovdf_off;
/* The pass's guard loads *__kcovdf_active: the recorder's count of recording threads. */
KCOVDF_LOCAL long *__kcovdf_active = &__kcovdf_off;
KCOVDF_LOCAL const struct kcovdf_api *__kcovdf_api;
KCOVDF_LOCAL const struct kcovdf_module *__kcovdf_modules[KCOVDF_MAX_MODULES];
KCOVDF_LOCAL unsigned __kcovdf_nmodules, __kcovdf_announced;

KCOVDF_LOCAL void __sanitizer_cov_trace_args(uint64_t pc, uint32_t arg_idx, uint32_t arg_size,
					     const void *arg_ptr, const uint64_t *offsets,
					     uint32_t num_fields)
{
	const struct kcovdf_api *api = __kcovdf_api;

	if (api)
		api->args(pc, arg_idx, arg_size, arg_ptr, offsets, num_fields);
}

KCOVDF_LOCAL void __sanitizer_cov_trace_ret(uint64_t pc, uint32_t ret_size, const void *ret_ptr,
					    const uint64_t *offsets, uint32_t num_fields)
{
	const struct kcovdf_api *api = __kcovdf_api;

	if (api)
		api->ret(pc, ret_size, ret_ptr, offsets, num_fields);
}

/* A JSON string of s (paths and names: quotes, backslashes and control bytes escaped). */
KCOVDF_LOCAL size_t __kcovdf_json(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	if (n < cap)
		out[n++] = '"';
	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	if (n < cap)
		out[n++] = '"';
	return n;
}

/* The type and sym lines of one module, and where its object is loaded. */
KCOVDF_LOCAL void __kcovdf_announce(const struct kcovdf_api *api, const struct kcovdf_module *m)
{
	char line[4096], lib[1024], stem[256];
	const char *p, *nl, *base;
	Dl_info info;
	size_t n, k;
	uint32_t i;

	memset(&info, 0, sizeof(info));
	dladdr(m, &info);
	snprintf(lib, sizeof(lib), "%s", info.dli_fname ? info.dli_fname : "");
	base = strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib;
	if (!strncmp(base, "lib", 3) && strstr(base, ".so"))
		base += 3; /* libfoo.so is module foo, as the kernel's foo.ko */
	for (k = 0; base[k] && base[k] != '.' && k + 1 < sizeof(stem); k++)
		stem[k] = base[k];
	stem[k] = 0;
	n = (size_t)snprintf(line, sizeof(line), "{\"t\":\"info\",\"key\":\"native_lib\",\"value\":{\"path\":");
	n += __kcovdf_json(line + n, sizeof(line) - n, lib);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"base\":\"%#llx\",\"functions\":%u}}",
			      (unsigned long long)(uintptr_t)info.dli_fbase, m->nfuncs);
	if (n < sizeof(line))
		api->emit(line, n);
	for (p = m->types; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		api->emit(p, (size_t)(nl - p));
	}
	for (i = 0; i < m->nfuncs; i++) {
		const char *sym = m->funcs[i].sym, *rest = sym;

		/* a Rust crate's functions: "crate::f" in module crate is f there */
		if (!strncmp(sym, "\"qualname\":\"", 12) && !strncmp(sym + 12, stem, k) &&
		    !strncmp(sym + 12 + k, "::", 2))
			rest = sym + 12 + k + 2;
		n = (size_t)snprintf(line, sizeof(line), "{\"t\":\"sym\",\"pc\":\"%#llx\",\"module\":",
				     (unsigned long long)(uintptr_t)m->funcs[i].fn);
		n += __kcovdf_json(line + n, sizeof(line) - n, stem);
		n += (size_t)snprintf(line + n, sizeof(line) - n, rest == sym ? ",%s" : ",\"qualname\":\"%s",
				      rest);
		if (n < sizeof(line))
			api->emit(line, n);
	}
}

/* The classes the recorder names without a table (void returns, raw scalars). */
KCOVDF_LOCAL void __kcovdf_announce_runtime(const struct kcovdf_api *api)
{
	static const char *const names[] = {"native.void", "native.u0",	 "native.u8",  "native.u16",
					    "native.u24",  "native.u32", "native.u40", "native.u48",
					    "native.u56",  "native.u64"};
	char line[160];
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t h = 0xCBF29CE484222325ull;
		const char *c;
		int n;

		for (c = names[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 0x100000001B3ull;
		n = snprintf(line, sizeof(line), "{\"t\":\"type\",\"id\":\"%#llx\",\"class\":\"%s\",\"fields\":[]}",
			     (unsigned long long)h, names[i]);
		api->emit(line, (size_t)n);
	}
}

/* Start forwarding to api (once): the modules registered so far are announced. */
__attribute__((weak)) void __kcovdf_attach(const struct kcovdf_api *api)
{
	if (__kcovdf_api || !api || api->version != KCOVDF_API_VERSION ||
	    api->size < sizeof(struct kcovdf_api))
		return;
	__kcovdf_announce_runtime(api);
	for (; __kcovdf_announced < __kcovdf_nmodules; __kcovdf_announced++)
		__kcovdf_announce(api, __kcovdf_modules[__kcovdf_announced]);
	__kcovdf_api = api;
	__atomic_store_n(&__kcovdf_active, api->active, __ATOMIC_RELEASE);
}

/* dl_iterate_phdr: the recorder of kcovdf (kcovdf/_core/_recorder*.so) among the loaded objects. */
KCOVDF_LOCAL int __kcovdf_find(struct dl_phdr_info *info, size_t size, void *out)
{
	const char *name = info->dlpi_name, *slash;
	void *h;

	if (!name || !(slash = strrchr(name, '/')) || strncmp(slash + 1, "_recorder.", 10) ||
	    slash - name < 12 || strncmp(slash - 12, "kcovdf/_core", 12))
		return 0;
	h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	*(void **)out = dlsym(h, "kcovdf_native_api");
	dlclose(h); /* the recorder stays loaded: Python holds it */
	return *(void **)out != NULL;
}

/* The pass's module constructor: remember the module, and find the recorder if not yet. */
KCOVDF_LOCAL void __kcovdf_register(const struct kcovdf_module *m)
{
	const struct kcovdf_api *api = NULL;

	if (m->version != 1 || __kcovdf_nmodules >= KCOVDF_MAX_MODULES)
		return;
	__kcovdf_modules[__kcovdf_nmodules++] = m;
	if (__kcovdf_api) {
		__kcovdf_announce(__kcovdf_api, m);
		__kcovdf_announced = __kcovdf_nmodules;
		return;
	}
	dl_iterate_phdr(__kcovdf_find, &api);
	if (!api) /* no Python recorder: kcovdf's device shim, if preloaded (device.c) */
		api = dlsym(RTLD_DEFAULT, "kcovdf_native_api");
	if (api)
		__kcovdf_attach(api);
}
