// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel series' eight_args_c selftest module, as a shared library: noinline functions
 * of 1 to 8 u64 arguments (register and stack arguments on x86-64 and arm64), and one
 * taking a struct pointer. Built with kcovdf cc, called from Python through ctypes.
 */
#include <stdint.h>

#define NOINLINE __attribute__((noinline))

struct pair {
	uint64_t a;
	uint64_t b;
};

NOINLINE uint64_t df_func1(uint64_t a1) { return a1 + 0x22; }
NOINLINE uint64_t df_func2(uint64_t a1, uint64_t a2) { return a1 + a2; }
NOINLINE uint64_t df_func3(uint64_t a1, uint64_t a2, uint64_t a3) { return a1 + a2 + a3; }
NOINLINE uint64_t df_func4(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
	return a1 + a2 + a3 + a4;
}
NOINLINE uint64_t df_func5(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	return a1 + a2 + a3 + a4 + a5;
}
NOINLINE uint64_t df_func6(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
			   uint64_t a6)
{
	return a1 + a2 + a3 + a4 + a5 + a6;
}
NOINLINE uint64_t df_func7(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
			   uint64_t a6, uint64_t a7)
{
	return a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
NOINLINE uint64_t df_func8(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
			   uint64_t a6, uint64_t a7, uint64_t a8)
{
	return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8;
}
NOINLINE uint64_t df_func_struct(struct pair *p) { return p->a + p->b; }

/* Takes a struct pointer it never reads: the recorder reads it, and must not fault. */
NOINLINE int df_struct_probe(struct pair *p) { return p != 0; }
