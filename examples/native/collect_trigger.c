/* What collect.c runs while it records: functions of the eight_args_c selftest. */
#include <stdint.h>

struct pair {
	uint64_t a;
	uint64_t b;
};

__attribute__((noinline)) uint64_t df_func2(uint64_t a1, uint64_t a2) { return a1 + a2; }
__attribute__((noinline)) uint64_t df_func_struct(struct pair *p) { return p->a + p->b; }

volatile uint64_t sink; /* the results are used: the calls stay */

void trigger(void)
{
	struct pair p = {0x11, 0x22};

	sink = df_func2(0x11, 0x22);
	sink = df_func_struct(&p);
}
