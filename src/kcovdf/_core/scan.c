/* kcovdf._core._scan, the record scanner of kcovdf.read.decode: finds where the records
 * of a buffer start. Its own extension: the reader owns it, the recorder never calls it.
 *
 * This is the parsing loop of the kernel documentation (kcov-dataflow.rst),
 * with its resync rule kept: a word that is not a valid header (bits 63:32
 * nonzero, or a type nibble other than 0xE/0xF, or kcovdf's own 0xD event of
 * format 2) is skipped one word at a time; a value count of 0 is read as 1.
 * It returns the record offsets, or on request fills the columns of the records
 * table in the same pass instead: a
 * numpy gather from the offsets costs ten times the scan (kcovdf.read.decode keeps
 * that gather as the reference twin).
 *
 * Two deliberate differences from the documentation's loop:
 * - it bounds the loop by the end index (1 + count), not by the count itself,
 *   which ends one word early and loses a last record of one value word;
 * - a record whose value words run past the end is reported, not decoded.
 *
 * Buffers are little-endian u64 words (docs/abi.md section 1).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* Reasons of a skipped run; kcovdf.read.decode names them. */
enum {
    SKIP_INVALID = 0,   /* words that are not a valid record header */
    SKIP_TRUNCATED = 1, /* a valid header whose record runs past the end */
    SKIP_SHORT_TAIL = 2 /* fewer words left than the smallest record */
};

static inline uint64_t load_word(const unsigned char *base, Py_ssize_t i)
{
    uint64_t w;
    memcpy(&w, base + 8 * i, 8); /* the buffer may be unaligned (bytes at any offset) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline int valid_header(uint64_t h)
{
    uint32_t type = (h >> 28) & 0xF;
    return !(h >> 32) && (type == 0xE || type == 0xF || type == 0xD);
}

/* A new large output is written once, front to back: transparent huge pages
 * turn its ~25 page faults per 100 KB into one per 2 MB, which is most of the
 * cost of filling it. Only a hint; ignored where unsupported. */
static PyObject *new_output(Py_ssize_t bytes)
{
    PyObject *obj = PyByteArray_FromStringAndSize(NULL, bytes);
#ifdef MADV_HUGEPAGE
    if (obj && bytes >= (4 << 20)) {
        uintptr_t page = 4096, p = (uintptr_t)PyByteArray_AS_STRING(obj);
        uintptr_t lo = (p + page - 1) & ~(page - 1), hi = (p + bytes) & ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    return obj;
}

/* A growable array of int64, filled without the GIL. */
typedef struct {
    int64_t *v;
    Py_ssize_t len, cap;
} vec;

static int vec_push(vec *a, int64_t x)
{
    if (a->len == a->cap) {
        Py_ssize_t cap = a->cap ? 2 * a->cap : 64;
        int64_t *v = realloc(a->v, (size_t)cap * sizeof(int64_t));
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->len++] = x;
    return 0;
}

static int push_skip(vec *skips, Py_ssize_t at, Py_ssize_t count, int reason)
{
    return vec_push(skips, at) | vec_push(skips, count) | vec_push(skips, reason);
}

/* The columns of the records table, filled in the same pass as the scan. Each is a
 * bytearray allocated at its upper bound (every record takes at least 4 words):
 * only the pages actually written get committed, and the final resize gives back
 * the rest. Order and item sizes are those kcovdf.read.decode's _c_columns reads.
 *
 * The value lists are a list-view (an offset and a size per record). With
 * copy_values false the offsets point at the value words in the scanned buffer
 * itself, which kcovdf.read.decode then uses as the list child without copying: the
 * values are half of what a full table would write. With copy_values true
 * (memory the caller may still write to) they are copied, compactly, into their
 * own column. Offsets and sizes are int64 when wide, int32 otherwise. */
enum { COL_TASK, COL_SEQ, COL_KIND, COL_PC, COL_ARG, COL_SIZE, COL_PTR, COL_VOFF, COL_VSIZE,
       COL_VALUES, NCOLS };

typedef struct {
    PyObject *obj[NCOLS];
    int32_t *task;
    uint32_t *seq;
    int8_t *kind;
    uint8_t *arg, *size;
    uint64_t *pc, *ptr, *values;
    void *voff, *vsize;
    int64_t nvalues; /* value words copied so far */
} columns;

static int columns_alloc(columns *c, Py_ssize_t words, int copy_values, int wide)
{
    Py_ssize_t nrec = words / 4 + 1, ow = wide ? 8 : 4;
    Py_ssize_t bytes[NCOLS] = {4 * nrec, 4 * nrec, nrec, 8 * nrec, nrec, nrec, 8 * nrec,
                               ow * nrec, ow * nrec, copy_values ? 8 * words : 0};
    for (int k = 0; k < NCOLS; k++)
        if (!(c->obj[k] = new_output(bytes[k])))
            return -1;
#define COL(k) PyByteArray_AS_STRING(c->obj[k])
    c->task = (int32_t *)COL(COL_TASK);
    c->seq = (uint32_t *)COL(COL_SEQ);
    c->kind = (int8_t *)COL(COL_KIND);
    c->pc = (uint64_t *)COL(COL_PC);
    c->arg = (uint8_t *)COL(COL_ARG);
    c->size = (uint8_t *)COL(COL_SIZE);
    c->ptr = (uint64_t *)COL(COL_PTR);
    c->voff = COL(COL_VOFF);
    c->vsize = COL(COL_VSIZE);
    c->values = (uint64_t *)COL(COL_VALUES);
#undef COL
    c->nvalues = 0;
    return 0;
}

static int columns_shrink(columns *c, Py_ssize_t n, int wide)
{
    Py_ssize_t ow = wide ? 8 : 4;
    Py_ssize_t bytes[NCOLS] = {4 * n, 4 * n, n, 8 * n, n, n, 8 * n, ow * n, ow * n,
                               8 * c->nvalues};
    for (int k = 0; k < NCOLS; k++)
        if (PyByteArray_Resize(c->obj[k], bytes[k]) < 0)
            return -1;
    return 0;
}

/* One record's columns. The flags are compile-time constants at every call, so
 * each of the four loops below is specialised without a branch on them. */
static inline __attribute__((always_inline)) void
columns_put(columns *c, Py_ssize_t n, const unsigned char *w, Py_ssize_t i, uint64_t h,
            Py_ssize_t nvals, int32_t task, const int copy_values, const int wide)
{
    uint64_t meta = load_word(w, i + 2);
    uint8_t arg = meta >> 56;
    /* kind codes index kcovdf.read.decode.KINDS: entry, return, exception, yield,
     * and for 0xD events resume, suspend, event (any other event number) */
    uint32_t type = (h >> 28) & 0xF;
    c->kind[n] = type == 0xE ? 0 : type == 0xD ? (arg == 1 ? 4 : arg == 2 ? 5 : 6)
               : arg == 0xFF ? 2 : arg == 0xFE ? 3 : 1;
    c->task[n] = task;
    c->seq[n] = h & 0x00FFFFFF;
    c->pc[n] = load_word(w, i + 1);
    c->arg[n] = arg;
    c->size[n] = (meta >> 48) & 0xFF;
    c->ptr[n] = meta & 0xFFFFFFFFFFFFULL;
    int64_t at = i + 3;
    if (copy_values) {
        at = c->nvalues;
        for (Py_ssize_t j = 0; j < nvals; j++)
            c->values[at + j] = load_word(w, i + 3 + j);
        c->nvalues += nvals;
    }
    if (wide) {
        ((int64_t *)c->voff)[n] = at;
        ((int64_t *)c->vsize)[n] = nvals;
    } else {
        ((int32_t *)c->voff)[n] = (int32_t)at;
        ((int32_t *)c->vsize)[n] = (int32_t)nvals;
    }
}

PyDoc_STRVAR(scan_doc,
"scan(words, start, stop, columns=False, task=0, copy_values=False, wide=False)\n"
"    -> (offsets, skipped[, columns])\n\n"
"Find the records in words[start:stop] of a buffer of little-endian u64 words.\n"
"offsets: bytearray of native int64, the word offset of every complete record\n"
"(empty when columns are asked for: they are not needed then).\n"
"skipped: bytearray of native int64 triples (offset, count, reason) with reason\n"
"0 = not a valid header, 1 = truncated record, 2 = tail shorter than a record.\n"
"columns: when asked for, a tuple of bytearrays of native integers: task (i32,\n"
"all equal to task), seq (u32), kind (i8 code), pc (u64), arg_idx (u8), size (u8),\n"
"ptr (u64), value offsets and value counts (i64 when wide, else i32), values (u64).\n"
"Value offsets index words itself (values is empty) unless copy_values, when the\n"
"value words are copied into values and the offsets index that. wide is needed\n"
"when stop exceeds 2**31 - 1.");

/* Where the scan stopped, and what it found. */
typedef struct {
    Py_ssize_t i, n, run;
    int nomem;
} scan_state;

/* The parsing loop. want_columns, copy_values and wide are constants at each call
 * site, so the compiler emits one loop per combination with no test of them inside. */
static inline __attribute__((always_inline)) void
scan_loop(scan_state *s, const unsigned char *w, Py_ssize_t start, Py_ssize_t stop, int64_t *out,
          vec *skips, columns *cols, int32_t task, const int want_columns,
          const int copy_values, const int wide)
{
    Py_ssize_t i = start, n = 0, run = -1;
    int nomem = 0;
    while (i + 3 < stop) {
        uint64_t h = load_word(w, i);
        if (!valid_header(h)) {
            if (run < 0)
                run = i;
            i++;
            continue;
        }
        if (run >= 0) {
            nomem |= push_skip(skips, run, i - run, SKIP_INVALID);
            run = -1;
        }
        Py_ssize_t nvals = (h >> 24) & 0xF;
        if (!nvals)
            nvals = 1;
        if (i + 3 + nvals > stop)
            break; /* reported by the caller as truncated */
        if (want_columns)
            columns_put(cols, n, w, i, h, nvals, task, copy_values, wide);
        else
            out[n] = i;
        n++;
        i += 3 + nvals;
    }
    s->i = i;
    s->n = n;
    s->run = run;
    s->nomem = nomem;
}

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, stop;
    int want_columns = 0, copy_values = 0, wide = 0;
    int task = 0;
    if (!PyArg_ParseTuple(args, "y*nn|pipp:scan", &view, &start, &stop, &want_columns, &task,
                          &copy_values, &wide))
        return NULL;
    PyObject *offsets = NULL, *result = NULL;
    columns cols;
    memset(&cols, 0, sizeof cols);
    vec skips = {NULL, 0, 0};
    Py_ssize_t nwords = view.len / 8;
    if (start < 0 || stop > nwords || start > stop) {
        PyErr_Format(PyExc_ValueError, "scan: range [%zd, %zd) outside a buffer of %zd words",
                     start, stop, nwords);
        goto done;
    }
    if (want_columns && !wide && stop > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "scan: %zd words need wide (int64) value offsets", stop);
        goto done;
    }
    Py_ssize_t cap = want_columns ? 0 : (stop - start) / 4 + 1;
    offsets = new_output(cap * (Py_ssize_t)sizeof(int64_t));
    if (!offsets ||
        (want_columns && columns_alloc(&cols, stop - start, copy_values, wide) < 0))
        goto done;
    int64_t *out = (int64_t *)PyByteArray_AS_STRING(offsets);
    const unsigned char *w = view.buf;
    scan_state s;

    Py_BEGIN_ALLOW_THREADS
    if (!want_columns)
        scan_loop(&s, w, start, stop, out, &skips, NULL, 0, 0, 0, 0);
    else if (copy_values && wide)
        scan_loop(&s, w, start, stop, NULL, &skips, &cols, task, 1, 1, 1);
    else if (copy_values)
        scan_loop(&s, w, start, stop, NULL, &skips, &cols, task, 1, 1, 0);
    else if (wide)
        scan_loop(&s, w, start, stop, NULL, &skips, &cols, task, 1, 0, 1);
    else
        scan_loop(&s, w, start, stop, NULL, &skips, &cols, task, 1, 0, 0);
    if (s.run >= 0)
        s.nomem |= push_skip(&skips, s.run, s.i - s.run, SKIP_INVALID);
    if (s.i < stop)
        s.nomem |= push_skip(&skips, s.i, stop - s.i,
                             valid_header(load_word(w, s.i)) ? SKIP_TRUNCATED : SKIP_SHORT_TAIL);
    Py_END_ALLOW_THREADS

    if (s.nomem) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyByteArray_Resize(offsets, want_columns ? 0 : s.n * (Py_ssize_t)sizeof(int64_t)) < 0)
        goto done;
    if (want_columns && columns_shrink(&cols, s.n, wide) < 0)
        goto done;
    PyObject *skipped = PyByteArray_FromStringAndSize((const char *)skips.v,
                                                      skips.len * (Py_ssize_t)sizeof(int64_t));
    if (!skipped)
        goto done;
    if (want_columns) {
        PyObject *col_tuple = PyTuple_New(NCOLS);
        if (col_tuple) {
            for (int k = 0; k < NCOLS; k++) {
                PyTuple_SET_ITEM(col_tuple, k, cols.obj[k]);
                cols.obj[k] = NULL; /* the tuple owns it now */
            }
            result = PyTuple_Pack(3, offsets, skipped, col_tuple);
            Py_DECREF(col_tuple);
        }
    } else {
        result = PyTuple_Pack(2, offsets, skipped);
    }
    Py_DECREF(skipped);
done:
    for (int k = 0; k < NCOLS; k++)
        Py_XDECREF(cols.obj[k]);
    Py_XDECREF(offsets);
    free(skips.v);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef scan_methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kcovdf._core._scan",
    .m_doc = "The record scanner of kcovdf.read.decode (the kernel documentation's parsing loop).",
    .m_size = -1,
    .m_methods = scan_methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    return PyModule_Create(&scan_module);
}
