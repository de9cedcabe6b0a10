/*
 * The data-collection example of the kernel's kcov-dataflow documentation, unmodified but
 * for its trigger: instead of a syscall, C functions built with kcovdf cc run while the
 * task records. Against kcovdf's user-space device, without a kernel and without Python:
 *
 *   kcovdf cc -O2 collect.c collect_trigger.c -o collect
 *   KCOVDF_DEVICE_DUMP=dump.bin LD_PRELOAD=$(kcovdf cc --kcovdf-device) ./collect
 *   kcovdf view dump.bin --kallsyms dump.bin.kallsyms
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>

#define KCOV_DF_INIT_TRACE _IOR('d', 1, unsigned long)
#define KCOV_DF_ENABLE _IO('d', 100)
#define KCOV_DF_DISABLE _IO('d', 101)
#define BUF_SIZE (1 << 20) /* 1M words = 8MB */

void trigger(void); /* collect_trigger.c */

int main(void)
{
int fd;
uint64_t *buf, n, i;

fd = open("/sys/kernel/debug/kcov_dataflow", O_RDWR);
if (fd == -1)
perror("open"), exit(1);

/* Allocate buffer (size in u64 words). */
if (ioctl(fd, KCOV_DF_INIT_TRACE, BUF_SIZE))
perror("ioctl(INIT)"), exit(1);

/* Map the buffer into user space. */
buf = (uint64_t *)mmap(NULL, BUF_SIZE * sizeof(uint64_t),
PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
if (buf == MAP_FAILED)
perror("mmap"), exit(1);

/* Enable data-flow collection for this task. */
if (ioctl(fd, KCOV_DF_ENABLE, 0))
perror("ioctl(ENABLE)"), exit(1);

/* Reset counter. */
__atomic_store_n(&buf[0], 0, __ATOMIC_RELAXED);

/* === Trigger syscall(s) here === */
trigger();

/* Read how many words were written. */
n = __atomic_load_n(&buf[0], __ATOMIC_RELAXED);

/* Parse TLV records. */
i = 1;
while (i + 3 < n) {
uint64_t type_seq = buf[i];
uint64_t pc = buf[i + 1];
uint64_t meta = buf[i + 2];
uint32_t type = (type_seq >> 28) & 0xF;
uint32_t num_vals = (type_seq >> 24) & 0xF;
uint32_t seq = type_seq & 0x00FFFFFF;
uint32_t arg_idx = (meta >> 56) & 0xFF;
uint32_t size = (meta >> 48) & 0xFF;

if (type_seq >> 32 || (type != 0xE && type != 0xF)) {
i++;
continue;
}
if (!num_vals)
num_vals = 1;

printf("[%s] seq=%u pc=0x%lx arg_idx=%u size=%u val=0x%lx\n",
type == 0xE ? "ENTRY" : "RET",
seq, pc, arg_idx, size, buf[i + 3]);
i += 3 + num_vals;
}

if (ioctl(fd, KCOV_DF_DISABLE, 0))
perror("ioctl(DISABLE)"), exit(1);

munmap(buf, BUF_SIZE * sizeof(uint64_t));
close(fd);
return 0;
}
